"""Automatic feedback for the exercises: each ``check_*`` compares a student's function with
the course's reference and explains the first mismatch.

Checks never raise on a wrong answer: they return a :class:`CheckResult` whose text says what
is right or what to fix, so a notebook cell shows the feedback directly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.train import train_step


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``passed`` and a message for the student."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message

    def __bool__(self) -> bool:
        return self.passed


def _call(fn: Callable, *args: object) -> tuple[object, CheckResult | None]:
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, CheckResult(False, f"{fn.__name__} is not implemented yet.")
    except Exception as err:  # the student's code may fail in any way; report it plainly
        return None, CheckResult(False, f"{fn.__name__} raised {type(err).__name__}: {err}")


def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], object]) -> CheckResult:
    """Check ``fn(logits (N, C), y (N,)) -> fraction correct`` (a float in [0, 1]). Notebook 00."""
    generator = torch.Generator().manual_seed(0)
    cases = [(torch.randn(n, c, generator=generator), torch.randint(0, c, (n,), generator=generator))
             for n, c in ((8, 10), (37, 3), (1, 5))]
    perfect = torch.eye(4) * 5
    cases.append((perfect, torch.arange(4)))
    for k, (logits, y) in enumerate(cases):
        got, failure = _call(fn, logits.clone(), y.clone())
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if got is None:
            return CheckResult(False, f"{fn.__name__} returned None: did you forget `return`?")
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                return CheckResult(False, f"returned a tensor of shape {tuple(got.shape)}; "
                                          "average over the batch to get one number")
            got = got.item()
        expected = (logits.argmax(dim=1) == y).float().mean().item()
        if not isinstance(got, (int, float)) or abs(got - expected) > 1e-6:
            hint = (" (a percentage? return a fraction in [0, 1])" if isinstance(got, (int, float))
                    and got > 1 else " (compare logits.argmax(dim=1) with y, then average)")
            return CheckResult(False, f"case {k + 1} ({len(y)} examples, {logits.shape[1]} classes): "
                                      f"got {got!r}, expected {expected:.6f}{hint}")
    return CheckResult(True, f"{fn.__name__} agrees with the reference on {len(cases)} cases.")


def check_train_step(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(model, x, y, optimizer, loss_fn)`` against the course's ``train_step``.

    Runs two steps on identical copies of a tiny model and reports the first parameter that
    differs, with the usual cause (missing ``zero_grad``, ``step`` or ``backward``). Notebook 00.
    """
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    student = copy.deepcopy(reference)
    initial = copy.deepcopy(reference)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.1)
    opt_student = torch.optim.SGD(student.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for step in (1, 2):
        expected = train_step(reference, x, y, optimizer=opt_ref, loss_fn=loss_fn)
        got, failure = _call(fn, student, x, y, opt_student, loss_fn)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        unchanged = all(torch.equal(a, b) for a, b in zip(student.parameters(),
                                                          initial.parameters(), strict=True))
        if unchanged:
            return CheckResult(False, "the parameters did not change: call loss.backward() "
                                      "and optimizer.step()")
        for (name, p_got), p_want in zip(student.named_parameters(), reference.parameters(),
                                         strict=True):
            if not torch.allclose(p_got, p_want, atol=1e-6):
                cause = ("gradients from step 1 leaked into step 2: call optimizer.zero_grad() "
                         "before backward()" if step == 2 else "the update differs from "
                         "loss.backward(); optimizer.step() on the loss of this batch")
                return CheckResult(False, f"after step {step}, parameter {name!r} differs: {cause}")
        if not isinstance(got, torch.Tensor) or not torch.allclose(got.detach(), expected):
            return CheckResult(False, f"step {step} returned {got!r}; return the batch's loss "
                                      f"(expected {expected.item():.4f})")
    return CheckResult(True, f"{fn.__name__} matches the reference step twice in a row.")


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
    from torch.utils.data.distributed import DistributedSampler  # imported only when checking

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
