"""Checks for notebook 06: a numerically stable log-softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_utils.checks._base import CheckResult, _call


def check_log_softmax(fn: Callable[[torch.Tensor], object]) -> CheckResult:
    """Check ``fn(logits (N, C)) -> log-softmax over the last dim``, stable for huge logits. Notebook 06.

    Compares with ``torch.log_softmax`` on ordinary logits, then on logits of +-1000 (where
    ``exp`` overflows to inf) and names the usual mistakes: no max subtraction, forgetting to
    add the max back, subtracting the max without keepdim, or the wrong dimension.
    """
    generator = torch.Generator().manual_seed(0)
    cases = [("ordinary logits", torch.randn(4, 5, generator=generator)),
             ("logits near +1000", 1000 + torch.randn(3, 4, generator=generator)),
             ("logits near -1000", -1000 + torch.randn(3, 4, generator=generator)),
             ("one dominant logit", torch.tensor([[800.0, 0.0, -5.0], [0.0, 1.0, 2.0]]))]
    for name, logits in cases:
        got, failure = _call(fn, logits.clone())
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if not isinstance(got, torch.Tensor):
            return CheckResult(False, f"{fn.__name__} must return a tensor, got {type(got).__name__}")
        want = torch.log_softmax(logits, dim=-1)
        if got.shape != want.shape:
            return CheckResult(False, f"{name}: got shape {tuple(got.shape)}, expected "
                                      f"{tuple(want.shape)} (did you drop keepdim=True?)")
        if not torch.isfinite(got).all():
            return CheckResult(False, f"{name}: got inf/nan. exp() overflows for large logits; "
                                      "subtract the row maximum before exponentiating")
        if torch.allclose(got, want, atol=1e-4, rtol=1e-5):
            continue
        shift = logits.amax(-1, keepdim=True)
        if any(torch.allclose(got, want + sign * shift, atol=1e-4, rtol=1e-5) for sign in (1, -1)):
            return CheckResult(False, f"{name}: off by the row maximum; log-sum-exp is "
                                      "m + log(sum(exp(z - m))): add m back")
        if torch.allclose(got, torch.log_softmax(logits, dim=0), atol=1e-4, rtol=1e-5):
            return CheckResult(False, f"{name}: normalized over the wrong dimension; use dim=-1 "
                                      "(each row is one example)")
        return CheckResult(False, f"{name}: row 0 is {got[0].tolist()}, expected {want[0].tolist()}")
    return CheckResult(True, f"{fn.__name__} matches torch.log_softmax, also at logits of +-1000.")
