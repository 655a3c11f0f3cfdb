"""ipywidgets explorers: controls wired to the course's plotting functions, nothing more.

A leaf module (it imports ipywidgets and, through ``plots``, matplotlib): ``import
course_utils`` never imports it. Taught in notebook 02 (the augmentation explorer).
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import torch

from course_utils.augment import AUGMENTATIONS
from course_utils.plots import show_augmentations


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
