"""Wall time to finish one Optuna study with 1 worker process and with 2 (scripts/tune.py).

Each run creates a fresh SQLite study in a temporary folder, starts the workers together and
times from their start until the last one exits (start-up included: that is what a user waits
for). The workers train the course MLP (``--objective mlp``) with random sampling and no pruning,
and learning rates that do not diverge, so every configuration does the same work: ``--trials``
trials of ``--epochs`` epochs. Three ways to use a 2-core machine: 1 worker with 1 torch
thread, 1 worker with all cores as threads (PyTorch's default), and 2 workers with half the
cores each; speed-ups are against the default. The configurations are interleaved ``--repeats`` times and the
median is kept; the machine's load average is recorded with them, since another busy process on
the machine changes everything. The workers train on the CPU whatever the machine has.

Writes ``notebooks/results/tune_workers_cpu.json`` (device, date, machine, command), which
notebook 10 shows. Usage: ``python benchmarks/tune_workers.py [--trials 24] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Learning rates that never diverge here, so that every trial is a full one in every configuration.
SPACE = '{"lr": ["log", 0.001, 0.2], "weight_decay": ["choice", 0.0, 1e-05, 0.0001]}'

from course_utils.results import save_results  # noqa: E402


def one_run(workers: int, threads: int, args: argparse.Namespace) -> tuple[float, float]:
    """(wall seconds from launch to the last exit, the slowest worker's optimize seconds)."""
    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        storage = f"sqlite:///{Path(tmp) / 'study.db'}"
        command = [sys.executable, str(ROOT / "scripts" / "tune.py"), "--storage", storage,
                   "--study", "bench", "--trials", str(args.trials), "--epochs", str(args.epochs),
                   "--objective", "mlp", "--sampler", "random", "--pruner", "none",
                   "--threads", str(threads), "--train-size", str(args.train_size),
                   "--space", SPACE]
        start = time.perf_counter()
        procs = [subprocess.Popen([*command, "--seed", str(k)], stdout=subprocess.PIPE, text=True,
                                  cwd=ROOT) for k in range(workers)]
        outputs = [proc.communicate()[0] for proc in procs]
        wall = time.perf_counter() - start
        if any(proc.returncode for proc in procs):
            raise RuntimeError(f"a worker failed: {outputs}")
    optimize = max(json.loads(line)["seconds"] for out in outputs for line in out.splitlines()
                   if '"seconds"' in line)
    return wall, optimize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=6_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    configs = [(1, cores), (1, 1), (2, max(1, cores // 2))]  # the first is the reference
    load_before = os.getloadavg()
    times: dict[tuple[int, int], list[tuple[float, float]]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        for workers, threads in configs:  # interleaved, so a change in the machine's load hits both
            times[(workers, threads)].append(one_run(workers, threads, args))
            wall = times[(workers, threads)][-1][0]
            print(f"repeat {repeat}: {workers} worker(s) x {threads} thread(s): {wall:.1f} s", flush=True)
    base = statistics.median(w for w, _ in times[configs[0]])
    runs = []
    for (workers, threads), values in times.items():
        wall = statistics.median(w for w, _ in values)
        runs.append({"workers": workers, "threads": threads, "trials": args.trials, "epochs": args.epochs,
                     "wall_s": wall, "repeats_s": [w for w, _ in values],
                     "optimize_s": statistics.median(o for _, o in values), "speedup": base / wall})
        print(f"{workers} worker(s) x {threads} thread(s): median {wall:.1f} s, {base / wall:.2f}x")
    command = "python benchmarks/tune_workers.py " + " ".join(sys.argv[1:])
    path = save_results("tune_workers_cpu", {
        "command": command.strip(), "cores": cores, "runs": runs,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "what": "wall time from starting the workers until the last exits, one fresh SQLite study "
                "per run; trials of the course MLP on Fashion-MNIST, random sampling, no pruning"},
        device="cpu", folder=ROOT / "notebooks" / "results")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
