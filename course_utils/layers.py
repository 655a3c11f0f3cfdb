"""From-scratch dropout and batch normalization, as plain functions of tensors.

Notebook 08 writes both from scratch and checks them against ``nn.Dropout`` and
``nn.BatchNorm1d``/``nn.BatchNorm2d``; these are the reference copies. Train with the ``nn``
layers: they do the same arithmetic, faster.
"""

from __future__ import annotations

import torch


def dropout(x: torch.Tensor, p: float, *, training: bool, inverted: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` in training; taught in notebook 08.

    Two equivalent conventions (Srivastava et al., 2014):

    - ``inverted=True`` (what ``nn.Dropout`` does): training multiplies the kept elements by
      ``1 / (1 - p)``; evaluation returns ``x`` unchanged;
    - ``inverted=False`` (the original paper): training only zeroes; evaluation multiplies
      everything by ``1 - p``.

    Either way the evaluation output equals the expected training output.

    Args:
        x: any shape; the mask has the same shape.
        p: drop probability in [0, 1).
        training: True for the random mask, False for the deterministic evaluation output.
        inverted: which convention (see above).
        generator: the random generator for the mask (None: torch's global one).
    """
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
        raise ValueError(f"p must be a number in [0, 1), got {p!r}")
    keep = 1.0 - p
    if not training:
        return x if inverted else x * keep
    mask = torch.empty_like(x).bernoulli_(keep, generator=generator)
    return x * mask * (1.0 / keep) if inverted else x * mask


def _stat_dims(x: torch.Tensor, channels: int) -> tuple[int, ...]:
    if x.dim() not in (2, 3, 4):
        raise ValueError(f"x must have 2, 3 or 4 dimensions ((N, C), (N, C, L) or (N, C, H, W)), "
                         f"got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"x has {x.shape[1]} channels (dim 1) but running_mean has {channels}")
    return (0, *range(2, x.dim()))  # every dimension except the channel dimension


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, *,
               training: bool, momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalization (Ioffe and Szegedy, 2015) as ``nn.BatchNorm1d``/``2d`` computes it.

    Statistics are per channel (dim 1), over every other dimension: over N for ``(N, C)``,
    over N*L for ``(N, C, L)``, over N*H*W for ``(N, C, H, W)``. Taught in notebook 08.

    In training the batch's mean and *biased* variance normalize ``x``, and the running
    statistics are updated in place with PyTorch's momentum convention,
    ``running = (1 - momentum) * running + momentum * batch``, using the *unbiased* variance
    for ``running_var``. In evaluation the running statistics normalize ``x`` and nothing changes.

    Args:
        x: ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)``.
        running_mean, running_var: ``(C,)`` buffers, updated in place when ``training``.
        weight, bias: the learned ``(C,)`` scale and shift (None: 1 and 0).
        training: use and update batch statistics (True) or use the running ones (False).
        momentum: weight of the new batch in the running averages, in [0, 1].
        eps: added to the variance before the square root.

    Raises:
        ValueError: bad shapes, momentum outside [0, 1], eps <= 0, or a single value per
            channel in training (its variance is undefined).
    """
    dims = _stat_dims(x, running_mean.shape[0])
    if running_var.shape != running_mean.shape:
        raise ValueError(f"running_var has shape {tuple(running_var.shape)}, "
                         f"running_mean {tuple(running_mean.shape)}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    shape = (1, -1) + (1,) * (x.dim() - 2)  # broadcast (C,) over (N, C, ...)
    if training:
        count = x.numel() // x.shape[1]
        if count < 2:
            raise ValueError(f"training needs more than 1 value per channel, got input of shape "
                             f"{tuple(x.shape)}")
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
    else:
        mean, var = running_mean, running_var
    y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y
