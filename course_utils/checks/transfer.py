"""Checks for notebook 09: freezing a pretrained backbone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.checks._base import CheckResult, _call


def _freeze_case_model() -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 6),
                             nn.Linear(6, 3))


def _frozen_pattern(model: nn.Sequential) -> list[bool | None]:
    # per child: True if all its parameters are trainable, False if all frozen, None if mixed
    pattern = []
    for child in model:
        flags = {p.requires_grad for p in child.parameters()}
        pattern.append(flags.pop() if len(flags) == 1 else (None if flags else True))
    return pattern


def check_freeze(fn: Callable[[nn.Sequential, int], object]) -> CheckResult:
    """Check ``fn(model, until)``: freeze ``model[:until]``, leave ``model[until:]`` trainable.

    Runs on a 5-child ``nn.Sequential`` for several ``until`` values, one after another on the
    same model (so a later, smaller ``until`` must unfreeze again), and checks that the weights
    are not changed and the model is returned. Notebook 09.
    """
    model = _freeze_case_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for until in (3, 5, 0, 4, 1):
        got, failure = _call(fn, model, until)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        if got is not model:
            return CheckResult(False, f"until={until}: return the model you were given (got "
                                      f"{type(got).__name__}), so calls can be chained")
        pattern = _frozen_pattern(model)
        has_params = [bool(list(child.parameters())) for child in model]
        expected = [index >= until or not has_params[index] for index in range(len(model))]
        if pattern == expected:
            continue
        if None in pattern:
            child = pattern.index(None)
            return CheckResult(False, f"until={until}: model[{child}] is partly frozen; set "
                                      "requires_grad on every parameter of a child (weight and bias)")
        frozen = [i for i, p in enumerate(pattern) if p is False and has_params[i]]
        if until > 0 and frozen and max(frozen) == until:
            return CheckResult(False, f"until={until}: model[{until}] was frozen too (off by one: "
                                      f"freeze model[:until], i.e. children 0..{until - 1})")
        if any(not p for i, p in enumerate(pattern) if i >= until):
            return CheckResult(False, f"until={until}: children from model[{until}] on must be "
                                      f"trainable again; frozen children are {frozen}. Set "
                                      "requires_grad=True on the rest, not only False on the first ones")
        return CheckResult(False, f"until={until}: expected model[:{until}] frozen and the rest "
                                  f"trainable; frozen children are {frozen}")
    for name, p in model.named_parameters():
        if not torch.equal(p.detach(), before[name]):
            return CheckResult(False, f"the values of {name} changed: freezing must only set "
                                      "requires_grad, never touch the weights")
    return CheckResult(True, f"{fn.__name__} freezes exactly model[:until] for 5 values of until, "
                             "unfreezes the rest and leaves the weights alone.")
