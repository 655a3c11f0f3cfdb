"""How big the experiments are on this machine: the course's one size policy.

Every notebook takes its sizes (training images, epochs, steps, trials, widths) from here and
never computes its own scale factor. Three rules:

1. a default scale per device type: 1 on a CPU (the stored outputs are a 2-core CPU run at
   scale 1), 2 on Apple's MPS, 4 on a CUDA GPU;
2. an override an instructor can set for a whole class: ``COURSE_SCALE=0.5`` for slow laptops,
   ``COURSE_SCALE=4`` to run the GPU sizes anywhere;
3. sizes are clamped to the data actually available (the 1,437-image fallback data, a small
   dataset), with a one-line notice, so a larger scale never asks for data that is not there.

Taught in notebook 00 (where the sizes come from); used by every notebook.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

ENV_VAR = "COURSE_SCALE"
DEFAULT_SCALE = {"cpu": 1.0, "mps": 2.0, "cuda": 4.0}
MAX_SCALE = 64.0  # more than this is a typo, not a class setting


def _parse_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_SCALE:
        raise ValueError(f"{ENV_VAR}={text!r} is not a valid scale: use a number above 0 and at most "
                         f"{MAX_SCALE:g} (1 = the 2-core CPU sizes of the stored outputs, 0.5 for a "
                         "slow laptop, 4 = the GPU sizes), or unset it for the default of this device")
    return value


@dataclass(frozen=True)
class SizePolicy:
    """The scale of this machine's experiments and where it came from.

    ``count`` turns a base size (the one used for the stored 2-core CPU run) into this machine's
    size. ``scale == 1`` reproduces the stored outputs exactly.
    """

    scale: float
    device: str
    origin: str  # "default" or "COURSE_SCALE"

    def __str__(self) -> str:
        if self.origin == "default":
            how = f"the default on a {self.device} device; set {ENV_VAR} to change it"
        else:
            default = DEFAULT_SCALE.get(self.device, 1.0)
            how = f"set by {ENV_VAR}; unset it for the {self.device} default of {default:g}"
        return f"experiment size: scale {self.scale:g} ({how})"

    @property
    def is_reference(self) -> bool:
        """True at the size of the stored outputs (scale 1)."""
        return self.scale == 1.0

    def count(self, base: int, *, name: str, available: int | None = None, minimum: int = 1,
              scaled: bool = True, power: float = 1.0) -> int:
        """This machine's value of a size whose reference (scale 1) value is ``base``.

        Args:
            base: the size at scale 1 (a positive int).
            name: what is sized, for the notice (e.g. ``"TRAIN_SIZE"``).
            available: the most there is (e.g. ``len(dataset)``); a larger size is clamped to it
                with a one-line notice.
            minimum: the smallest useful size (applied before clamping to ``available``).
            scaled: False for sizes that must not grow with the scale (a validation split that
                must be the same in every notebook) but still must fit the data.
            power: grow as ``scale ** power`` (0.5 for a quantity that should grow slower).

        Raises:
            ValueError: ``base``, ``minimum`` or ``available`` is not a positive int.
        """
        for label, value in (("base", base), ("minimum", minimum)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        if available is not None and (not isinstance(available, int) or available < 1):
            raise ValueError(f"available must be a positive int or None, got {available!r} for {name}")
        size = max(minimum, round(base * self.scale ** power)) if scaled else max(minimum, base)
        if available is not None and size > available:
            print(f"note: {name} = {size:,} does not fit the {available:,} available here; "
                  f"using {available:,}")
            size = available
        return size


def size_policy(device: torch.device | str) -> SizePolicy:
    """The size policy for ``device``: its default scale, unless ``COURSE_SCALE`` overrides it.

    Raises:
        ValueError: ``COURSE_SCALE`` is set to something that is not a number in (0, 64].
    """
    kind = torch.device(device).type
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        return SizePolicy(_parse_scale(text), kind, ENV_VAR)
    return SizePolicy(DEFAULT_SCALE.get(kind, 1.0), kind, "default")
