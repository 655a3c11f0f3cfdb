"""The machine the course runs on: device choice, seeding, environment report, AMP dtypes.

Taught in notebook 00 (device, seeding, environment) and notebook 11 (mixed precision).
"""

from __future__ import annotations

import os
import platform
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import torch

DEVICE_CHOICES = ("cuda", "mps", "cpu")
AMP_CHOICES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    Args:
        prefer: force one of ``"cuda"``, ``"mps"`` or ``"cpu"``; it must be available.

    Raises:
        ValueError: ``prefer`` is not a known device type, or it is not available here.
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": hasattr(torch.backends, "mps") and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if prefer is None:
        return torch.device(next(name for name in DEVICE_CHOICES if available[name]))
    if prefer not in available:
        raise ValueError(f"prefer={prefer!r} is not a device type; choose one of {DEVICE_CHOICES}")
    if not available[prefer]:
        usable = tuple(name for name in DEVICE_CHOICES if available[name])
        raise ValueError(f"device {prefer!r} is not available on this machine; available: {usable}")
    return torch.device(prefer)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and all GPUs) random number generators.

    Call it visibly at the top of a notebook; no helper in the package seeds anything itself.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64) (torch's seed range), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (students use the global RNG)
    torch.manual_seed(seed)  # also seeds every CUDA device


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """Map the course's ``amp`` switch to a dtype: None -> None, "bf16", "fp16".

    Raises:
        ValueError: any other value.
    """
    if amp not in AMP_CHOICES:
        allowed = ", ".join(repr(k) for k in AMP_CHOICES)
        raise ValueError(f"amp={amp!r} is not supported; choose one of {allowed}")
    return AMP_CHOICES[amp]


def autocast(device_type: str, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` to ``dtype``; for None (full precision) a context that does nothing.

    Entering a disabled ``torch.autocast`` would cost about 5 us a step for nothing, which is
    1% of a small MLP's step on a CPU.
    """
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else nullcontext()


def _version(package: str) -> str:
    """Installed version of a distribution without importing it (torchvision costs ~1.3 s)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    """The processor model (from /proc/cpuinfo on Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_accelerator(device: torch.device | str) -> str:
    """The accelerator behind ``device`` in one line (name, memory, CUDA version), or "none"."""
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return "none (CPU only)"


@dataclass(frozen=True)
class EnvironmentReport:
    """What the course runs on; ``str(report)`` is a readable table."""

    python: str
    platform: str
    cpu: str
    cpu_count: int
    torch_threads: int
    device: str
    accelerator: str
    packages: tuple[tuple[str, str], ...]
    data: str

    def __str__(self) -> str:
        rows = [
            ("python", self.python),
            ("platform", self.platform),
            ("cpu", f"{self.cpu} ({self.cpu_count} logical cores)"),
            ("torch threads", str(self.torch_threads)),
            ("device", self.device),
            ("accelerator", self.accelerator),
            *self.packages,
            ("data", self.data),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def describe_environment(dataset: str = "fashion_mnist") -> EnvironmentReport:
    """Report versions, device, threads and where ``dataset`` would be loaded from.

    Taught in notebook 00. Nothing is downloaded or written: the data line only says where
    :func:`course_utils.data.get_dataset` would find the data right now.
    """
    from course_utils.datasets import locate_dataset  # datasets does not import hardware

    device = get_device()
    accelerator = describe_accelerator(device)
    packages = tuple(
        (name, _version(name))
        for name in ("torch", "torchvision", "numpy", "matplotlib", "scikit-learn", "course-utils")
    )
    return EnvironmentReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        cpu=cpu_name(),
        cpu_count=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(),
        device=str(device),
        accelerator=accelerator,
        packages=packages,
        data=locate_dataset(dataset).describe(),
    )
