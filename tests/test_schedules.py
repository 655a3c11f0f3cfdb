"""Tests for course_utils.schedules: exact values by hand, whole curves against torch's schedulers."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.optim import lr_scheduler

from course_utils import schedules
from course_utils.data import TensorLoader
from course_utils.schedules import (
    SCHEDULES,
    constant,
    cosine,
    exponential,
    make_scheduler,
    multistep,
    one_cycle,
    record_lrs,
    step_decay,
    triangular,
    warmup_cosine,
)
from course_utils.train import train


def approx(value):
    return pytest.approx(value, rel=1e-12, abs=1e-15)


# --- exact values at the first step, the end of the warm-up (or first change) and the last step


def test_constant():
    assert constant(0, lr=0.1) == 0.1
    assert constant(10**6, lr=0.1) == 0.1


def test_step_decay_exact_values():
    f = functools.partial(step_decay, lr=0.1, step_size=30)
    assert f(0) == approx(0.1)
    assert f(29) == approx(0.1)
    assert f(30) == approx(0.01)
    assert f(99) == approx(1e-4)


def test_multistep_exact_values():
    f = functools.partial(multistep, lr=1.0, milestones=[3, 6], gamma=0.5)
    assert [f(s) for s in range(8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_exponential_exact_values():
    f = functools.partial(exponential, lr=0.1, gamma=0.9)
    assert f(0) == approx(0.1)
    assert f(2) == approx(0.081)


def test_cosine_exact_values():
    f = functools.partial(cosine, lr=0.1, total_steps=100, min_lr=0.001)
    assert f(0) == approx(0.1)
    assert f(50) == approx(0.0505)
    assert f(100) == approx(0.001)
    assert f(150) == approx(0.001)  # stays at the minimum afterwards


def test_warmup_cosine_exact_values():
    f = functools.partial(warmup_cosine, lr=0.1, warmup_steps=10, total_steps=100)
    assert f(0) == 0.0
    assert f(5) == approx(0.05)
    assert f(10) == approx(0.1)  # the end of the warm-up is the peak
    assert f(55) == approx(0.05)  # half-way through the decay
    assert f(99) == approx(0.1 * (1 + math.cos(math.pi * 89 / 90)) / 2)
    assert f(100) == approx(0.0)
    g = functools.partial(warmup_cosine, lr=0.1, warmup_steps=10, total_steps=100,
                          start_factor=0.5, min_lr=0.01)
    assert g(0) == approx(0.05)
    assert g(100) == approx(0.01)


def test_warmup_cosine_without_warmup_is_cosine():
    for step in (0, 7, 50, 100):
        assert warmup_cosine(step, lr=0.2, warmup_steps=0, total_steps=100) == approx(
            cosine(step, lr=0.2, total_steps=100))


def test_triangular_exact_values():
    f = functools.partial(triangular, base_lr=0.01, max_lr=0.1, step_size_up=10)
    assert f(0) == approx(0.01)
    assert f(10) == approx(0.1)
    assert f(15) == approx(0.055)
    assert f(20) == approx(0.01)
    assert f(30) == approx(0.1)  # the second cycle


def test_one_cycle_exact_values():
    f = functools.partial(one_cycle, max_lr=0.1, total_steps=100)
    assert f(0) == approx(0.004)  # max_lr / div_factor
    assert f(29) == approx(0.1)  # end of the warm-up phase: 0.3 * 100 - 1
    assert f(99) == approx(4e-7)  # max_lr / 25 / 1e4 at the last step
    assert f(100) == approx(4e-7)  # and there afterwards
    g = functools.partial(one_cycle, max_lr=0.1, total_steps=100, three_phase=True,
                          anneal="linear")
    assert g(29) == approx(0.1)
    assert g(58) == approx(0.004)
    assert g(99) == approx(4e-7)


# --- whole curves against torch.optim.lr_scheduler, stepped once per optimizer step --------------

N = 400


def make_optimizer(lr=0.1):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr, momentum=0.9)


TORCH_CASES = {
    "step": (lambda o: lr_scheduler.StepLR(o, step_size=90, gamma=0.1),
             functools.partial(step_decay, lr=0.1, step_size=90)),
    "multistep": (lambda o: lr_scheduler.MultiStepLR(o, milestones=[200, 300], gamma=0.2),
                  functools.partial(multistep, lr=0.1, milestones=[200, 300], gamma=0.2)),
    "exponential": (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.99),
                    functools.partial(exponential, lr=0.1, gamma=0.99)),
    "cosine": (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=N, eta_min=1e-3),
               functools.partial(cosine, lr=0.1, total_steps=N, min_lr=1e-3)),
    "warmup_cosine": (
        lambda o: lr_scheduler.SequentialLR(o, [
            lr_scheduler.LinearLR(o, start_factor=0.01, total_iters=40),
            lr_scheduler.CosineAnnealingLR(o, T_max=N - 40)], milestones=[40]),
        functools.partial(warmup_cosine, lr=0.1, warmup_steps=40, total_steps=N,
                          start_factor=0.01)),
    "triangular": (lambda o: lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=50,
                                                   step_size_down=30),
                   functools.partial(triangular, base_lr=0.01, max_lr=0.1, step_size_up=50,
                                     step_size_down=30)),
    "one_cycle": (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=N),
                  functools.partial(one_cycle, max_lr=0.1, total_steps=N)),
    "one_cycle_3": (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=N,
                                                      pct_start=0.25, three_phase=True,
                                                      anneal_strategy="linear"),
                    functools.partial(one_cycle, max_lr=0.1, total_steps=N, pct_start=0.25,
                                      three_phase=True, anneal="linear")),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_schedule_matches_torch_over_the_whole_curve(name):
    make_torch, schedule = TORCH_CASES[name]
    expected = record_lrs(make_torch(make_optimizer()), N)
    torch.testing.assert_close([schedule(step) for step in range(N)], expected)


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_make_scheduler_follows_the_schedule(name):
    _, schedule = TORCH_CASES[name]
    got = record_lrs(make_scheduler(make_optimizer(lr=0.3), schedule), N)
    torch.testing.assert_close(got, [schedule(step) for step in range(N)])


def test_make_scheduler_keeps_the_ratio_between_param_groups():
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.2},
              {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.02}]
    optimizer = torch.optim.SGD(groups)
    scheduler = make_scheduler(optimizer, functools.partial(cosine, lr=1.0, total_steps=10))
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    first, second = (group["lr"] for group in optimizer.param_groups)
    assert first == pytest.approx(cosine(5, lr=1.0, total_steps=10))
    assert second == pytest.approx(first / 10)


def test_train_steps_the_adapter_once_per_optimizer_step(tiny_data):
    x, y = tiny_data
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, seed=0)
    total = 2 * len(loader)
    schedule = functools.partial(one_cycle, max_lr=0.5, total_steps=total)
    history = train(model, loader, optimizer=optimizer, epochs=2, progress=False, log_every=3,
                    scheduler=make_scheduler(optimizer, schedule))
    torch.testing.assert_close(history.lr, [schedule(step) for step in range(total)])
    assert history.train_loss[-1] < history.train_loss[0]


def test_registry_names_every_schedule():
    assert set(SCHEDULES) == {"constant", "step", "multistep", "exponential", "cosine",
                              "warmup_cosine", "triangular", "one_cycle"}
    assert all(getattr(schedules, fn.__name__) is fn for fn in SCHEDULES.values())


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("call, words", [
    (lambda: constant(-1, lr=0.1), "step must be an int >= 0"),
    (lambda: constant(1.5, lr=0.1), "step must be an int >= 0"),
    (lambda: constant(0, lr=0.0), "lr must be a positive number"),
    (lambda: step_decay(0, lr=0.1, step_size=0), "step_size must be an int >= 1"),
    (lambda: step_decay(0, lr=0.1, step_size=5, gamma=1.5), "gamma must be a number in (0, 1]"),
    (lambda: multistep(0, lr=0.1, milestones=[5, 3]), "strictly increasing"),
    (lambda: multistep(0, lr=0.1, milestones=[]), "strictly increasing"),
    (lambda: exponential(0, lr=0.1, gamma=0.0), "gamma must be a number in (0, 1]"),
    (lambda: cosine(0, lr=0.1, total_steps=0), "total_steps must be an int >= 1"),
    (lambda: cosine(0, lr=0.1, total_steps=10, min_lr=0.2), "min_lr must be in [0, lr=0.1]"),
    (lambda: warmup_cosine(0, lr=0.1, warmup_steps=10, total_steps=10), "must be < total_steps"),
    (lambda: warmup_cosine(0, lr=0.1, warmup_steps=-1, total_steps=10), "warmup_steps must be"),
    (lambda: warmup_cosine(0, lr=0.1, warmup_steps=1, total_steps=10, start_factor=2),
     "start_factor must be a number in [0, 1]"),
    (lambda: triangular(0, base_lr=0.1, max_lr=0.01, step_size_up=5), "must be >= base_lr"),
    (lambda: triangular(0, base_lr=0.01, max_lr=0.1, step_size_up=5, step_size_down=0),
     "step_size_down must be an int >= 1"),
    (lambda: one_cycle(0, max_lr=0.1, total_steps=100, anneal="cosine"),
     "choose one of ('cos', 'linear')"),
    (lambda: one_cycle(0, max_lr=0.1, total_steps=100, pct_start=0.0), "pct_start must be"),
    (lambda: one_cycle(0, max_lr=0.1, total_steps=3), "leaves a phase with no steps"),
    (lambda: one_cycle(0, max_lr=0.1, total_steps=1), "total_steps must be an int >= 2"),
    (lambda: record_lrs(lr_scheduler.StepLR(make_optimizer(), 1), 0), "num_steps must be"),
])
def test_bad_arguments_raise_value_error_naming_the_allowed_values(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value)


def test_make_scheduler_bad_input():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        make_scheduler("sgd", functools.partial(constant, lr=0.1))
    with pytest.raises(TypeError, match="function step -> lr"):
        make_scheduler(make_optimizer(), 0.1)
    with pytest.raises(ValueError, match="must be positive"):
        make_scheduler(make_optimizer(lr=0.0), functools.partial(constant, lr=0.1))


# --- plot ----------------------------------------------------------------------------------------


def test_plot_schedule_draws_the_curve():
    from course_utils.plots import plot_schedule

    ax = plot_schedule(functools.partial(cosine, lr=0.1, total_steps=50), 50, label="cosine")
    x, y = ax.lines[0].get_data()
    assert len(x) == 50 and y[0] == pytest.approx(0.1)
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="positive int"):
        plot_schedule(functools.partial(constant, lr=0.1), 0)
