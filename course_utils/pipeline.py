"""Input pipelines under the microscope: a dataset with a simulated per-sample decode cost and
the loader-only epoch loop used to time loaders. Taught in notebook 03.

The dataset lives here, not in the notebook, for a reason notebook 03 explains: DataLoader
workers started with the ``spawn`` method (the default on macOS and Windows) re-import the
dataset's class by name, and a class defined in a notebook cannot be imported.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import Dataset

DECODE_KINDS = ("sleep", "cpu")


def burn_cpu(seconds: float) -> None:
    """Keep the calling thread busy until it has used ``seconds`` of its own CPU time.

    Thread CPU time, not wall time: when other processes compete for the core, the work takes
    longer in wall time, exactly as real decoding would.
    """
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class DecodeCostDataset(Dataset):
    """Wrap a map-style dataset and add a fixed cost to every ``__getitem__``.

    Stands for the part of a real pipeline that an in-memory dataset does not have:

    - ``kind="sleep"``: waiting ``cost_s`` seconds per sample, like reading from a slow or
      network disk. A waiting process uses no core, so workers overlap their waits even on a
      machine with few cores.
    - ``kind="cpu"``: ``cost_s`` seconds of CPU work per sample, like JPEG decoding or
      per-sample augmentation. Workers help only as far as there are free cores.

    Args:
        dataset: the wrapped dataset; its items are returned unchanged.
        cost_s: the added cost per sample in seconds (>= 0).
        kind: ``"sleep"`` or ``"cpu"``.

    Raises:
        ValueError: ``cost_s`` is negative or not a number, or ``kind`` is unknown.
        TypeError: ``dataset`` has no ``__getitem__``/``__len__``.

    Taught in notebook 03, which measures loaders with and without workers over it.
    """

    def __init__(self, dataset: Dataset, *, cost_s: float, kind: str = "sleep") -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"dataset must be a map-style dataset with __getitem__ and __len__, "
                            f"got {type(dataset).__name__}")
        if isinstance(cost_s, bool) or not isinstance(cost_s, (int, float)) or not cost_s >= 0:
            raise ValueError(f"cost_s must be a number of seconds >= 0, got {cost_s!r}")
        if kind not in DECODE_KINDS:
            raise ValueError(f"kind={kind!r}; choose one of {DECODE_KINDS}")
        self.dataset, self.cost_s, self.kind = dataset, float(cost_s), kind

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        if self.cost_s > 0:
            if self.kind == "sleep":
                time.sleep(self.cost_s)
            else:
                burn_cpu(self.cost_s)
        return self.dataset[index]

    def __repr__(self) -> str:
        return (f"DecodeCostDataset({len(self):,} samples, {self.cost_s * 1e6:.0f} us of "
                f"{self.kind!r} per sample)")


def iterate_epoch(loader: Iterable, *, device: torch.device | str | None = None) -> int:
    """Run through one epoch of ``loader`` without training; return the number of samples.

    This is what "loader-only throughput" times: producing batches and, with ``device``,
    copying them there (``non_blocking=True``, which only overlaps with other work when the
    batch sits in pinned memory). Batches are ``(x, y)`` pairs with the batch in dimension 0.
    Taught in notebook 03.

    Raises:
        ValueError: the loader yielded no batches.
    """
    device = torch.device(device) if device is not None else None
    count = 0
    for x, y in loader:
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        count += len(x)
    if count == 0:
        raise ValueError("iterate_epoch: the loader yielded no batches")
    return count
