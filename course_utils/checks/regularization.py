"""Checks for notebook 07: the L2 penalty and early stopping."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.checks._base import CheckResult, _call, _number


def check_l2_penalty(fn: Callable[..., object]) -> CheckResult:
    """Check ``fn(parameters, weight_decay) -> weight_decay / 2 * sum of squared elements``.

    With this convention the penalty's gradient is ``weight_decay * p``, which is what
    ``torch.optim.SGD(weight_decay=...)`` adds. Names the usual mistakes: a missing 1/2, the
    norm instead of its square, absolute values (L1), only some parameters. Notebook 07.
    """
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=generator), torch.randn(3, generator=generator),
              torch.randn(2, 4, generator=generator)]
    for weight_decay in (0.1, 0.0, 2.5):
        got, failure = _call(fn, iter([p.clone() for p in params]), weight_decay)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        value = _number(got)
        if value is None:
            return CheckResult(False, f"return a number or a 0-d tensor, got {got!r}")
        squares = sum(float(p.pow(2).sum()) for p in params)
        expected = weight_decay / 2 * squares
        if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
            continue
        hints = {
            weight_decay * squares: "twice the expected value: the convention is weight_decay / 2 * "
                                    "sum(p ** 2), so that the gradient is weight_decay * p",
            weight_decay / 2 * squares ** 0.5: "you used the norm ||w||; the penalty uses its square",
            weight_decay * squares ** 0.5: "you used the norm ||w||; the penalty uses its square, halved",
            weight_decay / 2 * sum(float(p.abs().sum()) for p in params): "that is L1 (absolute "
                                                                          "values); square instead",
            weight_decay / 2 * float(params[0].pow(2).sum()): "only the first tensor counted: sum "
                                                              "over every parameter",
        }
        close = [text for wrong, text in hints.items() if abs(value - wrong) <= 1e-5 * max(1.0, abs(wrong))]
        hint = next(iter(close),
                    "compare with weight_decay / 2 * sum((p ** 2).sum() for p in parameters); "
                    "parameters may be a generator such as model.parameters(): loop over it once")
        return CheckResult(False, f"weight_decay={weight_decay}: got {value:.6g}, expected "
                                  f"{expected:.6g} ({hint})")
    return CheckResult(True, f"{fn.__name__} matches weight_decay / 2 * ||w||^2 on 3 cases, "
                             "and consumes the parameters only once.")


def check_early_stopping(factory: Callable[..., object]) -> CheckResult:
    """Check ``factory(model, patience) -> hook``, an ``on_epoch_end(epoch, history)`` hook.

    The hook must return True once ``history.val_loss`` has not improved for ``patience``
    epochs and then put the best epoch's weights back into ``model``. The check plays
    ``train``'s part with made-up validation losses, changing the weights every epoch.
    Notebook 07.
    """
    from course_utils.train import History

    cases = (([1.0, 0.8, 0.9, 0.85, 0.95, 0.7], 3, 5, 2),
             ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 2, None, 6),
             ([0.5, 0.6, 0.7, 0.4], 1, 2, 1))
    for losses, patience, stop_at, best in cases:
        model = nn.Linear(2, 1)
        hook, failure = _call(factory, model, patience)
        if failure is not None:  # a CheckResult that failed is falsy
            return failure
        history, stopped, case = History(), None, f"val_loss={losses}, patience={patience}"
        for epoch, loss in enumerate(losses):
            with torch.no_grad():
                model.weight.fill_(float(epoch + 1))  # the weights after epoch `epoch`
            history.epoch.append(epoch + 1)
            history.val_loss.append(loss)
            answer, failure = _call(hook, epoch, history)
            if failure is not None:
                return failure
            if answer:
                stopped = epoch + 1
                break
        if stopped != stop_at:
            when = "never stopped" if stopped is None else f"stopped after epoch {stopped}"
            want = "never stop" if stop_at is None else f"stop after epoch {stop_at}"
            return CheckResult(False, f"{case}: the hook {when}; it should {want} (stop when "
                                      f"{patience} epoch(s) in a row did not beat the best loss)")
        if stopped is not None and float(model.weight[0, 0].detach()) != best:
            return CheckResult(False, f"{case}: after stopping the model holds epoch "
                                      f"{float(model.weight[0, 0].detach()):g}'s weights, expected the best "
                                      f"epoch's ({best}); save a deep copy of model.state_dict() "
                                      "when the loss improves and load it before returning True")
    return CheckResult(True, f"{getattr(factory, '__name__', 'factory')}'s hook stops at the right "
                             f"epoch and restores the best weights in {len(cases)} cases.")
