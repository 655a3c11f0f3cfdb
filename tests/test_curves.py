import math

import numpy as np
import pytest

from course_utils.curves import MIN_STEPS, deciles, diagnose_curves, epochs_to_read, smooth
from course_utils.train import History

STEPS, EPOCHS = 200, 5


def make_history(train_loss, val_loss=None, val_acc=None, diagnosis=None):
    """A History with a per-step training loss and, optionally, per-epoch validation numbers."""
    history = History(step=list(range(len(train_loss))), lr=[0.1] * len(train_loss),
                      train_loss=[float(v) for v in train_loss], diagnosis=diagnosis)
    if val_loss is not None:
        per_epoch = np.array_split(np.asarray(train_loss, dtype=float), len(val_loss))
        history.epoch = list(range(1, len(val_loss) + 1))
        history.epoch_train_loss = [float(chunk.mean()) for chunk in per_epoch]
        history.val_loss = list(val_loss)
        history.val_acc = list(val_acc)
    return history


def decay(start=2.3, end=0.4, rate=30.0, noise=0.0, steps=STEPS):
    t = np.arange(steps)
    curve = end + (start - end) * np.exp(-t / rate)
    return curve + noise * np.random.default_rng(0).standard_normal(steps)


def test_smooth_exact_values():
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    assert smooth([2.0, 0.0], beta=0.5) == pytest.approx([2.0, 0.5 / 0.75])
    out = smooth([1.0, math.nan, 3.0], beta=0.0)
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == 3.0
    with pytest.raises(ValueError, match="beta"):
        smooth([1.0], beta=1.0)


def test_deciles():
    assert deciles(list(range(20))) == pytest.approx([0.5 + 2 * k for k in range(10)])
    assert deciles([1.0] * 13) == pytest.approx([1.0] * 10)
    with pytest.raises(ValueError, match="at least 10"):
        deciles([1.0] * 9)


@pytest.mark.parametrize("name, history, label", [
    ("healthy", make_history(decay(noise=0.05), [0.6, 0.5, 0.45, 0.44, 0.44], [0.8, 0.82, 0.84, 0.84, 0.85]),
     "healthy"),
    ("nan", make_history([2.3, 5.0, math.nan], diagnosis="stopped"), "diverged"),
    ("blow-up", make_history(np.r_[decay(steps=60), np.linspace(0.5, 30, 60), np.full(80, 2.4)]),
     "LR too high"),
    ("rebound", make_history(np.r_[decay(end=0.4, steps=120), np.linspace(0.45, 0.9, 80)]), "LR too high"),
    ("flat", make_history(2.302 + 0.01 * np.random.default_rng(1).standard_normal(STEPS),
                          [2.30] * 5, [0.1] * 5), "flat"),
    ("chance", make_history(decay(start=150.0, end=2.31, rate=20), [2.30] * 5, [0.1] * 5),
     "stuck at chance"),
    ("bug", make_history(decay(), [2.4, 2.5, 2.6, 2.6, 2.7], [0.1, 0.09, 0.11, 0.1, 0.1]), "bug"),
    ("overfit", make_history(decay(end=0.1), [0.5, 0.45, 0.5, 0.6, 0.7], [0.8, 0.84, 0.84, 0.83, 0.83]),
     "overfitting"),
    ("too low", make_history(np.linspace(2.3, 1.0, STEPS)), "LR too low"),
    ("plateau", make_history(decay(end=1.7)), "plateau"),
])
def test_diagnose_names_each_shape(name, history, label):
    report = diagnose_curves(history)
    assert report.numbers["label"] == label, report
    assert report.passed == (label == "healthy")
    assert report.message.startswith(label)


def test_a_run_stopped_with_a_diagnosis_is_diverged_even_without_a_nan_step():
    report = diagnose_curves(make_history([2.3, 2.4, 9e3], diagnosis="Training stopped: the loss "
                                          "diverged to 9e+03 at step 2.\nLikely causes: ..."))
    assert report.numbers["label"] == "diverged"
    assert report.message.startswith("diverged: Training stopped: the loss diverged to 9e+03 at step 2:")
    assert "NaN/Inf at step 2" in diagnose_curves(make_history([2.3, 2.4, math.inf])).message


def test_flat_at_chance_mentions_labels_and_gap_is_reported():
    history = make_history(2.302 + 0.001 * np.arange(STEPS) % 0.01, [2.31] * 5, [0.1] * 5)
    report = diagnose_curves(history)
    assert "labels" in report.message
    assert report.numbers["gap"] == pytest.approx(2.31 - history.epoch_train_loss[-1])


def test_epochs_to_read_gives_runs_that_can_be_read():
    assert [epochs_to_read(n) for n in (1, 9, 10, 20, 32)] == [20, 3, 2, 1, 1]
    assert epochs_to_read(9, per_decile=1) == 2
    for steps in range(1, 40):  # enough steps, and one epoch fewer would not be
        epochs = epochs_to_read(steps)
        assert epochs * steps >= 2 * MIN_STEPS > (epochs - 1) * steps
        diagnose_curves(make_history(decay(steps=epochs * steps)))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            epochs_to_read(bad)


def test_bad_input():
    with pytest.raises(TypeError, match="History"):
        diagnose_curves({"train_loss": [1.0] * 20})
    with pytest.raises(ValueError, match="at least 10 logged training steps; this run logged 9: train for"):
        diagnose_curves(make_history([2.3] * 9))
    assert diagnose_curves(make_history([2.3] * 10)).numbers["label"] == "flat"  # ten steps are enough
    with pytest.raises(ValueError, match="num_classes"):
        diagnose_curves(make_history(decay()), num_classes=1)
