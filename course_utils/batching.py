"""Batch size on a small machine: the linear learning-rate scaling rule, what a batch costs in
memory, and gradient accumulation. Taught in notebook 03.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_positive_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def linear_scaled_lr(base_lr: float, batch_size: int, *, base_batch_size: int) -> float:
    """The linear scaling rule (Goyal et al., 2017): ``base_lr * batch_size / base_batch_size``.

    Raises:
        ValueError: ``base_lr`` is not positive, or a batch size is not a positive int.
    """
    if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float)) or not base_lr > 0:
        raise ValueError(f"base_lr must be a positive number, got {base_lr!r}")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(base_batch_size, "base_batch_size")
    return base_lr * batch_size / base_batch_size


def accumulated_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                     optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                     micro_batch: int) -> torch.Tensor:
    """One optimizer step on the batch ``(x, y)``, computed ``micro_batch`` examples at a time.

    Each micro-batch's mean loss is weighted by its share of the batch (``1 / steps`` when the
    micro-batches are equal) before ``backward()``, so the summed gradients are those of the
    whole batch's mean loss. Without BatchNorm (or dropout) the step equals
    ``train_step(model, x, y, ...)`` up to float rounding; with BatchNorm it does not, because
    each micro-batch is normalized with its own statistics. Taught in notebook 03, which
    writes it from scratch first.

    Args:
        x, y: the full batch, ``(N, ...)`` and ``(N,)``, on the model's device.
        loss_fn: must return the *mean* loss over its batch (a module with
            ``reduction="sum"`` or ``"none"`` is refused).
        micro_batch: examples per forward/backward pass; the last one may be smaller.

    Returns:
        The mean loss over the whole batch, detached (0-d tensor).

    Raises:
        ValueError: ``micro_batch`` is not a positive int, ``x`` and ``y`` differ in length or
            are empty, or ``loss_fn`` does not reduce with the mean.
    """
    _check_positive_int(micro_batch, "micro_batch")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty with the same length, got {len(x)} and {len(y)}")
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(f"loss_fn must use reduction='mean' (got {reduction!r}): the weights "
                         "below assume each micro-batch loss is a mean")
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=x.device)
    for x_micro, y_micro in zip(x.split(micro_batch), y.split(micro_batch), strict=True):
        share = len(x_micro) / len(x)
        loss = loss_fn(model(x_micro), y_micro) * share
        loss.backward()  # gradients add up in .grad until the step
        total += loss.detach()
    optimizer.step()
    return total


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    return []


def activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Estimate the activation memory of a forward pass: the bytes of every leaf module's output.

    Uses forward hooks on the modules without children; runs under ``torch.no_grad()`` and
    leaves the model (hooks, mode, weights) as it was. An *estimate*: autograd keeps some of
    these outputs, some inputs and some extras (e.g. max-pooling indices) for the backward pass;
    :func:`saved_tensor_bytes` measures exactly what it keeps. Activations grow linearly with
    the batch size, which is why too large a batch runs out of GPU memory. Taught in notebook 03.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    total = 0

    def hook(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in _tensors(output))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_saved_bytes(run: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Call ``run()`` with gradients on; return the bytes autograd saves for its backward pass.

    Uses ``torch.autograd.graph.saved_tensors_hooks``. Tensors sharing a storage are counted
    once, a view (such as a batch sliced from the whole dataset) only by its own bytes, and
    tensors that share storage with ``exclude`` (pass the parameters) not at all. The tool
    behind :func:`saved_tensor_bytes` (notebook 03) and ``precision.training_memory`` (11).
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in excluded:
            size = min(storage.nbytes(), tensor.numel() * tensor.element_size())
            saved[ptr] = max(saved.get(ptr, 0), size)
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(saved.values())


def saved_tensor_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Measure the bytes autograd saves for the backward pass of ``model(x)``, parameters excluded.

    Counted by :func:`count_saved_bytes`. The model runs in its current mode with gradients
    enabled; its buffers (e.g. BatchNorm running statistics in train mode) are updated as by
    any forward pass.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return count_saved_bytes(lambda: model(x), model.parameters())
