"""Run every notebook top to bottom as a user without the data, at the GPU size setting.

The stored outputs cover one path: the real data at scale 1 on a 2-core CPU. This runner covers
the others, comparing no outputs (numbers differ; the notebooks' own asserts and errors decide):

- no data: no ``COURSE_DATA_DIR``, an empty course cache, no system copy
  (``COURSE_NO_SYSTEM_DATA=1``), no download (``COURSE_OFFLINE=1``), an empty ``TORCH_HOME``,
  and, where the kernel allows it (root, ``unshare``), no network at all: the notebooks must fall
  back to scikit-learn's digits and say so;
- the GPU size setting: ``COURSE_SCALE=4`` (``--scale``), so every size passes through the
  policy's clamping to the 1,437 images that the fallback data holds;
- and, in a second run of ``make portable``, the slow-laptop setting ``--scale 0.5``, where sizes
  shrink toward their minimums (a run too short to read its curve, a batch larger than its data).

Each notebook runs on a copy in a temporary folder, so results files never touch the checkout.
With ``--jobs N`` (default: one per two CPU cores, at least 2), N kernels run at once, each with
its share of the cores as torch threads (``OMP_NUM_THREADS``): the small models here keep one core
busy far better than two, so the whole run takes less wall time.
Usage: ``python scripts/run_portable.py [--scale 4] [--jobs 2] [NOTEBOOK ...]``; ``make portable``
runs all, at scale 4 and then at scale 0.5.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
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


def run_notebook(path: Path, timeout: int) -> tuple[float, str | None, str]:
    """Execute ``path`` in place with a fresh kernel.

    Returns (seconds, the first error or None, the slowest cells when it took over 20 s, or "").
    """
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
    slowest = _slowest_cells(notebook) if error is None and seconds > 20 else ""
    return seconds, error, slowest


def _run_copy(source: Path, copy: Path, timeout: int) -> tuple[str, float, str | None, str]:
    target = copy / source.name
    shutil.copy(source, target)
    return (source.name, *run_notebook(target, timeout))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="4", help="COURSE_SCALE for the run (default 4)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=max(2, (os.cpu_count() or 2) // 2),
                        help="notebooks run at once (default: one per two cores, at least 2)")
    parser.add_argument("--allow-network", action="store_true", help="do not try to cut the network")
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    args = parser.parse_args(argv)
    if not args.allow_network:
        code = _reexec_without_network(argv)
        if code is not None:
            return code
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    names = args.notebooks or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    jobs = min(args.jobs, len(names))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    network = "cut (unshare)" if os.environ.get(ISOLATED) else "not cut: COURSE_OFFLINE=1 only"
    print(f"portable run: fallback data, COURSE_SCALE={args.scale}, network {network}, "
          f"{jobs} notebook(s) at a time with {threads} torch thread(s) each", flush=True)
    failures, total = [], 0.0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="course-portable-") as tmp:
        work = Path(tmp)
        env = _environment(work, args.scale)
        if jobs > 1:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
        os.environ.clear()  # the kernels inherit this environment
        os.environ.update(env)
        copy = work / "notebooks"
        copy.mkdir()
        context = multiprocessing.get_context("fork")  # each worker inherits the environment above
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_copy, Path(name).resolve(), copy, args.timeout) for name in names]
            for future in concurrent.futures.as_completed(futures):
                name, seconds, error, slowest = future.result()
                total += seconds
                print(f"{name:48} {seconds:6.1f} s  {'ok' if error is None else 'FAILED ' + error}"
                      + (f"\n  slowest: {slowest}" if slowest else ""), flush=True)
                if error is not None:
                    failures.append(name)
    wall = time.perf_counter() - start
    print(f"{len(names) - len(failures)} of {len(names)} notebooks ran clean in {wall:.0f} s "
          f"({total:.0f} s of notebook time, {jobs} at a time)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
