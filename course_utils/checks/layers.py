"""Checks for notebook 08: BatchNorm written from scratch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.checks._base import CheckResult, _call


def _bn_variants(x: torch.Tensor, mean0: torch.Tensor, var0: torch.Tensor, momentum: float,
                 eps: float) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Training-mode (output, running_mean, running_var) of typical mistakes, for hints."""
    dims = (0, *range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = x.mean(dims), x.var(dims, unbiased=False)
    count = x.numel() // x.shape[1]
    good = (x - mean.reshape(shape)) / (var.reshape(shape) + eps).sqrt()
    unbiased = var * count / (count - 1)
    variants = {
        "biased": (good, (1 - momentum) * mean0 + momentum * mean, (1 - momentum) * var0 + momentum * var),
        "reversed": (good, momentum * mean0 + (1 - momentum) * mean,
                     momentum * var0 + (1 - momentum) * unbiased),
        "frozen": (good, mean0, var0),
        "eps_outside": ((x - mean.reshape(shape)) / (var.reshape(shape).sqrt() + eps), None, None),
        "unbiased_norm": ((x - mean.reshape(shape)) / (unbiased.reshape(shape) + eps).sqrt(), None, None),
    }
    if x.dim() == 4:  # statistics per (C, H, W) position instead of per channel
        m, v = x.mean(0, keepdim=True), x.var(0, unbiased=False, keepdim=True)
        variants["per_position"] = ((x - m) / (v + eps).sqrt(), None, None)
    return variants


_BN_HINTS = {
    "biased": "running_var must be updated with the UNBIASED batch variance (divide by n - 1, "
              "n = values per channel), while the output uses the biased one",
    "reversed": "the momentum convention is reversed: PyTorch uses "
                "running = (1 - momentum) * running + momentum * batch_statistic",
    "frozen": "the running statistics did not change: update running_mean and running_var in place "
              "(running_mean.mul_(1 - momentum).add_(momentum * mean)) without rebinding the names",
    "eps_outside": "eps belongs inside the square root: (x - mean) / sqrt(var + eps)",
    "unbiased_norm": "normalize with the BIASED batch variance (divide by n); only running_var "
                     "uses the unbiased one",
    "per_position": "for (N, C, H, W) the statistics are per channel over N*H*W: reduce over "
                    "dims (0, 2, 3), not only over the batch dimension",
}


def _bn_case(generator: torch.Generator, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    channels = shape[1]
    return {"x": torch.randn(*shape, generator=generator) * 2 + 1.5,
            "weight": torch.rand(channels, generator=generator) + 0.5,
            "bias": torch.randn(channels, generator=generator)}


def _bn_mismatch(fn: Callable, case: dict[str, torch.Tensor], reference: nn.Module,
                 training: bool, label: str) -> CheckResult | None:
    x = case["x"]
    mean0, var0 = reference.running_mean.clone(), reference.running_var.clone()
    running_mean, running_var = mean0.clone(), var0.clone()
    momentum, eps = reference.momentum, reference.eps
    got, failure = _call(fn, x.clone(), running_mean, running_var, case["weight"].clone(),
                         case["bias"].clone(), training, momentum, eps)
    if failure is not None:
        return failure
    reference.train(training)
    with torch.no_grad():
        want = reference(x)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        what = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return CheckResult(False, f"{label}: expected a tensor of shape {tuple(want.shape)}, got {what}")
    got = got.detach()

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)

    scale_shift = (case["weight"].reshape((1, -1) + (1,) * (x.dim() - 2)),
                   case["bias"].reshape((1, -1) + (1,) * (x.dim() - 2)))
    variants = _bn_variants(x, mean0, var0, momentum, eps) if training else {}
    if not close(got, want):
        if not training:
            batch = _bn_variants(x, mean0, var0, momentum, eps)["biased"][0]
            if close(got, batch * scale_shift[0] + scale_shift[1]):
                return CheckResult(False, f"{label}: in eval mode normalize with running_mean and "
                                          "running_var, not with the batch's statistics")
        for name, (output, _, _) in variants.items():
            if name in ("eps_outside", "unbiased_norm", "per_position") and close(
                    got, output * scale_shift[0] + scale_shift[1]):
                return CheckResult(False, f"{label}: {_BN_HINTS[name]}")
        if close(got, want - scale_shift[1]) or close(got, (want - scale_shift[1]) / scale_shift[0]):
            return CheckResult(False, f"{label}: apply the scale (weight) and shift (bias) at the end: "
                                      "y = x_hat * weight + bias")
        return CheckResult(False, f"{label}: the output differs from nn.BatchNorm (largest difference "
                                  f"{(got - want).abs().max().item():.3g})")
    if not (close(running_mean, reference.running_mean) and close(running_var, reference.running_var)):
        for name in ("biased", "reversed", "frozen") if training else ():
            _, mean_v, var_v = variants[name]
            if close(running_mean, mean_v) and close(running_var, var_v):
                return CheckResult(False, f"{label}: {_BN_HINTS[name]}")
        if not training:
            return CheckResult(False, f"{label}: in eval mode the running statistics must not change")
        return CheckResult(False, f"{label}: the output is right but the running statistics differ "
                                  "from nn.BatchNorm's")
    return None


def check_batchnorm(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(x, running_mean, running_var, weight, bias, training, momentum, eps) -> y``.

    ``fn`` must behave like ``nn.BatchNorm1d`` on ``(N, C)`` and ``nn.BatchNorm2d`` on
    ``(N, C, H, W)``: in training normalize with the batch statistics and update the running
    statistics in place; in evaluation use the running statistics. The check runs three training
    steps and one evaluation step for each and names the usual mistake. Notebook 08.
    """
    generator = torch.Generator().manual_seed(0)
    for shape, layer in (((16, 5), nn.BatchNorm1d), ((4, 3, 5, 5), nn.BatchNorm2d)):
        reference = layer(shape[1], momentum=0.3, eps=0.1)  # eps large enough to matter
        cases = [_bn_case(generator, shape) for _ in range(4)]
        for step, case in enumerate(cases):
            training = step < 3
            with torch.no_grad():
                reference.weight.copy_(case["weight"])
                reference.bias.copy_(case["bias"])
            label = (f"{layer.__name__}, input {shape}, "
                     + (f"training step {step + 1}" if training else "eval mode after 3 steps"))
            failure = _bn_mismatch(fn, case, reference, training, label)
            if failure is not None:
                return failure
    return CheckResult(True, f"{getattr(fn, '__name__', 'fn')} matches nn.BatchNorm1d and "
                             "nn.BatchNorm2d in training (output and running statistics) and in eval mode.")
