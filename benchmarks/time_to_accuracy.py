"""Time to accuracy on the full Fashion-MNIST: notebook 13's table, headless.

Every row trains on all 60,000 training images and is judged on the 10,000 test images:

- ``stack``: the baseline recipe of notebook 00, then one tip added per row
  (``course_utils.speedrun.stack``), each row with the same epoch budget;
- ``ablation``: the last row with one tip removed at a time (``speedrun.ablations``);
- ``budgets``: the last row at a quarter, half and twice the budget (``speedrun.budget_rows``),
  where the goals for low targets are judged;
- ``last``: only the last row, written over the record's (to update the record).

``--check`` re-runs the last row with the record's seeds and judges it against the record by the
rule of ``course_utils.speedrun_table.reproduction`` (seeds paired, within 2 standard deviations
of the record's seeds, times also taken at the record's throughput, since a busier machine
changes them); it leaves the record alone, appends the sitting to
``notebooks/results/time_to_accuracy_<device>_checks.json`` and exits 1 if it does not reproduce.

Each row runs ``--seeds`` seeds. The training clock excludes the test evaluations (4 per epoch)
and includes compiling. The JSON record (``notebooks/results/time_to_accuracy_<device>.json``,
merged row by row so ``--rows last`` updates only that row) holds every run's accuracy curve,
the device, the date, the exact command and the torch version, plus this machine's fp32
matmul peak and each row's training FLOPs per image.

``--dataset cifar10`` runs the CIFAR-10 variant instead: one row, the course's tips carried over
to a ResNet-9 on 3x32x32 images (``speedrun.cifar10_recipe``), judged at 90%, 93% and 94%, with
``--rows last``/``all``, ``--check`` and ``--tune`` as above (``time_to_accuracy_cifar10_<device>.json``).
It needs CIFAR-10 on disk or a download; there is no fallback.

``--tune`` instead sweeps the LRs of the tips that set one on a validation split (5,000 held-out
training images), so the test set is never used for a choice.

Usage (from the repository root):
``python benchmarks/time_to_accuracy.py [--rows stack|ablation|budgets|last|all] [--seeds 3] [--epochs E]``
``python benchmarks/time_to_accuracy.py --check``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from course_utils.data import VAL_SIZE, course_split, get_dataset, is_fallback
from course_utils.hardware import cpu_name, describe_accelerator, get_device
from course_utils.results import atomic_write_text, read_json
from course_utils.sizing import size_policy
from course_utils.speedrun import (
    CIFAR10_TARGETS,
    SpeedrunData,
    ablations,
    budget_epochs,
    budget_rows,
    cifar10_recipe,
    matches_record,
    matmul_peak,
    run_recipe,
    stack,
    summarize,
    tips_for,
    training_flops,
)
from course_utils.speedrun_table import reproduction

RESULTS = Path(__file__).resolve().parent.parent / "notebooks" / "results"
TARGETS = (0.85, 0.90, 0.92, 0.93)


def load_data(device: torch.device, *, validation: bool,
              name: str = "fashion_mnist") -> tuple[SpeedrunData, str]:
    """The full train/test sets on ``device`` (``validation``: the course split instead).

    Fashion-MNIST falls back to the digits with a notice, as everywhere in the course; CIFAR-10
    has no stand-in, so without it this stops with a message saying how to get it."""
    try:
        train_full = get_dataset(name, train=True, fallback=name == "fashion_mnist")
        test_full = None if validation else get_dataset(name, train=False, fallback=name == "fashion_mnist")
    except FileNotFoundError as err:
        raise SystemExit(f"{name} is not available on this machine, so its time to accuracy cannot be "
                         f"measured here:\n{err}\nDownload it with torchvision (online) or set "
                         "COURSE_DATA_DIR to a folder in torchvision's layout.") from None
    if validation:
        train_set, test_set = course_split(train_full, train_size=len(train_full) - VAL_SIZE,
                                           sizes=size_policy("cpu"))
    else:
        train_set, test_set = train_full, test_full
    data = SpeedrunData.from_datasets(train_set, test_set, device)
    return data, train_full.source


def command() -> str:
    keys = ("OMP_NUM_THREADS", "COURSE_SCALE", "TORCHINDUCTOR_FORCE_DISABLE_CACHES")
    env = [f"{key}={os.environ[key]}" for key in keys if key in os.environ]
    return " ".join([*env, "python", *sys.argv])


def hardware() -> str:
    return f"{cpu_name()} ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def record_path(device: torch.device, name: str = "time_to_accuracy") -> Path:
    return RESULTS / f"{name}_{device.type}.json"


def run_rows(rows, data, seeds, device, path: Path, source: str, group: str, first: int = 0,
             targets=TARGETS) -> None:
    record = read_json(path, regenerate="re-run this benchmark") if path.is_file() else {"rows": {}}
    record.update(device=device.type, accelerator=describe_accelerator(device), hardware=hardware(),
                  torch=torch.__version__, data=source, targets=list(targets),
                  train_images=len(data.train_y), test_images=len(data.test_y),
                  matmul_peak_flops=matmul_peak(device))
    for order, recipe in enumerate(rows):
        results = [run_recipe(recipe, data, seed=seed) for seed in seeds]
        summary = summarize(results, targets)
        summary.update(group=group, order=first + order, recipe=recipe.__dict__,
                       flops_per_image=training_flops(recipe, data),
                       date=now(), command=command())
        record["rows"][recipe.name] = summary
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        best = [f"{a:.3f}" for a in summary["best_acc"]]
        print(f"{recipe.name:42} best {best}  {[f'{s:.0f}' for s in summary['images_per_s']]} img/s",
              flush=True)


def check_row(recipe, data, device, path: Path, source: str, targets=TARGETS) -> int:
    """Re-run ``recipe``'s recorded row with its seeds; judge, log the sitting, return 0 or 1."""
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: make the record first (--rows all)")
    record = read_json(path, regenerate="re-run this benchmark with --rows all")
    recorded = record["rows"].get(recipe.name)
    if recorded is None or not matches_record(recipe, recorded["recipe"]):
        raise SystemExit(f"the record has no row {recipe.name!r} made with today's recipe: the stack "
                         "changed since the record was made; re-run --rows all")
    print(f"re-running {recipe.name!r}, seeds {recorded['seeds']} (recorded {recorded['date']}) ...",
          flush=True)
    peak = matmul_peak(device)
    rerun = summarize([run_recipe(recipe, data, seed=seed) for seed in recorded["seeds"]], targets)
    result = reproduction(recorded, rerun, targets)
    print(result)
    print(f"fp32 matmul peak now {peak / 1e9:.0f} GFLOP/s, in the record "
          f"{record['matmul_peak_flops'] / 1e9:.0f}")
    checks_path = path.with_name(f"{path.stem}_checks.json")
    log = read_json(checks_path, regenerate="delete it") if checks_path.is_file() else {"sittings": []}
    log["sittings"].append({
        "date": now(), "command": command(), "hardware": hardware(),
        "torch": torch.__version__, "data": "fallback" if is_fallback(source) else source.split(" ")[0],
        "row": recipe.name,
        "record_date": recorded["date"], "matmul_peak_flops": peak, "speed_ratio": result.speed_ratio,
        "reproduces": result.holds, "identical_accuracy": result.identical_accuracy,
        "checks": [{"metric": c.metric, "recorded": c.recorded, "spread": c.spread,
                    "difference": c.difference, "within": c.holds} for c in result.checks],
        "rerun": {k: v for k, v in rerun.items() if k != "curves"}})
    atomic_write_text(checks_path, json.dumps(log, indent=1) + "\n")
    print(f"sitting appended to {checks_path}")
    return 0 if result.holds else 1


def cifar10(args: argparse.Namespace, device: torch.device, seeds: list[int]) -> int:
    """The CIFAR-10 variant: its one row (``speedrun.cifar10_recipe``), tuned, checked or recorded
    in ``time_to_accuracy_cifar10_<device>.json``."""
    recipe = cifar10_recipe(device, **({"epochs": args.epochs} if args.epochs else {}))
    if args.tune is not None:
        data, source = load_data(device, validation=True, name="cifar10")
        tuned = [recipe.but(f"{recipe.name}, lr {lr:g}", lr=lr) for lr in args.tune]
        run_rows(tuned, data, seeds, device, record_path(device, "time_to_accuracy_cifar10_tuning"), source,
                 "tune", targets=CIFAR10_TARGETS)
        return 0
    data, source = load_data(device, validation=False, name="cifar10")
    path = record_path(device, "time_to_accuracy_cifar10")
    if args.check:
        return check_row(recipe, data, device, path, source, targets=CIFAR10_TARGETS)
    run_rows([recipe], data, seeds, device, path, source, "stack", targets=CIFAR10_TARGETS)
    print(f"written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("fashion_mnist", "cifar10"), default="fashion_mnist",
                        help="cifar10: the CIFAR-10 variant, one row (its full recipe); needs the data")
    parser.add_argument("--rows", choices=("stack", "ablation", "budgets", "last", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=None, help="epoch budget of every row")
    parser.add_argument("--tune", nargs="*", type=float, default=None,
                        help="LRs to try for one row (--tune-row) on the validation split")
    parser.add_argument("--tune-row", type=int, default=-1, help="the stack row whose LR --tune sweeps")
    parser.add_argument("--check", action="store_true",
                        help="re-run the record's last row and judge it against it (record unchanged)")
    args = parser.parse_args(argv)
    device = get_device()
    seeds = list(range(args.seeds))
    if args.dataset == "cifar10":
        if args.rows in ("ablation", "budgets"):
            parser.error("--dataset cifar10 has one row, its full recipe: use --rows last or all")
        return cifar10(args, device, seeds)
    epochs = args.epochs or budget_epochs(size_policy(device))
    tips = tips_for(device)
    rows = stack(tips=tips, epochs=epochs)
    if args.tune is not None:
        data, source = load_data(device, validation=True)
        row = rows[args.tune_row]
        tuned = [row.but(f"{row.name}, lr {lr:g}", lr=lr) for lr in args.tune]
        run_rows(tuned, data, seeds, device, record_path(device, "time_to_accuracy_tuning"), source, "tune")
        return 0
    data, source = load_data(device, validation=False)
    path = record_path(device)
    if args.check:
        return check_row(rows[-1], data, device, path, source)
    if args.rows in ("stack", "all"):
        run_rows(rows, data, seeds, device, path, source, "stack")
    elif args.rows == "last":
        run_rows(rows[-1:], data, seeds, device, path, source, "stack", first=len(rows) - 1)
    if args.rows in ("ablation", "all"):
        run_rows(ablations(rows, tips), data, seeds, device, path, source, "ablation")
    if args.rows in ("budgets", "all"):
        run_rows(budget_rows(rows[-1]), data, seeds, device, path, source, "budgets")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
