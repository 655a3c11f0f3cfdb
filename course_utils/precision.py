"""Mixed precision, TF32, ``channels_last`` and ``torch.compile`` measured on one training step.

Taught in notebook 11 and used by ``benchmarks/precision.py``, so the notebook and the script
measure with the same code: every arm runs the course's :func:`~course_utils.train.train_step`
on its own copy of the model, timed with :func:`course_utils.bench.benchmark` in interleaved
rounds, so that a change in machine load hits all arms alike.

Memory on the CPU is an *estimate*, and says so: PyTorch's CPU allocator keeps no peak
statistics and ``tracemalloc`` cannot see its allocations, so :func:`training_memory` adds up
parameters, gradients and the tensors autograd saves for the backward pass (measured with
``torch.autograd.graph.saved_tensors_hooks``). On a CUDA GPU, :func:`cuda_peak_bytes` reads the
allocator's real peak, and :func:`cuda_step_bytes` what one step adds on top of what is already
allocated (the model, its optimizer state, the data).

Global switches such as TF32 are never flipped here: an :class:`Arm` may carry a ``context``
that the *caller* defines (notebook 11 writes its ``tf32(...)`` context visibly), and the helper
only enters it around that arm's steps.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from course_utils.batching import count_saved_bytes
from course_utils.bench import benchmark, synchronize
from course_utils.hardware import amp_dtype
from course_utils.train import LossFn, train_step

AMP_LABELS = {None: "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_batch(x: Any, y: Any) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same positive number of examples, "
                         f"got {len(x)} and {len(y)}")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step keeps alive: parameters, gradients, tensors saved for backward.

    An estimate of the peak, not the allocator's peak: it leaves out optimizer state and the
    short-lived temporaries of each operation.
    """

    parameter_bytes: int
    gradient_bytes: int
    saved_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.gradient_bytes + self.saved_bytes

    def __str__(self) -> str:
        mb = 2**20
        return (f"{self.total_bytes / mb:.2f} MiB = parameters {self.parameter_bytes / mb:.2f} + "
                f"gradients {self.gradient_bytes / mb:.2f} + saved for backward "
                f"{self.saved_bytes / mb:.2f}")


def training_memory(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    loss_fn: LossFn | None = None, amp: str | None = None) -> MemoryEstimate:
    """Estimate the memory of one training step of ``model`` on the batch ``(x, y)``.

    The forward pass and the loss run on a copy of the model (the caller's BatchNorm statistics
    stay as they were), under ``torch.autocast`` when ``amp`` is set; every tensor autograd saves
    for the backward pass is counted once per storage (a view, such as a batch sliced from the
    whole dataset, counts only its own bytes), parameters excluded. Under autocast the
    low-precision copies of the weights are saved too, and they are counted. Notebook 11.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``x``/``y`` are not tensors.
        ValueError: unknown ``amp``, or ``x`` and ``y`` differ in length.
    """
    _check_model(model)
    _check_batch(x, y)
    dtype = amp_dtype(amp)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model = copy.deepcopy(model)
    parameters = list(model.parameters())

    def forward_and_loss() -> None:
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_fn(model(x), y)

    saved_bytes = count_saved_bytes(forward_and_loss, parameters)
    parameter_bytes = sum(p.numel() * p.element_size() for p in parameters)
    gradient_bytes = sum(p.numel() * p.element_size() for p in parameters if p.requires_grad)
    return MemoryEstimate(parameter_bytes, gradient_bytes, saved_bytes)


def _check_cuda(device: torch.device | str, what: str) -> torch.device:
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"{what} needs a 'cuda' device, got {str(device)!r}; "
                         "on other devices use training_memory()")
    return device


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device | str) -> int:
    """Peak bytes held by PyTorch's CUDA allocator while ``fn()`` runs (everything allocated).

    Raises:
        ValueError: ``device`` is not a CUDA device (the CPU allocator keeps no peak; use
            :func:`training_memory` there).
    """
    device = _check_cuda(device, "cuda_peak_bytes")
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def cuda_step_bytes(fn: Callable[[], object], device: torch.device | str) -> int:
    """Bytes ``fn()`` needs on top of what is already allocated: its peak minus the bytes before.

    For a training step this is activations, gradients (freed by ``zero_grad(set_to_none=True)``
    and made anew), temporaries and workspaces, without the weights, optimizer state and data
    that other tensors on the device already hold. Notebook 11.

    Raises:
        ValueError: ``device`` is not a CUDA device.
    """
    device = _check_cuda(device, "cuda_step_bytes")
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    return cuda_peak_bytes(fn, device) - before


@dataclass(frozen=True)
class Arm:
    """The switches of one arm of a comparison: precision, memory layout, compilation.

    ``context``, if given, is a callable returning a context manager that is entered around
    every step of this arm (e.g. the notebook's ``partial(tf32, True)``); such an arm needs a
    ``name``, which replaces the label built from the other switches.
    """

    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    context: Callable[[], contextlib.AbstractContextManager] | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        label = arm_label(self.amp, self.channels_last, self.compile)
        return self.name or label

    def entered(self) -> contextlib.AbstractContextManager:
        """The arm's context (or a null context), ready for a ``with`` statement."""
        return self.context() if self.context is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class StepResult:
    """One arm of the comparison: how fast a training step ran, and its memory."""

    label: str
    amp: str | None
    channels_last: bool
    compiled: bool
    batch_size: int
    images_per_s: float       # from the median of the timed steps
    images_per_s_low: float   # from the slowest quartile of the timed steps
    images_per_s_high: float  # from the fastest quartile
    first_step_s: float       # the untimed first step: includes compilation when compiled
    warmup: int               # untimed steps after the first one
    repeats: int              # timed steps behind the median (all rounds together)
    memory: MemoryEstimate | None  # None for compiled arms (hooks cannot see inside)
    cuda_peak_bytes: int | None    # None off CUDA: the allocator's peak during one step
    cuda_step_bytes: int | None = None  # None off CUDA: what one step adds (cuda_step_bytes)
    times_s: tuple[float, ...] = ()     # every timed step, round after round
    rounds: int = 1

    @property
    def round_median_s(self) -> tuple[float, ...]:
        """The median step time of each round: arms timed in the same round form a pair
        (for :func:`course_utils.verdicts.speedup`)."""
        per_round = len(self.times_s) // self.rounds
        return tuple(statistics.median(self.times_s[r * per_round:(r + 1) * per_round])
                     for r in range(self.rounds))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def arm_label(amp: str | None, channels_last: bool = False, compiled: bool = False) -> str:
    """A readable name such as ``"bf16 autocast + channels_last"``.

    Raises:
        ValueError: unknown ``amp``.
    """
    amp_dtype(amp)  # raises ValueError naming the allowed values
    parts = [AMP_LABELS[amp]] + ["channels_last"] * channels_last + ["torch.compile"] * compiled
    return " + ".join(parts)


def _prepare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, arm: Arm, lr: float,
             loss_fn: LossFn) -> tuple[Callable[[], torch.Tensor], MemoryEstimate | None, float]:
    """A ready-to-time step closure for ``arm`` on its own copy of ``model``, after one step."""
    model = copy.deepcopy(model).to(x.device)
    if arm.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    memory = None
    if not arm.compile:
        with arm.entered():
            memory = training_memory(model, x, y, loss_fn=loss_fn, amp=arm.amp)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = torch.amp.GradScaler(x.device.type, enabled=arm.amp == "fp16")
    runner = torch.compile(model) if arm.compile else model

    def step() -> torch.Tensor:
        with arm.entered():
            return train_step(runner, x, y, optimizer=optimizer, loss_fn=loss_fn, amp=arm.amp,
                              scaler=scaler)

    synchronize(x.device)
    started = time.perf_counter()
    step()
    synchronize(x.device)
    return step, memory, time.perf_counter() - started


def _check_arms(arms: Sequence[Arm], x: torch.Tensor, *, rounds: int, repeats: int,
                warmup: int) -> None:
    if len(arms) == 0:
        raise ValueError("arms must not be empty")
    if not all(isinstance(arm, Arm) for arm in arms):
        raise TypeError("arms must be Arm(amp=..., channels_last=..., compile=...) objects")
    labels = [arm.label for arm in arms]  # raises ValueError for an unknown amp
    if len(set(labels)) != len(labels):
        raise ValueError(f"every arm needs its own label, got {labels}: give an arm with a "
                         "context a name, e.g. Arm(context=..., name='TF32')")
    for arm in arms:
        if arm.channels_last and x.ndim != 4:
            raise ValueError(f"channels_last needs a 4-D input (N, C, H, W), got shape "
                             f"{tuple(x.shape)}")
    for name, value, low in (("rounds", rounds, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def compare_training_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                           arms: Sequence[Arm], *, rounds: int = 5, warmup: int = 3,
                           repeats: int = 2, lr: float = 0.01,
                           loss_fn: LossFn | None = None) -> list[StepResult]:
    """Time ``train_step`` for several arms, interleaved, each on its own copy of ``model``.

    Each arm's copy is moved to ``x.device`` (and to ``channels_last`` if asked), gets its own
    SGD optimizer (momentum 0.9) and, for fp16, an enabled GradScaler; with ``compile`` it is
    wrapped in ``torch.compile``; an arm's ``context`` is entered around each of its steps. Its
    first step is timed on its own (``first_step_s``: this is where compilation happens), then
    ``warmup`` untimed steps follow. The timed steps run in ``rounds`` rounds of ``repeats``
    steps per arm, arm after arm (in reverse order every other round), so a change in machine
    load hits every arm alike (the idea of :func:`course_utils.bench.compare`); the arms' round
    medians are pairs (``StepResult.round_median_s``). On CUDA two more steps per arm measure
    its memory. The caller's model is never changed. Notebook 11.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``x``/``y`` are not tensors, or an arm
            is not an :class:`Arm`.
        ValueError: no arms; two arms with the same label (an arm with a ``context`` needs a
            ``name``); unknown ``amp``; ``channels_last`` with an input that is not 4-D
            ``(N, C, H, W)``; mismatched ``x``/``y``; ``rounds``, ``repeats`` < 1 or
            ``warmup`` < 0.
    """
    _check_model(model)
    _check_batch(x, y)
    _check_arms(arms, x, rounds=rounds, repeats=repeats, warmup=warmup)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    prepared = [_prepare(model, x, y, arm, lr, loss_fn) for arm in arms]
    for step, _, _ in prepared:
        for _ in range(warmup):
            step()
    synchronize(x.device)
    times: list[list[float]] = [[] for _ in arms]
    order = list(range(len(arms)))
    for round_index in range(rounds):
        for k in (order if round_index % 2 == 0 else order[::-1]):
            step = prepared[k][0]
            times[k].extend(benchmark(step, warmup=0, repeats=repeats, device=x.device).times_s)
    results = []
    for arm, (step, memory, first_step_s), times_s in zip(arms, prepared, times, strict=True):
        q1, median, q3 = _quartiles(times_s)
        on_cuda = x.device.type == "cuda"
        peak = cuda_peak_bytes(step, x.device) if on_cuda else None
        extra = cuda_step_bytes(step, x.device) if on_cuda else None
        results.append(StepResult(
            label=arm.label, amp=arm.amp, channels_last=arm.channels_last, compiled=arm.compile,
            batch_size=len(x), images_per_s=len(x) / median, images_per_s_low=len(x) / q3,
            images_per_s_high=len(x) / q1, first_step_s=first_step_s, warmup=warmup,
            repeats=rounds * repeats, memory=memory, cuda_peak_bytes=peak,
            cuda_step_bytes=extra, times_s=tuple(times_s), rounds=rounds))
    return results


def _quartiles(times: list[float]) -> tuple[float, float, float]:
    if len(times) < 2:
        return times[0], times[0], times[0]
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, median, q3
