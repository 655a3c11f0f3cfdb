"""Train the course's small CNN with DistributedDataParallel (DDP). Launch it with torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 scripts/train_ddp.py --out ddp.json

torchrun starts ``--nproc_per_node`` copies of this file; each reads its rank from the
environment (``course_utils.distributed.setup``), trains on its own shard of the data
(``DistributedSampler``) and DDP averages the gradients across processes in ``backward()``, so
every process takes the same optimizer step. Backend: gloo on the CPU, nccl with one GPU per
process (the default where CUDA is available). Several ``--seeds`` train one after the other in
the same launch, so starting the processes (seconds) is paid once. Rank 0 alone prints, saves
checkpoints (of the first seed) and writes a JSON report: per seed the training losses, the
validation accuracy after every epoch and the images per second of every timed block of steps;
per rank the weight fingerprints and the first batch's indices. Taught in notebook 12. Needs the
``course_utils`` package (``make venv`` installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from course_utils.bench import synchronize
from course_utils.data import TensorLoader, course_split, get_dataset, normalization, subset
from course_utils.distributed import (
    DistContext,
    gather_objects,
    print_on_main,
    save_on_main,
    setup,
    state_fingerprint,
    teardown,
)
from course_utils.models import small_cnn
from course_utils.sizing import SizePolicy
from course_utils.train import evaluate, train_step

AS_GIVEN = SizePolicy(1.0, "cpu", "default")  # sizes arrive already scaled by the notebook


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON report written by rank 0")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="rank 0 saves step1.ckpt and final.ckpt (first seed) here")
    parser.add_argument("--data", choices=("fashion_mnist", "synthetic"), default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=12_000, help="the course split's subset")
    parser.add_argument("--val-size", type=int, default=2_000, help="validation images evaluated")
    parser.add_argument("--normalize", action="store_true",
                        help="standardize inputs with course_utils.data.normalization(train set)")
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=0.1, help="used as given: scale it yourself")
    parser.add_argument("--norm", choices=("none", "batch"), default="none")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per seed")
    parser.add_argument("--block-steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--backend", choices=("gloo", "nccl"), default=None)
    parser.add_argument("--timeout", type=float, default=60.0, help="rendezvous timeout, seconds")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """Training and validation tensors ``(x, y, x_val, y_val)``; every process loads the same."""
    if args.data == "synthetic":  # tiny and instant: for tests
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(args.train_size + args.val_size, 1, 12, 12, generator=generator)
        y = torch.randint(0, 10, (len(x),), generator=generator)
        return x[:args.train_size], y[:args.train_size], x[args.train_size:], y[args.train_size:]
    train_set, val_set = course_split(get_dataset("fashion_mnist"), train_size=args.train_size,
                                      sizes=AS_GIVEN)  # the notebook's split, image for image
    val_set = subset(val_set, min(args.val_size, len(val_set)), seed=0)
    (x, y), (x_val, y_val) = train_set.tensors(), val_set.tensors()
    if args.normalize:
        mean, std = (torch.tensor(v).reshape(-1, 1, 1) for v in normalization(train_set))
        x, x_val = (x - mean) / std, (x_val - mean) / std
    return x, y, x_val, y_val


def run_seed(args: argparse.Namespace, ctx: DistContext, seed: int, data: tuple,
             first: bool) -> tuple[dict, dict]:
    """Train one model for ``args.epochs`` epochs; return (the run's results, this rank's notes)."""
    x, y, val_loader = data
    sampler = DistributedSampler(range(len(x)), num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=seed)
    torch.manual_seed(seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = small_cnn(in_channels=x.shape[1], norm=args.norm).to(ctx.device)
    notes = {"rank": ctx.rank, "fingerprint_initial": state_fingerprint(model)}
    ddp_model = DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=args.lr)
    loss_fn, size = nn.CrossEntropyLoss(), args.batch_size
    steps_per_epoch = sampler.num_samples // size  # full batches only
    losses, block_s, val_acc = [], [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # without it every epoch repeats the same order
        order = torch.tensor(list(sampler), device=ctx.device)
        synchronize(ctx.device)
        start = time.perf_counter()
        for k in range(steps_per_epoch):
            index = order[k * size:(k + 1) * size]
            losses.append(train_step(ddp_model, x[index], y[index], optimizer=optimizer, loss_fn=loss_fn))
            if first and epoch == 0 and k == 0:  # inside the first block, which is not counted
                notes.update(first_batch=index.tolist(), fingerprint_step1=state_fingerprint(model))
                if args.checkpoint_dir is not None:  # the inner model: loadable without DDP
                    save_on_main(ctx, args.checkpoint_dir / "step1.ckpt",
                                 {"model": model.state_dict(), "step": 1})
            if (k + 1) % args.block_steps == 0:  # one device sync per block, not per step
                synchronize(ctx.device)
                now = time.perf_counter()
                block_s.append(now - start)
                start = now
        if ctx.is_main:  # every rank holds the same weights: one evaluation is enough
            val_acc.append(evaluate(model, val_loader).accuracy)
        dist.barrier()
    loss = torch.stack(losses).float()
    dist.all_reduce(loss)  # the loss of the whole effective batch = mean of the ranks' losses
    notes.update(fingerprint_final=state_fingerprint(model), block_s=block_s)
    if first and args.checkpoint_dir is not None:
        save_on_main(ctx, args.checkpoint_dir / "final.ckpt",
                     {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "step": len(losses)})
    return {"seed": seed, "steps": len(losses), "loss": (loss / ctx.world_size).tolist(),
            "val_acc": val_acc}, notes


def train(args: argparse.Namespace, ctx: DistContext) -> None:
    quiet = contextlib.nullcontext() if ctx.is_main else contextlib.redirect_stdout(io.StringIO())
    with quiet:  # data notices (e.g. the fallback data) once, not once per process
        x, y, x_val, y_val = (t.to(ctx.device) for t in load_data(args))
    print(f"rank {ctx.rank}/{ctx.world_size}: device {ctx.device}, {torch.get_num_threads()} "
          f"thread(s), {len(x):,} training images", flush=True)
    data = (x, y, TensorLoader(x_val, y_val, batch_size=1000))
    runs, rank_notes = [], []
    for k, seed in enumerate(args.seeds):
        run, notes = run_seed(args, ctx, seed, data, first=k == 0)
        # The ranks move in lock-step (every backward waits for the all-reduce): the slowest
        # rank sets the pace of each block.
        every_rank = gather_objects(ctx, notes)
        block_images = args.block_steps * args.batch_size * ctx.world_size
        blocks = [max(times) for times in zip(*(n["block_s"] for n in every_rank), strict=True)]
        run["images_per_s"] = [block_images / s for s in blocks[1:]]  # block 0: warm-up
        speed = (f"{statistics.median(run['images_per_s']):,.0f} images/s" if run["images_per_s"]
                 else "too few steps to time (lower --block-steps)")
        runs.append(run)
        if k == 0:
            rank_notes = every_rank
        print_on_main(ctx, f"seed {seed}: {run['steps']} steps of {args.batch_size * ctx.world_size} "
                           f"images ({ctx.world_size} x {args.batch_size}); val acc per epoch "
                           + " ".join(f"{a:.1%}" for a in run["val_acc"])
                           + f"; {speed}")
    if ctx.is_main:
        write_report(args, ctx, runs, rank_notes, len(x))


def write_report(args: argparse.Namespace, ctx: DistContext, runs: list[dict], ranks: list,
                 train_size: int) -> None:
    report = {
        "world_size": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
        "threads_per_process": args.threads, "batch_size_per_process": args.batch_size,
        "effective_batch_size": args.batch_size * ctx.world_size, "lr": args.lr,
        "norm": args.norm, "data": args.data, "normalize": args.normalize,
        "train_size": train_size, "epochs": args.epochs, "block_steps": args.block_steps,
        "runs": runs, "ranks": [{k: v for k, v in r.items() if k != "block_s"} for r in ranks],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if min(args.train_size, args.val_size, args.batch_size, args.epochs, args.block_steps,
           args.threads) < 1:
        raise SystemExit("train/val size, batch size, epochs, block steps and threads must be >= 1")
    # Explicit threads per process: torchrun sets OMP_NUM_THREADS=1 for several processes, and
    # N processes x T threads must not exceed the cores, or they all slow down.
    torch.set_num_threads(args.threads)
    ctx = setup(args.backend, timeout_s=args.timeout)
    try:
        train(args, ctx)
    finally:
        teardown()


if __name__ == "__main__":
    main()
