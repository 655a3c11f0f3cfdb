"""Reading training curves: smoothing, the train/validation gap, and what a curve's shape means.

Step 6 of the tuning procedure (notebook 10). A per-step training loss is noisy, so it is read
smoothed (:func:`smooth`, the bias-corrected moving average of the LR range test) and summarized
by the means of its ten deciles (:func:`deciles`). :func:`diagnose_curves` names the shape, with
the rule for each name in its docstring, and returns a
:class:`course_utils.procedure.StepReport` that passes only for a healthy run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from course_utils.procedure import StepReport
from course_utils.train import History

MIN_STEPS = 10  # a curve is read by the means of its ten deciles: at least one logged step each


def epochs_to_read(steps_per_epoch: int, *, per_decile: int = 2) -> int:
    """The fewest epochs that log ``per_decile`` training steps in each decile of the curve.

    Size a run that :func:`diagnose_curves` will read with it, e.g. as the ``minimum`` of a size
    from :mod:`course_utils.sizing`: ``epochs_to_read(len(loader))`` is 1 for 32 steps per epoch and
    3 for 9.

    Raises:
        ValueError: ``steps_per_epoch`` or ``per_decile`` is not a positive int.
    """
    for label, value in (("steps_per_epoch", steps_per_epoch), ("per_decile", per_decile)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    return math.ceil(per_decile * MIN_STEPS / steps_per_epoch)


def smooth(values: Sequence[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (as in the LR range test).

    ``beta`` near 1 smooths more (about ``1 / (1 - beta)`` steps). A non-finite value is passed
    through and does not enter the average, so a NaN at the end stays visible.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    out, average, count = [], 0.0, 0
    for value in values:
        value = float(value)
        if not math.isfinite(value):
            out.append(value)
            continue
        count += 1
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** count))
    return out


def deciles(values: Sequence[float]) -> list[float]:
    """The means of the ten consecutive tenths of ``values`` (at least 10 values)."""
    n = len(values)
    if n < MIN_STEPS:
        raise ValueError(f"need at least {MIN_STEPS} values, got {n}")
    return [sum(values[k * n // 10:(k + 1) * n // 10]) / ((k + 1) * n // 10 - k * n // 10)
            for k in range(10)]


def _first_bad_step(history: History) -> int | None:
    return next((s for s, v in zip(history.step, history.train_loss, strict=True)
                 if not math.isfinite(v)), None)


def diagnose_curves(history: History, *, num_classes: int = 10, beta: float = 0.9,
                    flat: float = 0.05, rebound: float = 0.2, late: float = 0.2,
                    overfit_rise: float = 0.1) -> StepReport:
    """Step 6: name the shape of a run's curves; the report passes only for "healthy".

    With ``d`` the decile means of the smoothed training loss (``d[0]`` the start, ``d[9]`` the
    end), ``ln C`` the loss of uniform outputs and "chance" validation accuracy within 5 points
    of ``1 / C``, the first rule that applies names the run:

    1. **diverged**: a NaN/Inf loss, or a run that ``train`` stopped with a diagnosis (it also
       stops a loss that stays above 1,000x its start): LR too large or a bad init;
    2. **LR too high**: some decile above 1.5 ``d[0]`` (the loss blew up), or ``d[9]`` more than
       ``rebound`` (20%) above the lowest decile (it fell, then rose);
    3. **flat**: every decile within ``flat`` (5%) of ``d[0]`` (LR too small, a dead init; with
       chance validation accuracy also labels that do not match the images);
    4. **stuck at chance**: it moved, but ends within 10% of ``ln C`` with chance validation
       accuracy (a bad init or one huge step left outputs that ignore the input);
    5. **bug**: ``d[9]`` below 0.7 ``ln C`` (it learns the training set) with chance validation
       accuracy (labels shuffled against images, or validation prepared differently);
    6. **overfitting**: validation loss ended more than ``overfit_rise`` (10%) above its minimum
       while the epoch training loss kept falling;
    7. **LR too low**: the last fifth brought more than ``late`` (20%) of the whole drop:
       ``(d[7] - d[9]) / (d[0] - d[9])`` (or the budget is too short);
    8. **plateau**: it levelled off above 0.5 ``ln C`` (a model too small, too much
       regularization);
    9. otherwise **healthy**.

    ``numbers`` holds the label, the smoothed curve, the deciles and the final train/validation
    loss gap (``"gap"``, when there is validation data).

    Raises:
        TypeError: ``history`` is not a :class:`~course_utils.train.History`.
        ValueError: ``num_classes`` is not an int >= 2, or a run that did not diverge logged fewer
            than :data:`MIN_STEPS` training steps (too few to read by deciles).
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be a course_utils.train.History, got {type(history).__name__}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if len(history.train_loss) < MIN_STEPS and history.diagnosis is None and _first_bad_step(history) is None:
        raise ValueError(
            f"diagnose_curves reads a curve by its ten deciles and needs at least {MIN_STEPS} logged "
            f"training steps; this run logged {len(history.train_loss)}: train for more steps (more "
            "epochs, a smaller batch or more images); epochs_to_read(steps per epoch) gives enough epochs")
    numbers: dict[str, Any] = {"smoothed": smooth(history.train_loss, beta)}
    if history.val_loss and history.epoch_train_loss:
        numbers["gap"] = history.val_loss[-1] - history.epoch_train_loss[len(history.val_loss) - 1]

    def report(label: str, passed: bool, message: str) -> StepReport:
        numbers["label"] = label
        return StepReport("read the curves", passed, f"{label}: {message}", numbers)

    if history.diagnosis is not None or _first_bad_step(history) is not None:
        bad = _first_bad_step(history)
        what = (f"the loss became NaN/Inf at step {bad}" if bad is not None else
                history.diagnosis.splitlines()[0].rstrip("."))  # e.g. train() stopped a blow-up
        return report("diverged", False, f"{what}: the LR is too large or the init is bad")
    d = numbers["deciles"] = deciles(numbers["smoothed"])
    start, end, low = d[0], d[9], min(d)
    chance_loss = math.log(num_classes)
    at_chance = bool(history.val_acc) and history.val_acc[-1] <= 1 / num_classes + 0.05
    if max(d) > 1.5 * start or end > (1 + rebound) * low:
        return report("LR too high", False, (
            f"the smoothed loss went {start:.3g} -> {max(d):.3g} (highest) -> {end:.3g}: steps "
            "overshoot; try 3-10x smaller"))
    if all(abs(v - start) <= flat * start for v in d):
        why = ("; validation accuracy is at chance too: if step 2 passed, suspect labels that do not "
               "match the images" if at_chance else "")
        return report("flat", False, f"the smoothed loss stayed at {start:.3f} -> {end:.3f}: the LR is "
                      f"too small, the init is dead (no gradient flows) or the model is too small{why}")
    if at_chance and abs(end - chance_loss) <= 0.1 * chance_loss:
        return report("stuck at chance", False, (
            f"the loss went {start:.3g} -> {end:.3f} ≈ ln {num_classes} and validation accuracy is "
            f"{history.val_acc[-1]:.1%}: the outputs ignore the input (units killed by a bad init "
            "or a huge step)"))
    if at_chance and end < 0.7 * chance_loss:
        return report("bug", False, (
            f"the training loss fell to {end:.3f} but validation accuracy is {history.val_acc[-1]:.1%}, "
            "chance level: labels do not match images, or validation data is prepared differently"))
    if len(history.val_loss) >= 3:
        best = min(range(len(history.val_loss)), key=history.val_loss.__getitem__)
        rise = history.val_loss[-1] / history.val_loss[best] - 1
        if rise > overfit_rise and history.epoch_train_loss[-1] < history.epoch_train_loss[best]:
            return report("overfitting", False, (
                f"validation loss rose {rise:.0%} above its minimum (epoch {best + 1}) while the "
                "training loss kept falling: stop earlier (epochs are a hyperparameter), regularize, "
                "or get more data"))
    share = numbers["late_share"] = (d[7] - end) / (start - end) if start > end else 0.0
    if share > late:
        return report("LR too low", False, (
            f"{share:.0%} of the drop came in the last fifth: still falling steadily; a larger LR "
            "(or a longer budget) would get further"))
    if end > 0.5 * chance_loss:
        return report("plateau", False, (
            f"the loss levelled off at {end:.3f}, above half of ln {num_classes} = {chance_loss:.3f}: "
            "the model is too small (or too strongly regularized) for the data"))
    return report("healthy", True, f"the smoothed loss fell {start:.3f} -> {end:.3f} and levelled off")
