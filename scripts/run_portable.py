"""Run every notebook top to bottom as a user without the data, at the GPU size setting.

The stored outputs cover one path: the real data at scale 1 on a 2-core CPU. This runner covers
the others, comparing no outputs (numbers differ; the notebooks' own asserts and errors decide):

- no data: no ``COURSE_DATA_DIR``, an empty course cache, no system copy
  (``COURSE_NO_SYSTEM_DATA=1``), no download (``COURSE_OFFLINE=1``), an empty ``TORCH_HOME``,
  and, where the kernel allows it (root, ``unshare``), no network at all: the notebooks must fall
  back to scikit-learn's digits and say so;
- the GPU size setting: ``COURSE_SCALE=4`` (``--scale``), so every size passes through the
  policy's clamping to the 1,437 images that the fallback data holds.

Each notebook runs on a copy in a temporary folder, so results files never touch the checkout.
Usage: ``python scripts/run_portable.py [--scale 4] [NOTEBOOK ...]``; ``make portable`` runs all.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISOLATED = "COURSE_PORTABLE_ISOLATED"


def _reexec_without_network(argv: list[str]) -> int | None:
    """Re-run this script in a new network namespace (loopback only), if the kernel lets us."""
    if os.environ.get(ISOLATED) or shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    command = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} " + " ".join(
        f"'{a}'" for a in argv)
    env = {**os.environ, ISOLATED: "network"}
    return subprocess.run(["unshare", "--net", "sh", "-c", command], env=env).returncode


def _environment(work: Path, scale: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    for name in ("cache", "xdg", "torch", "mpl"):
        (work / name).mkdir()
    env.update(COURSE_CACHE_DIR=str(work / "cache"), XDG_CACHE_HOME=str(work / "xdg"),
               TORCH_HOME=str(work / "torch"), MPLCONFIGDIR=str(work / "mpl"),
               COURSE_OFFLINE="1", COURSE_NO_SYSTEM_DATA="1", COURSE_SCALE=scale,
               PYTHONDONTWRITEBYTECODE="1")
    if os.environ.get(ISOLATED):
        env[ISOLATED] = os.environ[ISOLATED]
    return env


def _slowest_cells(notebook, count: int = 3) -> str:
    """The ``count`` slowest cells, from the timestamps nbclient records, e.g. "cell 24: 12.3 s"."""
    from datetime import datetime

    spans = []
    for index, cell in enumerate(notebook.cells):
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            spans.append(((end - start).total_seconds(), index))
    return ", ".join(f"cell {i}: {s:.1f} s" for s, i in sorted(spans, reverse=True)[:count])


def run_notebook(path: Path, timeout: int) -> tuple[float, str | None]:
    """Execute ``path`` in place with a fresh kernel; return (seconds, first error or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except (CellExecutionError, CellTimeoutError) as err:
        index = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback's terminal colours
        lines = [line for line in text.strip().splitlines() if line.strip()]
        error = f"cell {index}: {lines[-1] if lines else type(err).__name__}"
    seconds = time.perf_counter() - start
    if error is None and seconds > 20:
        print(f"  slowest: {_slowest_cells(notebook)}", flush=True)
    return seconds, error


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="4", help="COURSE_SCALE for the run (default 4)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--allow-network", action="store_true", help="do not try to cut the network")
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    args = parser.parse_args(argv)
    if not args.allow_network:
        code = _reexec_without_network(argv)
        if code is not None:
            return code
    names = args.notebooks or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    network = "cut (unshare)" if os.environ.get(ISOLATED) else "not cut: COURSE_OFFLINE=1 only"
    print(f"portable run: fallback data, COURSE_SCALE={args.scale}, network {network}")
    failures, total = [], 0.0
    with tempfile.TemporaryDirectory(prefix="course-portable-") as tmp:
        work = Path(tmp)
        env = _environment(work, args.scale)
        os.environ.clear()  # the kernels inherit this environment
        os.environ.update(env)
        copy = work / "notebooks"
        copy.mkdir()
        for name in names:
            source = Path(name).resolve()
            target = copy / source.name
            shutil.copy(source, target)
            seconds, error = run_notebook(target, args.timeout)
            total += seconds
            print(f"{source.name:48} {seconds:6.1f} s  {'ok' if error is None else 'FAILED ' + error}",
                  flush=True)
            if error is not None:
                failures.append(source.name)
    print(f"{len(names) - len(failures)} of {len(names)} notebooks ran clean in {total:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
