"""A worker of an Optuna study: start as many as you like, on one machine or on many.

Every worker opens the same study, asks it for a trial, trains, reports the validation accuracy
after each epoch (the pruner may stop a poor trial early), and stops once the study holds
``--trials`` finished (complete or pruned) trials. The database is the only thing workers share,
so going from a laptop to a cluster changes one thing, the storage URL:

    # one machine, no server: a SQLite file (run this line in 2 terminals, or with &)
    python scripts/tune.py --storage sqlite:///notebooks/results/studies/tune.db --study lr-wd --trials 40
    # many machines: the same command on each, pointed at one PostgreSQL database
    export COURSE_STUDY_STORAGE=postgresql+psycopg://course:PASSWORD@db-host:5432/optuna
    python scripts/tune.py --study lr-wd --trials 40

A worker killed mid-trial loses nothing that finished: its running trial stops sending
heartbeats, and the next worker to start a trial marks it FAIL and queues its parameters again
(``--heartbeat``, ``--max-retry``). ``--log`` appends one JSON line per finished trial.
``--objective synthetic`` replaces training by a formula and ``--trial-seconds`` of sleep (for
tests); ``--objective mlp`` trains the course MLP on Fashion-MNIST as notebook 10 does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from course_utils.studies import StorageUnavailableError, open_storage, open_study, suggest  # noqa: E402
from course_utils.tuning import parse_space  # noqa: E402

DEFAULT_SPACE = '{"lr": ["log", 0.001, 1.0], "weight_decay": ["choice", 0.0, 1e-05, 0.0001]}'


def synthetic_objective(args: argparse.Namespace, space: dict):
    """A smooth bowl in log10(lr) peaking at lr = 0.05 (weight decay barely matters), with sleep."""
    import optuna

    def objective(trial):
        params = suggest(trial, space)
        final = 0.9 - 0.1 * math.log10(params.get("lr", 0.05) / 0.05) ** 2 \
            - 10 * params.get("weight_decay", 0.0)
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.trial_seconds / args.epochs)
            trial.report(final * (1 - 0.5 ** epoch), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final * (1 - 0.5 ** args.epochs)

    return objective


def mlp_objective(args: argparse.Namespace, space: dict):
    """Validation accuracy of the course MLP (SGD, momentum 0.9) after each of ``--epochs``."""
    import optuna
    import torch

    from course_utils.data import course_split, get_dataset, normalization, tensor_loader
    from course_utils.hardware import seed_everything
    from course_utils.models import mlp
    from course_utils.sizing import size_policy
    from course_utils.train import train

    torch.set_num_threads(args.threads)  # a worker's share of the cores
    sizes = size_policy("cpu")
    train_set, val_set = course_split(get_dataset("fashion_mnist"), train_size=args.train_size,
                                      sizes=sizes)
    normalize = normalization(train_set)
    val_loader = tensor_loader(val_set, batch_size=1000, normalize=normalize)

    def objective(trial):
        params = suggest(trial, space)
        seed_everything(args.train_seed)  # every trial starts from the same weights and batches
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9,
                                    weight_decay=params.get("weight_decay", 0.0))
        loader = tensor_loader(train_set, batch_size=128, shuffle=True, normalize=normalize,
                               seed=args.train_seed)

        def report(epoch, history):
            trial.report(history.val_acc[-1], epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned()

        history = train(model, loader, optimizer=optimizer, epochs=args.epochs, val_loader=val_loader,
                        on_epoch_end=report, progress=False)
        return history.val_acc[-1] if history.diagnosis is None else math.nan

    return objective


def trial_logger(path: Path):
    """An Optuna callback appending each finished trial as a JSON line, flushed to disk."""
    def log(study, trial):
        record = {"number": trial.number, "state": trial.state.name, "value": trial.value,
                  "params": trial.params, "worker": os.getpid(),
                  "retry_of": trial.system_attrs.get("failed_trial")}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    return log


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=os.environ.get("COURSE_STUDY_STORAGE"),
                        help="database URL (default: $COURSE_STUDY_STORAGE)")
    parser.add_argument("--study", required=True, help="study name, the same for every worker")
    parser.add_argument("--direction", default="maximize", choices=("maximize", "minimize"))
    parser.add_argument("--trials", type=int, required=True, help="finished trials the study needs")
    parser.add_argument("--space", default=DEFAULT_SPACE, help="search space as JSON")
    parser.add_argument("--objective", default="mlp", choices=("mlp", "synthetic"))
    parser.add_argument("--epochs", type=int, default=3, help="epochs (reports) per trial")
    parser.add_argument("--sampler", default="tpe", choices=("tpe", "random"))
    parser.add_argument("--pruner", default="median", choices=("median", "halving", "none"))
    parser.add_argument("--seed", type=int, default=None, help="sampler seed (differ per worker)")
    parser.add_argument("--heartbeat", type=int, default=10, help="seconds between heartbeats")
    parser.add_argument("--grace", type=int, default=None, help="seconds before a silent trial "
                        "is failed (default: twice --heartbeat)")
    parser.add_argument("--max-retry", type=int, default=1, help="re-runs of a failed trial")
    parser.add_argument("--log", type=Path, default=None, help="append finished trials (JSON lines)")
    parser.add_argument("--wait-for", type=Path, default=None,
                        help="start the first trial only once this file exists")
    parser.add_argument("--trial-seconds", type=float, default=0.2, help="synthetic: sleep per trial")
    parser.add_argument("--train-size", type=int, default=12_000, help="mlp: training images")
    parser.add_argument("--train-seed", type=int, default=0, help="mlp: seed of weights and batches")
    parser.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1),
                        help="mlp: torch threads of this worker")
    args = parser.parse_args(argv)
    if args.storage is None:
        parser.error("give --storage URL or set COURSE_STUDY_STORAGE")
    if args.trials < 1 or args.epochs < 1:
        parser.error(f"--trials and --epochs must be positive, got {args.trials} and {args.epochs}")
    try:
        args.space_dims = parse_space(json.loads(args.space))
    except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        parser.error(f"--space: {err}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    pruners = {"median": optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
               "halving": optuna.pruners.SuccessiveHalvingPruner(), "none": optuna.pruners.NopPruner()}
    try:
        storage = open_storage(args.storage, heartbeat_interval=args.heartbeat,
                               grace_period=args.grace, max_retry=args.max_retry)
        study = open_study(storage, args.study, direction=args.direction,
                           sampler=samplers[args.sampler](seed=args.seed), pruner=pruners[args.pruner])
    except (StorageUnavailableError, ValueError) as err:
        print(f"tune.py: error: {err}", file=sys.stderr)
        return 2
    make = mlp_objective if args.objective == "mlp" else synthetic_objective
    objective = make(args, args.space_dims)
    print(json.dumps({"worker": os.getpid(), "ready": True}), flush=True)
    while args.wait_for is not None and not args.wait_for.exists():
        time.sleep(0.05)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    callbacks = [optuna.study.MaxTrialsCallback(args.trials, states=finished)]
    if args.log is not None:
        callbacks.append(trial_logger(args.log))
    started = time.perf_counter()
    if len(study.get_trials(deepcopy=False, states=finished)) < args.trials:
        study.optimize(objective, callbacks=callbacks)
    print(json.dumps({"worker": os.getpid(), "seconds": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
