"""ipywidgets explorers: controls wired to the course's plain functions, nothing more.

A leaf module: importing it imports ipywidgets and matplotlib, so ``course_utils`` never does.
Each explorer redraws an off-screen matplotlib figure into an ``Image`` widget (no
``widgets.Output``, which notebook validation cannot compare and a static book cannot show),
and the function that maps controls to what is drawn is public and testable without a
browser.

A cell shows an explorer through :class:`Explorer`, whose output carries three views of it:
the live widget (JupyterLab with a running kernel), a PNG of its starting state with a
sentence saying how to explore it (the book, and a notebook opened without running it), and
that sentence as plain text. A widget's repr (``VBox(children=...``) is never shown.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from course_utils import schedules
from course_utils.augment import AUGMENTATIONS
from course_utils.optim import OPTIMIZER_NAMES, make_optimizer
from course_utils.plots import DPI, plot_trajectories, show_augmentations
from course_utils.schedules import SCHEDULES, Schedule
from course_utils.surfaces import SURFACES, get_surface, trajectory

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _to_png(figure: Figure) -> bytes:
    """Render an off-screen figure (no pyplot, nothing auto-displayed) to PNG bytes.

    No version in the metadata, so the same picture gives the same bytes on every run.
    """
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


@dataclass(frozen=True, eq=False)
class Explorer:
    """An explorer as a notebook cell displays it (the cell's last expression).

    Attributes:
        widget: the live controls and picture, for JupyterLab.
        controls: name -> control widget, e.g. ``controls["lr"].value = 0.1`` redraws.
        image: the picture, redrawn on every change.
        sentence: what a reader without a live kernel sees instead of the controls.
        preview: the PNG of the starting state, shown with the sentence.
        starting_state: the controls' starting values, e.g. ``"optimizer momentum, lr 0.05"``.
    """

    widget: widgets.Box
    controls: Mapping[str, widgets.Widget]
    image: widgets.Image
    sentence: str
    preview: bytes
    starting_state: str

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.preview).decode("ascii")
        state = html.escape(self.starting_state)
        return (f'<figure class="course-explorer" style="margin: 0">'
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.sentence)}" '
                f'style="max-width: 100%; height: auto">'
                f"<figcaption><em>{html.escape(self.sentence)}</em> "
                f"The picture shows its starting state: {state}.</figcaption></figure>")

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, object]:
        view = self.widget._repr_mimebundle_()[WIDGET_VIEW]
        return {WIDGET_VIEW: view, "text/html": self._repr_html_(), "text/plain": self.sentence}

    def __repr__(self) -> str:
        return self.sentence


def _shown(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _explorer(controls: Mapping[str, widgets.Widget], draw: Callable[..., bytes], *, sentence: str,
              layout: Callable[[list[widgets.Widget], widgets.Image], widgets.Box],
              status: widgets.Label | None = None,
              describe: Callable[..., str] | None = None) -> Explorer:
    """Wire ``controls`` to ``draw(**values) -> PNG`` and lay them out with the picture."""
    # at its own size: a box would otherwise stretch the picture (and blur its text) to its width
    image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start", max_width="100%"))

    def redraw(_change: object = None) -> None:
        values = {name: control.value for name, control in controls.items()}
        image.value = draw(**values)
        if status is not None and describe is not None:
            status.value = describe(**values)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    state = ", ".join(f"{name} {_shown(control.value)}" for name, control in controls.items())
    return Explorer(layout(list(controls.values()), image), dict(controls), image, sentence,
                    bytes(image.value), state)


# --- notebook 05: learning-rate schedules ------------------------------------------------------

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
    figure = Figure(figsize=(6.4, 3), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    ax.plot(range(total_steps), [schedule(step) for step in range(total_steps)])
    ax.set(xlabel="optimizer step", ylabel="learning rate", title=title, ylim=(0, None))
    return _to_png(figure)


def schedule_explorer(total_steps: int = 1000) -> Explorer:
    """Pick a schedule and its parameters, see its LR curve. Notebook 05.

    Returns the :class:`Explorer` (display it as a cell's last expression); its controls are
    ``schedule``, ``peak lr``, ``steps``, ``warm-up``, ``gamma`` and ``cycles``.
    """
    controls = {
        "schedule": widgets.Dropdown(options=tuple(SCHEDULES), value="warmup_cosine",
                                     description="schedule"),
        "peak lr": widgets.FloatLogSlider(value=0.1, base=10, min=-4, max=0, description="peak lr"),
        "steps": widgets.IntSlider(value=total_steps, min=100, max=max(5000, total_steps), step=100,
                                   description="steps"),
        "warm-up": widgets.FloatSlider(value=0.1, min=0.0, max=0.5, step=0.05, description="warm-up"),
        "gamma": widgets.FloatSlider(value=0.1, min=0.05, max=0.9, step=0.05, description="gamma"),
        "cycles": widgets.IntSlider(value=2, min=1, max=8, description="cycles"),
    }
    status = widgets.Label()

    def make(values: dict) -> tuple[Schedule, int]:
        # the slider ranges only allow valid combinations, so this never raises
        steps = values["steps"]
        return schedule_from_controls(values["schedule"], lr=values["peak lr"], total_steps=steps,
                                      warmup_fraction=values["warm-up"], gamma=values["gamma"],
                                      cycles=values["cycles"]), steps

    def draw(**values: object) -> bytes:
        schedule, steps = make(values)
        return _schedule_png(schedule, steps, str(values["schedule"]))

    def describe(**values: object) -> str:
        schedule, steps = make(values)
        return (f"lr at step 0: {schedule(0):.3g}, peak: {values['peak lr']:.3g}, "
                f"at the last step: {schedule(steps - 1):.3g}")

    def layout(boxes: list[widgets.Widget], image: widgets.Image) -> widgets.Box:
        return widgets.VBox([widgets.HBox(boxes[:3]), widgets.HBox(boxes[3:]), status, image])

    return _explorer(controls, draw, layout=layout, status=status, describe=describe,
                     sentence="Interactive explorer: run this cell in JupyterLab to change the "
                              "schedule and its parameters.")


# --- notebook 04: optimizer trajectories -------------------------------------------------------

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
    figure = Figure(figsize=(6.4, 4.2), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    status = f"diverged after {len(path) - 1} steps" if diverged else f"loss after {steps} steps: {final:.3g}"
    plot_trajectories(chosen, {f"{optimizer}, lr={lr:.3g}": path}, ax=ax,
                      title=f"{chosen.name}: {status}")
    return _to_png(figure)


def optimizer_explorer(surface: str = "quadratic", optimizer: str = "momentum", *,
                       lr: float = 0.1, steps: int = 100) -> Explorer:
    """Pick a surface, an optimizer, its LR, momentum and betas; see its path redrawn.

    Returns the :class:`Explorer` (display it as a cell's last expression); its controls are
    ``surface``, ``optimizer``, ``lr``, ``momentum``, ``beta1``, ``beta2`` and ``steps``.
    Notebook 04.

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

    def layout(boxes: list[widgets.Widget], image: widgets.Image) -> widgets.Box:
        return widgets.VBox([widgets.HBox([widgets.VBox(boxes[:4]), widgets.VBox(boxes[4:])]), image])

    return _explorer(controls, render_trajectory, layout=layout,
                     sentence="Interactive explorer: run this cell in JupyterLab to change the "
                              "optimizer and learning rate.")


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


def render_augmentations(images: torch.Tensor, name: str, strength: float, seed: int, *,
                         strengths: Sequence[float] = (0.0,)) -> bytes:
    """The augmentation explorer's picture as PNG bytes: one row per strength, then ``strength``.

    ``images`` is ``(N, C, H, W)``; ``seed`` picks the random draw (the caller's RNG is untouched).
    """
    figure = Figure(dpi=DPI, layout="constrained")
    rows = [(name, float(s)) for s in strengths] + [(name, float(strength))]
    show_augmentations(images, rows, seed=seed, figure=figure)
    return _to_png(figure)


def augmentation_explorer(images: torch.Tensor, *, strengths: Sequence[float] = (0.0,),
                          name: str = "translate", strength: float = 0.5) -> Explorer:
    """Pick an augmentation and a strength; see ``images`` ``(N, C, H, W)`` augmented.

    Each redraw shows the original row (strength 0, or ``strengths``) and the chosen strength,
    so the change is easy to see. Returns the :class:`Explorer` (display it); its controls are
    ``name``, ``strength`` and ``seed``. Notebook 02.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    draw = functools.partial(render_augmentations, images, strengths=tuple(strengths))

    def layout(boxes: list[widgets.Widget], image: widgets.Image) -> widgets.Box:
        return widgets.VBox([widgets.HBox(boxes), image])

    return _explorer(augmentation_controls(name, strength), draw, layout=layout,
                     sentence="Interactive explorer: run this cell in JupyterLab to change the "
                              "augmentation and its strength.")
