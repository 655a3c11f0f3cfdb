"""Command line: ``python -m course_utils doctor`` and ``python -m course_utils data [NAME]``.

``doctor`` prints the environment and what ``get_dataset`` would do with the data right now
(the files are checked as a load checks them: a damaged cache or data folder is named, with its
fix), and exits non-zero when a required package is missing or broken. ``data`` makes a dataset
available from nothing (``make data`` runs it): on disk -> checked, and a damaged cache copy
replaced from a good source; else Debian's package (Fashion-MNIST, when apt is there and we may
use it); else torchvision's download; else a message naming all three.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys

from course_utils.datasets import SPECS, data_cache_dir, load_raw, locate_dataset
from course_utils.hardware import describe_environment

REQUIRED = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm", "sklearn")
APT_PACKAGE = "dataset-fashion-mnist"


def doctor() -> int:
    """Print the environment; return 1 if a required package is missing or broken."""
    print(describe_environment())
    problems = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except Exception as err:  # an import can fail in many ways; all mean "broken"
            problems.append(f"{name}: cannot be imported ({type(err).__name__}: {err})")
    if "torchvision" not in " ".join(problems):
        try:  # a torchvision built for another torch fails here, not at import
            import torch
            import torchvision

            torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
        except Exception as err:
            problems.append(f"torchvision does not work with this torch ({err}); install the "
                            "matching pair, e.g. `make venv` (torch 2.14.1 + torchvision 0.29.1)")
    print("\n" + data_report("fashion_mnist"))
    if problems:
        print("\nPROBLEMS (the course cannot run until these are fixed):")
        print("\n".join(f"  - {p}" for p in problems))
        return 1
    print("\nAll required packages work.")
    return 0


def data_report(name: str) -> str:
    """What ``get_dataset(name)`` would do right now, and how to fix what is wrong."""
    source = locate_dataset(name)
    label = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}[name]
    if source.kind != "download":
        lines = [f"Data: get_dataset('{name}') loads {label} from "
                 f"{source.describe().split(': ', 1)[1]}."]
        if "damaged copy" in source.note:
            lines.append("NOTE: the next load repairs the course cache; `python -m course_utils "
                         "data` repairs it now.")
        if "is unusable" in source.note:
            lines.append("NOTE: a folder searched before it is unusable (named above): fix or "
                         "remove its files to use it.")
        return "\n".join(lines)
    reasons = source.note.removesuffix("needs internet").rstrip("; ")
    then = ("COURSE_OFFLINE is set, so notebooks fall back to scikit-learn's digits"
            if os.environ.get("COURSE_OFFLINE") else
            "notebooks will try to download it and otherwise fall back to scikit-learn's digits")
    where = f"is not usable on disk ({reasons})" if reasons else "is not on disk"
    return (f"WARNING: {label} {where}; {then}. Run `make data` (python -m course_utils data) to "
            "repair or fetch it.")


def _try_load(name: str, *, download: bool) -> str | None:
    try:
        sources = [load_raw(name, train, download=download)[2] for train in (True, False)]
        return sources[0]  # the test split then comes from the cache the first load filled
    except FileNotFoundError as err:
        print(err)
        return None


def _apt_command() -> list[str] | None:
    """``apt-get`` (as root) or ``sudo -n apt-get``, if apt exists and we may use it."""
    if os.environ.get("COURSE_NO_APT") or shutil.which("apt-get") is None:
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ["apt-get"]
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n", "apt-get"]
    return None


def _apt_install(apt: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*apt, "install", "-y", "--no-install-recommends", APT_PACKAGE]
    print("$ " + " ".join(install))
    if subprocess.run(install, env=env).returncode == 0:
        return True
    print("apt-get install failed; refreshing the package lists and trying once more")
    subprocess.run([*apt, "update"], env=env)
    return subprocess.run(install, env=env).returncode == 0


def fetch_data(name: str) -> int:
    """Make ``name`` available on disk; return 0 when it is, 1 with instructions otherwise.

    Data already on disk is checked; damaged copies in the cache are moved aside and replaced
    from a good source (no apt-get, no download needed then).
    """
    found = locate_dataset(name)
    if found.note and found.note != "needs internet":
        print(f"Checking {name}: {found.note}")
    source = _try_load(name, download=False)
    if source is None and name == "fashion_mnist":
        apt = _apt_command()
        if apt is None:
            print(f"Not using apt: not available or not permitted (install {APT_PACKAGE} "
                  "yourself, or set COURSE_DATA_DIR).")
        elif _apt_install(apt):
            source = _try_load(name, download=False)
    if source is None:
        print(f"Trying torchvision's download into {data_cache_dir()} ...")
        source = _try_load(name, download=True)
    if source is None:
        print(f"\nERROR: could not make {name} available. Three ways to get it:\n"
              f"  1. on Debian/Ubuntu: `sudo apt-get install {APT_PACKAGE}` (Fashion-MNIST), then "
              "`make data` again;\n"
              "  2. with internet: `make data` downloads it with torchvision;\n"
              "  3. copy the files in torchvision's layout (e.g. FashionMNIST/raw/*.gz) into a "
              "folder and set COURSE_DATA_DIR to it.\n"
              "Without any of these the notebooks fall back to scikit-learn's digits.")
        return 1
    print(f"{name} is ready ({source}); cache: {data_cache_dir()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check the environment and the data")
    data = commands.add_parser("data", help="make a dataset available offline")
    data.add_argument("name", nargs="?", default="fashion_mnist",
                      choices=[n for n in SPECS if n != "digits"])
    args = parser.parse_args(argv)
    return doctor() if args.command == "doctor" else fetch_data(args.name)


if __name__ == "__main__":
    sys.exit(main())
