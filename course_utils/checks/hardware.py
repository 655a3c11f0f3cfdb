"""Checks for the hardware notebooks: the fp16 AMP step (11), DDP sharding (12)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from course_utils.checks._base import CheckResult, _call
from course_utils.train import train_step


def _amp_steps(initial: nn.Module, x: torch.Tensor, y: torch.Tensor, case: tuple, steps: int,
               mistake: str | None = None) -> nn.Module:
    """``steps`` fp16 AMP steps on a copy of ``initial``: the course's ``train_step``, or a
    hand-written step with one ``mistake`` (a key of ``_AMP_MISTAKES``) built in."""
    _, loss_fn, max_norm, lr = case
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler("cpu", enabled=mistake != "scale")
    for _ in range(steps):
        if mistake is None:
            train_step(model, x, y, optimizer=optimizer, loss_fn=loss_fn, amp="fp16", scaler=scaler,
                       grad_clip=max_norm)
            continue
        dtype = torch.bfloat16 if mistake == "bf16" else torch.float16
        with torch.autocast("cpu", dtype=dtype, enabled=mistake != "autocast"):
            loss = loss_fn(model(x), y)
        if mistake != "zero_grad":
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if mistake != "unscale":
            scaler.unscale_(optimizer)
        if mistake != "clip":
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
    return model


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.allclose(p, q, rtol=0.0, atol=1e-7) for p, q in
               zip(a.parameters(), b.parameters(), strict=True))


_AMP_MISTAKES = {
    "unscale": "the gradients were clipped while still scaled: call scaler.unscale_(optimizer) "
               "before clip_grad_norm_",
    "scale": "the fp16 gradients underflowed to zero: back-propagate scaler.scale(loss), not loss",
    "autocast": "the forward pass did not run in fp16: compute model(x) and the loss inside "
                "torch.autocast(x.device.type, dtype=torch.float16)",
    "bf16": "the forward pass ran in bfloat16; this exercise asks for dtype=torch.float16",
    "clip": "the gradients were not clipped: call nn.utils.clip_grad_norm_(model.parameters(), "
            "max_norm) after scaler.unscale_(optimizer)",
    "zero_grad": "gradients from step 1 leaked into step 2: call optimizer.zero_grad() before "
                 "backward",
}


def check_amp_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn, scaler, max_norm)``: one fp16 AMP step.

    The reference is the course's ``train_step(..., amp="fp16", scaler=scaler,
    grad_clip=max_norm)`` on the CPU: forward under ``torch.autocast``,
    ``scaler.scale(loss).backward()``, ``scaler.unscale_`` *before* clipping, ``scaler.step``,
    ``scaler.update``. Two cases, two steps each: an ordinary loss with active clipping (shows
    clipping of still-scaled gradients) and a loss multiplied by 1e-6 (its fp16 gradients
    underflow unless the loss is scaled). The first mismatch is named with its usual cause.
    Notebook 11.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=generator), torch.randint(0, 3, (32,), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    cases = [  # name, loss_fn, max_norm, lr (x 1e6 for the loss x 1e-6: the same updates)
        ("an ordinary loss and max_norm=0.05", nn.CrossEntropyLoss(), 0.05, 0.1),
        ("a loss multiplied by 1e-6", lambda logits, y: nn.functional.cross_entropy(logits, y) * 1e-6,
         1.0, 1e5),
    ]
    for case in cases:
        student = copy.deepcopy(initial)
        optimizer = torch.optim.SGD(student.parameters(), lr=case[3])
        scaler = torch.amp.GradScaler("cpu")
        for steps in (1, 2):
            got, failure = _call(fn, student, x, y, optimizer, case[1], scaler, case[2])
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if _same_parameters(student, _amp_steps(initial, x, y, case, steps)):
                continue
            where = f"with {case[0]}, after step {steps}"
            if all(torch.equal(p, q) for p, q in zip(student.parameters(), initial.parameters(),
                                                      strict=True)):
                unscaled = _amp_steps(initial, x, y, case, steps, "scale")
                cause = (_AMP_MISTAKES["scale"] if _same_parameters(unscaled, initial) else
                         "call scaler.step(optimizer) (it calls optimizer.step())")
                return CheckResult(False, f"{where}: the parameters did not change; {cause}")
            for mistake, cause in _AMP_MISTAKES.items():
                if _same_parameters(student, _amp_steps(initial, x, y, case, steps, mistake)):
                    return CheckResult(False, f"{where}: {cause}")
            return CheckResult(False, f"{where}: the parameters differ from the reference; "
                                      "compare your step with train_step in course_utils/train.py")
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return CheckResult(False, f"{fn.__name__} returned {got!r}; return the batch's loss "
                                      "(a 0-d tensor)")
    return CheckResult(True, f"{fn.__name__} matches the fp16 AMP reference step, with active "
                             "clipping and with gradients that underflow unless scaled.")


def _shard_reference(num_samples: int, rank: int, world_size: int, seed: int, epoch: int, *,
                     shuffle: bool = True, strided: bool = True) -> list[int]:
    """DistributedSampler's indices for one rank, or a typical mistake (no shuffle, blocks)."""
    order = (torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
             if shuffle else list(range(num_samples)))
    per_rank = -(-num_samples // world_size)  # ceil
    padded = (order * per_rank * world_size)[:per_rank * world_size]  # repeat from the start
    return padded[rank::world_size] if strided else padded[rank * per_rank:(rank + 1) * per_rank]


def check_shard_indices(fn: Callable[[int, int, int, int, int], object]) -> CheckResult:
    """Check ``fn(num_samples, rank, world_size, seed, epoch) -> list of indices`` (one rank's shard).

    The reference is ``torch.utils.data.distributed.DistributedSampler(range(num_samples),
    num_replicas=world_size, rank=rank, shuffle=True, seed=seed)`` after ``set_epoch(epoch)``.
    Names the usual mistake: no padding, no shuffle, contiguous blocks, epoch ignored. Notebook 12.
    """

    cases = ((10, 2, 0, 0), (10, 3, 0, 0), (7, 4, 1, 1), (12, 3, 5, 2), (2, 5, 0, 0))
    for num_samples, world_size, seed, epoch in cases:
        for rank in range(world_size):
            sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank,
                                         shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            expected = list(sampler)
            got, failure = _call(fn, num_samples, rank, world_size, seed, epoch)
            if failure is not None:  # a CheckResult that failed is falsy
                return failure
            if isinstance(got, torch.Tensor):
                got = got.tolist()
            case = (f"num_samples={num_samples}, rank={rank}, world_size={world_size}, "
                    f"seed={seed}, epoch={epoch}")
            if not isinstance(got, (list, tuple)) or not all(isinstance(i, int) for i in got):
                return CheckResult(False, f"{case}: return a list of int indices, got {got!r}")
            got = list(got)
            if got == expected:
                continue
            hint = _shard_hint(got, expected, case_args=(num_samples, rank, world_size, seed, epoch))
            return CheckResult(False, f"{case}: {hint}")
    return CheckResult(True, f"{fn.__name__} agrees with DistributedSampler on "
                             f"{sum(c[1] for c in cases)} (case, rank) pairs, padding included.")


def _shard_hint(got: list[int], expected: list[int], *, case_args: tuple[int, ...]) -> str:
    num_samples, rank, world_size, seed, epoch = case_args
    if len(got) != len(expected):
        pad = (" (the shards must be equal: pad the shuffled list by repeating its first indices "
               "until its length is a multiple of world_size)" if len(got) < len(expected) else "")
        return (f"got {len(got)} indices, expected ceil(num_samples / world_size) = "
                f"{len(expected)}{pad}")
    if got == _shard_reference(*case_args, shuffle=False):
        return ("the indices are not shuffled: start from torch.randperm(num_samples, "
                "generator=torch.Generator().manual_seed(seed + epoch)).tolist()")
    if got == _shard_reference(*case_args, strided=False):
        return ("each rank got a contiguous block; DistributedSampler deals the padded list out "
                "round-robin: padded[rank::world_size]")
    if epoch != 0 and got == _shard_reference(num_samples, rank, world_size, seed, 0):
        return ("the order does not change with the epoch: seed the generator with seed + epoch, "
                "so every epoch gets a new shuffle")
    return f"got {got[:10]}, expected {expected[:10]} (the first indices of each shown)"
