"""Interactive explorers (ipywidgets) that only wire controls to the course's plain functions.

A leaf module: importing it imports ipywidgets and matplotlib. The figures are rendered to PNG
and shown in an ``ipywidgets.Image`` (no ``widgets.Output``, which does not survive nbval or a
static book): the notebook cell shows the controls, and every change redraws the picture.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from course_utils.optim import OPTIMIZER_NAMES, make_optimizer
from course_utils.plots import plot_trajectories
from course_utils.surfaces import SURFACES, get_surface, trajectory

BETA2_CHOICES = (0.9, 0.99, 0.999, 0.9999)


def render_trajectory(surface: str, optimizer: str, *, lr: float, momentum: float, beta1: float,
                      beta2: float, steps: int) -> bytes:
    """The explorer's picture as PNG bytes: one optimizer's path on one surface.

    ``beta2`` is also RMSprop's decay ``alpha``. Raises ValueError for unknown names or
    out-of-range hyperparameters (see :func:`course_utils.optim.make_optimizer`).
    """
    chosen = get_surface(surface)
    path = trajectory(chosen, lambda params: make_optimizer(
        optimizer, params, lr=lr, momentum=momentum, betas=(beta1, beta2), alpha=beta2),
        steps=steps)
    final = chosen(path[-1, 0], path[-1, 1]).item()
    diverged = len(path) <= steps
    figure = Figure(figsize=(6, 4), dpi=64, layout="constrained")  # small: stored in the notebook
    FigureCanvasAgg(figure)  # attaches an off-screen canvas: no pyplot, nothing auto-displayed
    ax = figure.add_subplot()
    status = f"diverged after {len(path) - 1} steps" if diverged else f"loss after {steps} steps: {final:.3g}"
    plot_trajectories(chosen, {f"{optimizer}, lr={lr:.3g}": path}, ax=ax,
                      title=f"{chosen.name}: {status}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def optimizer_explorer(surface: str = "quadratic", optimizer: str = "momentum", *,
                       lr: float = 0.1, steps: int = 100) -> widgets.VBox:
    """Pick a surface, an optimizer, its LR, momentum and betas; see its path redrawn.

    Returns a ``VBox(controls, image)``; display it as a cell's last expression. Notebook 04.

    Raises:
        ValueError: unknown ``surface`` or ``optimizer``, ``lr`` outside [1e-4, 1], or
            ``steps`` outside [10, 500].
    """
    get_surface(surface)
    if optimizer not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZER_NAMES}")
    if not 1e-4 <= lr <= 1:
        raise ValueError(f"lr must be in [1e-4, 1] (the slider's range), got {lr!r}")
    if not isinstance(steps, int) or not 10 <= steps <= 500:
        raise ValueError(f"steps must be an int in [10, 500], got {steps!r}")
    style = {"description_width": "90px"}
    controls = {
        "surface": widgets.Dropdown(options=tuple(SURFACES), value=surface, description="surface",
                                    style=style),
        "optimizer": widgets.Dropdown(options=OPTIMIZER_NAMES, value=optimizer,
                                      description="optimizer", style=style),
        "lr": widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="lr",
                                     continuous_update=False, style=style),
        "momentum": widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01,
                                        description="momentum", continuous_update=False, style=style),
        "beta1": widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="beta1",
                                     continuous_update=False, style=style),
        "beta2": widgets.SelectionSlider(options=BETA2_CHOICES, value=0.999,
                                         description="beta2 / alpha", continuous_update=False,
                                         style=style),
        "steps": widgets.IntSlider(value=steps, min=10, max=500, step=10, description="steps",
                                   continuous_update=False, style=style),
    }
    image = widgets.Image(format="png")

    def redraw(_change: object = None) -> None:
        values = {name: control.value for name, control in controls.items()}
        image.value = render_trajectory(values.pop("surface"), values.pop("optimizer"), **values)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    boxes = list(controls.values())
    return widgets.VBox([widgets.HBox([widgets.VBox(boxes[:4]), widgets.VBox(boxes[4:])]), image])
