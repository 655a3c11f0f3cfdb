"""Tests for course_utils.surfaces: the 2-D losses and the trajectory of an optimizer."""

from __future__ import annotations

import pytest
import torch

from course_utils.optim import SGD, Adam
from course_utils.surfaces import SURFACES, get_surface, quadratic, rosenbrock, saddle, trajectory


def test_known_values_and_minima():
    zero = torch.tensor(0.0)
    assert quadratic(torch.tensor(2.0), torch.tensor(1.0)).item() == pytest.approx(1.2)
    assert rosenbrock(torch.tensor(1.0), torch.tensor(1.0)).item() == 0.0
    assert rosenbrock(torch.tensor(0.0), zero).item() == 1.0
    assert saddle(zero, torch.tensor(1.0)).item() == pytest.approx(-0.025)
    assert saddle(zero, zero).item() == 0.0
    for surface in SURFACES.values():
        x, y = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in surface.minimum)
        surface(x, y).backward()
        assert abs(x.grad.item()) < 1e-12 and abs(y.grad.item()) < 1e-12  # a stationary point
        assert surface.xlim[0] < surface.start[0] < surface.xlim[1]
        assert surface.ylim[0] < surface.start[1] < surface.ylim[1]


def test_get_surface():
    assert get_surface("rosenbrock") is SURFACES["rosenbrock"]
    with pytest.raises(ValueError, match="choose one of"):
        get_surface("himmelblau")


def test_gradient_descent_on_the_quadratic_matches_the_closed_form():
    # x_{k+1} = (1 - lr * 0.1) x_k and y_{k+1} = (1 - lr * 2) y_k
    surface, lr = SURFACES["quadratic"], 0.2
    path = trajectory(surface, lambda params: SGD(params, lr=lr), steps=10)
    assert path.shape == (11, 2) and path.dtype == torch.float64
    k = torch.arange(11, dtype=torch.float64)
    torch.testing.assert_close(path[:, 0], surface.start[0] * (1 - lr * 0.1) ** k)
    torch.testing.assert_close(path[:, 1], surface.start[1] * (1 - lr * 2) ** k)


def test_trajectory_stops_when_it_diverges():
    surface = SURFACES["quadratic"]
    path = trajectory(surface, lambda params: SGD(params, lr=1.5), steps=1000, bound=1e3)
    assert len(path) < 1001
    assert path[-1].abs().max() > 1e3  # the escaping point is kept
    assert (path[:-1].abs() <= 1e3).all()


def test_trajectory_start_and_zero_steps():
    surface = SURFACES["saddle"]
    path = trajectory(surface, lambda params: Adam(params, lr=0.1), steps=0, start=(0.5, 0.5))
    torch.testing.assert_close(path, torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def test_adam_escapes_the_saddle_faster_than_sgd():
    surface = SURFACES["saddle"]
    sgd = trajectory(surface, lambda params: SGD(params, lr=0.1), steps=40)
    adam = trajectory(surface, lambda params: Adam(params, lr=0.1), steps=40)
    assert abs(sgd[-1, 1]) < 0.5 < abs(adam[-1, 1])


@pytest.mark.parametrize(("kwargs", "message"), [({"steps": -1}, "steps"), ({"steps": 2.5}, "steps"),
                                                 ({"steps": 5, "bound": 0.0}, "bound")])
def test_trajectory_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trajectory(SURFACES["quadratic"], lambda params: SGD(params, lr=0.1), **kwargs)
