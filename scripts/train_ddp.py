"""Train the course's small CNN with DistributedDataParallel (DDP). Launch it with torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 scripts/train_ddp.py --out ddp.json

torchrun starts ``--nproc_per_node`` copies of this file; each reads its rank from the
environment (``course_utils.distributed.setup``), trains on its own shard of the data
(``DistributedSampler``) and DDP averages the gradients across processes in ``backward()``, so
every process takes the same optimizer step. Backend: gloo on the CPU, nccl with one GPU per
process (the default where CUDA is available). Rank 0 alone prints progress, saves checkpoints
and writes a JSON report (timings, per-rank weight fingerprints, the first batch's indices).
Taught in notebook 12. Needs the ``course_utils`` package (``make venv`` installs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from course_utils.bench import benchmark
from course_utils.data import TensorLoader, get_dataset, subset, train_val_split
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
from course_utils.train import evaluate, train_step

SPLIT_SEED = 0  # the course's split (notebook 00): 5,000 validation images, seeded subset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON report written by rank 0")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="rank 0 saves step1.ckpt and final.ckpt here")
    parser.add_argument("--data", choices=("fashion_mnist", "synthetic"), default="fashion_mnist")
    parser.add_argument("--train-size", type=int, default=12_000)
    parser.add_argument("--val-size", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=0.1, help="used as given: scale it yourself")
    parser.add_argument("--norm", choices=("none", "batch"), default="none")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--block-steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--warmup", type=int, default=1, help="untimed blocks")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("gloo", "nccl"), default=None)
    parser.add_argument("--timeout", type=float, default=60.0, help="rendezvous timeout, seconds")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """Training and validation tensors; every process loads the same ones."""
    if args.data == "synthetic":  # tiny and instant: for tests
        generator = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.train_size + args.val_size, 1, 12, 12, generator=generator)
        y = torch.randint(0, 10, (len(x),), generator=generator)
        return x[:args.train_size], y[:args.train_size], x[args.train_size:], y[args.train_size:]
    rest, val_set = train_val_split(get_dataset("fashion_mnist"), args.val_size, seed=SPLIT_SEED)
    train_set = subset(rest, args.train_size, seed=SPLIT_SEED)
    return (*train_set.tensors(), *val_set.tensors())


def index_batches(sampler: DistributedSampler, batch_size: int) -> Iterator[torch.Tensor]:
    """This rank's batches of indices, epoch after epoch (a new shuffle each epoch)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)  # without it every epoch repeats the same order
        indices = torch.tensor(list(sampler))
        for start in range(0, len(indices) - batch_size + 1, batch_size):  # full batches only
            yield indices[start:start + batch_size]
        epoch += 1


def train(args: argparse.Namespace, ctx: DistContext) -> None:
    x, y, x_val, y_val = (t.to(ctx.device) for t in load_data(args))
    sampler = DistributedSampler(range(len(x)), num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=args.seed)
    print(f"rank {ctx.rank}/{ctx.world_size}: device {ctx.device}, {torch.get_num_threads()} "
          f"thread(s), shard of {sampler.num_samples:,} of {len(x):,} images", flush=True)

    torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = small_cnn(in_channels=x.shape[1], norm=args.norm).to(ctx.device)
    initial = state_fingerprint(model)
    ddp_model = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda"
                                        else None)
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    batches, losses = index_batches(sampler, args.batch_size), []

    def step() -> torch.Tensor:
        index = next(batches)
        losses.append(train_step(ddp_model, x[index], y[index], optimizer=optimizer, loss_fn=loss_fn))
        return index

    first_index = step()
    after_step1 = state_fingerprint(model)
    if args.checkpoint_dir is not None:  # the inner model's state_dict: loadable without DDP
        save_on_main(ctx, args.checkpoint_dir / "step1.ckpt", {"model": model.state_dict(), "step": 1})
    timing = benchmark(lambda: [step() for _ in range(args.block_steps)], warmup=args.warmup,
                       repeats=args.repeats, device=ctx.device)
    if args.checkpoint_dir is not None:
        save_on_main(ctx, args.checkpoint_dir / "final.ckpt",
                     {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "step": len(losses)})

    loss = torch.stack(losses).float()
    dist.all_reduce(loss)  # the loss of the whole effective batch = mean of the ranks' losses
    loss /= ctx.world_size
    ranks = gather_objects(ctx, {
        "rank": ctx.rank, "device": str(ctx.device), "threads": torch.get_num_threads(),
        "shard_size": sampler.num_samples, "first_batch": first_index.tolist(),
        "fingerprint_initial": initial, "fingerprint_step1": after_step1,
        "fingerprint_final": state_fingerprint(model), "times_s": list(timing.times_s)})
    if ctx.is_main:
        write_report(args, ctx, ranks, loss.tolist(), model, x_val, y_val)


def write_report(args: argparse.Namespace, ctx: DistContext, ranks: list, loss: list[float],
                 model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor) -> None:
    block_images = args.block_steps * args.batch_size * ctx.world_size
    # The ranks move in lock-step (every backward waits for the all-reduce): the slowest sets the pace.
    block_s = [max(times) for times in zip(*(r["times_s"] for r in ranks), strict=True)]
    images_per_s = [block_images / seconds for seconds in block_s]
    val = evaluate(model, TensorLoader(x_val, y_val, batch_size=1000))
    report = {
        "world_size": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
        "threads_per_process": args.threads, "batch_size_per_process": args.batch_size,
        "effective_batch_size": args.batch_size * ctx.world_size, "lr": args.lr,
        "norm": args.norm, "data": args.data, "train_size": args.train_size, "seed": args.seed,
        "steps": len(loss), "warmup_blocks": args.warmup, "block_steps": args.block_steps,
        "block_images": block_images, "images_per_s": images_per_s,
        "images_per_s_median": statistics.median(images_per_s),
        "loss": loss, "val_loss": val.loss, "val_acc": val.accuracy, "ranks": ranks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print_on_main(ctx, f"{len(loss)} steps of {report['effective_batch_size']} images "
                       f"({ctx.world_size} x {args.batch_size}); last loss {loss[-1]:.4f}; "
                       f"val acc {val.accuracy:.1%}; {report['images_per_s_median']:,.0f} images/s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
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
