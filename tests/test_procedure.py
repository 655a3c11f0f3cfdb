import functools
import math

import pytest
import torch
from torch import nn

from course_utils.data import TensorLoader
from course_utils.models import mlp
from course_utils.procedure import (
    StepReport,
    find_falling_lr,
    inspect_initial_loss,
    overfit_tiny_subset,
)


@pytest.fixture
def ten_class_data():
    """320 examples of shape (1, 4, 4) in 10 separable classes."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(320) % 10
    centers = torch.randn(10, 1, 4, 4, generator=generator) * 2
    x = centers[y] + 0.3 * torch.randn(320, 1, 4, 4, generator=generator)
    return x, y


def fresh_mlp(hidden=(32,)):
    torch.manual_seed(0)
    return mlp(16, hidden, 10)


def test_step_report_shows_its_verdict():
    report = StepReport("initial loss", True, "fine", {"loss": 2.3})
    assert repr(report) == "PASSED (initial loss): fine" and report
    assert repr(StepReport("x", False, "why")).startswith("FAILED (x)")


def test_initial_loss_passes_near_ln_classes(ten_class_data):
    x, y = ten_class_data
    report = inspect_initial_loss(fresh_mlp(), x, y)
    assert report.passed, report
    assert report.numbers["expected"] == pytest.approx(math.log(10))


def test_initial_loss_names_a_too_large_init_and_a_softmax_twice(ten_class_data):
    x, y = ten_class_data
    model = fresh_mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)
    report = inspect_initial_loss(model, x, y)
    assert not report and "confidently wrong" in report.message and "init" in report.message
    report = inspect_initial_loss(nn.Sequential(fresh_mlp(), nn.Softmax(dim=1)), x, y)
    assert not report and "twice" in report.message
    assert report.numbers["loss"] == pytest.approx(math.log(10), abs=0.05)  # the number alone looks fine
    assert report.numbers["floor"] == pytest.approx(math.log(9 + math.e) - 1)


def test_initial_loss_below_ln_classes_and_nan(ten_class_data):
    x, y = ten_class_data

    class Leaky(nn.Module):
        def forward(self, inputs):
            return 3 * nn.functional.one_hot(y, 10).float()

    assert "below" in inspect_initial_loss(Leaky(), x, y).message
    assert "nan" in inspect_initial_loss(nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.Threshold(
        10.0, math.nan)), x, y).message.lower()
    with pytest.raises(TypeError):
        inspect_initial_loss("model", x, y)
    with pytest.raises(ValueError, match="tolerance"):
        inspect_initial_loss(fresh_mlp(), x, y, tolerance=0)


def test_overfit_passes_and_leaves_model_and_rng_untouched(ten_class_data):
    x, y = ten_class_data
    model = fresh_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    shuffled = torch.randperm(40) % 10  # labels that do not match the images are memorized too
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    report = overfit_tiny_subset(model, x[:40], shuffled,
                                 optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    assert report.passed, report
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert report.numbers["accuracies"][-1][1] == 1.0


@pytest.mark.parametrize("case, words", [
    ("tiny lr", "did not fall"),
    ("too small", "stopped at"),
    ("huge lr", "became"),
    ("softmax", "probabilities"),
])
def test_overfit_says_why_not(ten_class_data, case, words):
    x, y = ten_class_data
    lr = {"tiny lr": 1e-6, "huge lr": 1e6}.get(case, 0.1)
    model = {"too small": fresh_mlp(hidden=(1,)),
             "softmax": nn.Sequential(fresh_mlp(), nn.Softmax(dim=1))}.get(case, fresh_mlp())
    report = overfit_tiny_subset(model, x[:100], y[:100], steps=150,
                                 optimizer=functools.partial(torch.optim.SGD, lr=lr, momentum=0.9))
    assert not report.passed
    assert words in report.message, report


def test_find_falling_lr_uses_the_range_test_and_restores_state(ten_class_data):
    x, y = ten_class_data
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
    state = loader.state_dict()["generator"].clone()
    model = fresh_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    report = find_falling_lr(model, loader, optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
                             within=30)
    assert report.passed, report
    assert report.numbers["lr"] == report.numbers["range_test"].suggested_lr
    assert report.numbers["drop"] >= 0.3 and len(report.numbers["losses"]) == 30
    assert torch.equal(loader.state_dict()["generator"], state)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_find_falling_lr_fails_when_the_sweep_never_reaches_a_useful_lr(ten_class_data):
    x, y = ten_class_data
    report = find_falling_lr(fresh_mlp(), TensorLoader(x, y, batch_size=32, shuffle=True, seed=0),
                             optimizer=torch.optim.SGD, within=20, start_lr=1e-8, end_lr=1e-7,
                             num_steps=20)
    assert not report.passed and "fell only" in report.message


def test_bad_arguments(ten_class_data):
    x, y = ten_class_data
    loader = TensorLoader(x, y, batch_size=32)
    model = fresh_mlp()
    with pytest.raises(TypeError, match="factory"):
        overfit_tiny_subset(model, x, y, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="steps"):
        overfit_tiny_subset(model, x, y, optimizer=torch.optim.SGD, steps=0)
    with pytest.raises(ValueError, match="within"):
        find_falling_lr(model, loader, optimizer=torch.optim.SGD, within=5)
    with pytest.raises(ValueError, match="min_drop"):
        find_falling_lr(model, loader, optimizer=torch.optim.SGD, min_drop=1.5)
