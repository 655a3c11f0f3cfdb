"""ipywidgets explorers: controls wired to the course's plain functions, nothing more.

A leaf module: importing it imports ipywidgets and matplotlib, so ``course_utils`` never does.
Each explorer redraws an off-screen matplotlib figure into an ``Image`` widget (no
``widgets.Output``, which notebook validation cannot compare and a static book cannot show),
and the function that maps controls to what is drawn is public and testable without a
browser. The augmentation explorer (notebook 02) is an ``ipywidgets.interactive`` around a
plotting function instead; its cell's output is not compared.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import ipywidgets as widgets
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from course_utils import schedules
from course_utils.augment import AUGMENTATIONS
from course_utils.optim import OPTIMIZER_NAMES, make_optimizer
from course_utils.plots import plot_trajectories, show_augmentations
from course_utils.schedules import SCHEDULES, Schedule
from course_utils.surfaces import SURFACES, get_surface, trajectory


def _to_png(figure: Figure) -> bytes:
    """Render an off-screen figure (no pyplot, nothing auto-displayed) to PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def schedule_from_controls(kind: str, *, lr: float, total_steps: int, warmup_fraction: float = 0.1,
                           gamma: float = 0.1, cycles: int = 2) -> Schedule:
    """The schedule the explorer draws for its control values. Notebook 05.

    ``lr`` is the peak LR of every schedule. Step and exponential decay multiply the LR by
    ``gamma`` every third of the run (in one jump or smoothly); multistep at 50% and 75%.
    ``warmup_fraction`` is the warm-up length (``warmup_cosine``) or ``pct_start``
    (``one_cycle``); ``cycles`` is the number of triangles of the cyclical schedule, which
    runs between ``lr / 10`` and ``lr``.

    Raises:
        ValueError: unknown ``kind`` (the message lists the allowed ones) or bad numbers.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"kind={kind!r}; choose one of {tuple(SCHEDULES)}")
    if not isinstance(total_steps, int) or total_steps < 10:
        raise ValueError(f"total_steps must be an int >= 10, got {total_steps!r}")
    if not isinstance(cycles, int) or not 1 <= cycles <= total_steps // 4:
        raise ValueError(f"cycles must be an int in [1, {total_steps // 4}], got {cycles!r}")
    third = max(1, total_steps // 3)
    makers = {
        "constant": lambda: functools.partial(schedules.constant, lr=lr),
        "step": lambda: functools.partial(schedules.step_decay, lr=lr, step_size=third, gamma=gamma),
        "multistep": lambda: functools.partial(
            schedules.multistep, lr=lr, milestones=[total_steps // 2, 3 * total_steps // 4], gamma=gamma),
        "exponential": lambda: functools.partial(schedules.exponential, lr=lr, gamma=gamma ** (1 / third)),
        "cosine": lambda: functools.partial(schedules.cosine, lr=lr, total_steps=total_steps),
        "warmup_cosine": lambda: functools.partial(
            schedules.warmup_cosine, lr=lr, warmup_steps=round(warmup_fraction * total_steps),
            total_steps=total_steps),
        "triangular": lambda: functools.partial(
            schedules.triangular, base_lr=lr / 10, max_lr=lr, step_size_up=total_steps // (2 * cycles)),
        "one_cycle": lambda: functools.partial(
            schedules.one_cycle, max_lr=lr, total_steps=total_steps, pct_start=max(0.05, warmup_fraction)),
    }
    schedule = makers[kind]()
    schedule(0)  # raises ValueError now, not at drawing time, for out-of-range parameters
    return schedule


def _schedule_png(schedule: Schedule, total_steps: int, title: str) -> bytes:
    figure = Figure(figsize=(6, 2.8), dpi=72, layout="constrained")
    ax = figure.subplots()
    ax.plot(range(total_steps), [schedule(step) for step in range(total_steps)])
    ax.set(xlabel="optimizer step", ylabel="learning rate", title=title, ylim=(0, None))
    return _to_png(figure)


def schedule_explorer(total_steps: int = 1000) -> widgets.VBox:
    """Pick a schedule and its parameters, see its LR curve. Notebook 05.

    Returns the widget box; its last child is the ``Image`` that is redrawn on every change.
    """
    kind = widgets.Dropdown(options=tuple(SCHEDULES), value="warmup_cosine", description="schedule")
    lr = widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=0, description="peak lr")
    steps = widgets.IntSlider(value=total_steps, min=100, max=max(5000, total_steps), step=100,
                              description="steps")
    warmup = widgets.FloatSlider(value=0.1, min=0.0, max=0.5, step=0.05, description="warm-up")
    gamma = widgets.FloatSlider(value=0.1, min=0.05, max=0.9, step=0.05, description="gamma")
    cycles = widgets.IntSlider(value=2, min=1, max=8, description="cycles")
    image = widgets.Image(format="png")
    status = widgets.Label()
    controls = (kind, lr, steps, warmup, gamma, cycles)

    def redraw(_change: object = None) -> None:
        # the slider ranges only allow valid combinations, so this never raises
        schedule = schedule_from_controls(kind.value, lr=lr.value, total_steps=steps.value,
                                          warmup_fraction=warmup.value, gamma=gamma.value,
                                          cycles=cycles.value)
        status.value = (f"lr at step 0: {schedule(0):.3g}, peak: {lr.value:.3g}, "
                        f"at the last step: {schedule(steps.value - 1):.3g}")
        image.value = _schedule_png(schedule, steps.value, kind.value)

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(controls[:3])), widgets.HBox(list(controls[3:])),
                         status, image])


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
    ax = figure.add_subplot()
    status = f"diverged after {len(path) - 1} steps" if diverged else f"loss after {steps} steps: {final:.3g}"
    plot_trajectories(chosen, {f"{optimizer}, lr={lr:.3g}": path}, ax=ax,
                      title=f"{chosen.name}: {status}")
    return _to_png(figure)


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


# --- notebook 02: augmentations ----------------------------------------------------------------

def augmentation_controls(name: str = "translate", strength: float = 0.5) -> dict[str, widgets.Widget]:
    """The explorer's controls: which augmentation, how strong, and which random draw."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {AUGMENTATIONS}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    return {
        "name": widgets.Dropdown(options=AUGMENTATIONS, value=name, description="transform"),
        "strength": widgets.FloatSlider(value=strength, min=0.0, max=1.0, step=0.05,
                                        description="strength", continuous_update=False),
        "seed": widgets.IntSlider(value=0, min=0, max=99, description="random draw",
                                  continuous_update=False),
    }


def augmentation_explorer(images: torch.Tensor, *, strengths: Sequence[float] = (0.0,),
                          name: str = "translate", strength: float = 0.5) -> widgets.interactive:
    """Pick an augmentation and a strength; see ``images`` ``(N, C, H, W)`` augmented.

    Each redraw shows the original row (strength 0, or ``strengths``) and the chosen strength,
    so the change is easy to see. Returns the ``ipywidgets.interactive`` (display it).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")

    def draw(name: str, strength: float, seed: int) -> None:
        rows = [(name, float(s)) for s in strengths] + [(name, float(strength))]
        show_augmentations(images, rows, seed=seed)

    return widgets.interactive(draw, **augmentation_controls(name, strength))
