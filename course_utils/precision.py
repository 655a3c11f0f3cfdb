"""Mixed precision, ``channels_last`` and ``torch.compile`` measured on one training step.

Taught in notebook 11 and used by ``benchmarks/precision.py``, so the notebook and the script
measure with the same code: every arm runs the course's :func:`~course_utils.train.train_step`
on its own copy of the model, timed by :func:`course_utils.bench.throughput`.

Memory on the CPU is an *estimate*, and says so: PyTorch's CPU allocator keeps no peak
statistics and ``tracemalloc`` cannot see its allocations, so :func:`training_memory` adds up
parameters, gradients and the tensors autograd saves for the backward pass (measured with
``torch.autograd.graph.saved_tensors_hooks``). On a CUDA GPU, :func:`cuda_peak_bytes` reads the
allocator's real peak.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from course_utils.bench import synchronize, throughput
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
    for the backward pass is counted once per storage, parameters excluded. Under autocast the
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
    parameter_ptrs = {p.untyped_storage().data_ptr() for p in parameters}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_ptrs:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss_fn(model(x), y)
    parameter_bytes = sum(p.numel() * p.element_size() for p in parameters)
    gradient_bytes = sum(p.numel() * p.element_size() for p in parameters if p.requires_grad)
    return MemoryEstimate(parameter_bytes, gradient_bytes, sum(saved.values()))


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device | str) -> int:
    """Peak bytes held by PyTorch's CUDA allocator while ``fn()`` runs (everything allocated).

    Raises:
        ValueError: ``device`` is not a CUDA device (the CPU allocator keeps no peak; use
            :func:`training_memory` there).
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"cuda_peak_bytes needs a 'cuda' device, got {str(device)!r}; "
                         "on other devices use training_memory()")
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device)


@dataclass(frozen=True)
class StepResult:
    """One arm of the comparison: how fast a training step ran, and its memory."""

    label: str
    amp: str | None
    channels_last: bool
    compiled: bool
    batch_size: int
    images_per_s: float
    images_per_s_low: float   # from the slowest quartile of the timed steps
    images_per_s_high: float  # from the fastest quartile
    first_step_s: float       # the untimed first step: includes compilation when compiled
    warmup: int               # untimed steps after the first one
    repeats: int              # timed steps behind the median
    memory: MemoryEstimate | None  # None for compiled arms (hooks cannot see inside)
    cuda_peak_bytes: int | None    # None off CUDA

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


def measure_training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                          amp: str | None = None, channels_last: bool = False,
                          compile: bool = False, lr: float = 0.01,
                          loss_fn: LossFn | None = None, warmup: int = 3,
                          repeats: int = 10) -> StepResult:
    """Time ``train_step`` on a copy of ``model`` with the given precision and layout switches.

    The copy is moved to ``x.device`` (and to ``channels_last`` if asked), gets its own SGD
    optimizer (momentum 0.9) and, for fp16, an enabled GradScaler; with ``compile`` it is wrapped
    in ``torch.compile``. The first step is timed on its own (``first_step_s``: compilation
    happens there), then ``warmup`` untimed and ``repeats`` timed steps give the throughput.
    The caller's model is never changed. Notebook 11.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``x``/``y`` are not tensors.
        ValueError: unknown ``amp``; ``channels_last`` with an input that is not 4-D
            ``(N, C, H, W)``; mismatched ``x``/``y``; bad ``warmup``/``repeats``.
    """
    _check_model(model)
    _check_batch(x, y)
    label = arm_label(amp, channels_last, compile)
    if channels_last and x.ndim != 4:
        raise ValueError(f"channels_last needs a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    model = copy.deepcopy(model).to(x.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    memory = None if compile else training_memory(model, x, y, loss_fn=loss_fn, amp=amp)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = torch.amp.GradScaler(x.device.type, enabled=amp == "fp16")
    runner = torch.compile(model) if compile else model

    def step() -> torch.Tensor:
        return train_step(runner, x, y, optimizer=optimizer, loss_fn=loss_fn, amp=amp, scaler=scaler)

    synchronize(x.device)
    started = time.perf_counter()
    step()
    synchronize(x.device)
    first_step_s = time.perf_counter() - started
    speed = throughput(step, len(x), warmup=warmup, repeats=repeats, device=x.device)
    peak = cuda_peak_bytes(step, x.device) if x.device.type == "cuda" else None
    return StepResult(label=label, amp=amp, channels_last=channels_last, compiled=compile,
                      batch_size=len(x), images_per_s=speed.items_per_s,
                      images_per_s_low=speed.low, images_per_s_high=speed.high,
                      first_step_s=first_step_s, warmup=warmup, repeats=repeats, memory=memory,
                      cuda_peak_bytes=peak)
