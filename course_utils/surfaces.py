"""Two-dimensional loss surfaces and the path an optimizer takes across them.

Notebook 04 draws the trajectories of every optimizer on an ill-conditioned quadratic, the
Rosenbrock valley and a saddle; the optimizer explorer in :mod:`course_utils.widgets` uses
the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import Optimizer


def quadratic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x**2 / 20 + y**2``: curvatures 0.1 and 2, condition number 20; minimum 0 at (0, 0)."""
    return x**2 / 20 + y**2


def rosenbrock(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rosenbrock's banana valley ``(1 - x)**2 + 100 (y - x**2)**2``; minimum 0 at (1, 1)."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def saddle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x**2 + (y**4 - 2 y**2) / 40``: a saddle at (0, 0), minima -1/40 at (0, +-1).

    Curvature 2 along x and -0.1 along y at the saddle: the same 20:1 ratio as the quadratic,
    so a learning rate that is stable along x escapes slowly along y.
    """
    return x**2 + (y**4 - 2 * y**2) / 40


@dataclass(frozen=True)
class Surface:
    """A 2-D loss ``fn(x, y)``, where to start, its minimum and the window to draw."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    log_levels: bool  # contours on a log scale (for steep valleys)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(x, y)


SURFACES = {
    "quadratic": Surface("ill-conditioned quadratic", quadratic, (-9.0, 2.0), (0.0, 0.0),
                         (-10.0, 10.0), (-3.0, 3.0), False),
    "rosenbrock": Surface("Rosenbrock", rosenbrock, (-1.5, 2.0), (1.0, 1.0), (-2.0, 2.0),
                          (-1.0, 3.0), True),
    "saddle": Surface("saddle", saddle, (-2.0, 0.01), (0.0, 1.0), (-2.5, 2.5), (-1.6, 1.6), False),
}


def get_surface(name: str) -> Surface:
    """One of :data:`SURFACES` by key (``"quadratic"``, ``"rosenbrock"``, ``"saddle"``)."""
    if name not in SURFACES:
        raise ValueError(f"unknown surface {name!r}; choose one of {tuple(SURFACES)}")
    return SURFACES[name]


def trajectory(surface: Surface, make_optimizer: Callable[[list[torch.Tensor]], Optimizer], *,
               steps: int, start: tuple[float, float] | None = None,
               bound: float = 1e6) -> torch.Tensor:
    """The points an optimizer visits on ``surface``, as a float64 tensor ``(k, 2)``.

    Args:
        make_optimizer: builds the optimizer from ``[point]``, e.g.
            ``lambda params: torch.optim.Adam(params, lr=0.1)``.
        steps: optimizer steps; ``k = steps + 1`` unless the run diverges.
        start: the first point (the surface's own start if None).
        bound: stop early once a coordinate leaves ``[-bound, bound]`` or is not finite; the
            escaping point is the last row (so a diverged run is easy to spot).
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    point = torch.tensor(start if start is not None else surface.start, dtype=torch.float64,
                         requires_grad=True)
    optimizer = make_optimizer([point])
    path = [point.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        surface(point[0], point[1]).backward()
        optimizer.step()
        path.append(point.detach().clone())
        if not all(math.isfinite(v) and abs(v) <= bound for v in path[-1].tolist()):
            break
    return torch.stack(path)
