"""Small JSON result files that let later notebooks compare against earlier ones.

Notebook 00 records the baseline (time-to-accuracy, final accuracy) with the hardware it ran
on; later notebooks load it to compare their tricks against it on the same machine. Every file
is written atomically (a temporary file in the same folder, flushed to disk, then renamed over
the old one), so a crash, a full disk or two processes saving at once never leave a half-written
file: a reader sees the old record or the new one, whole.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from course_utils.files import atomic_write_text
from course_utils.hardware import cpu_name

__all__ = ["atomic_write_text", "format_mean_std", "load_results", "mean_std", "read_json",
           "save_results"]

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _path(name: str, folder: str | Path) -> Path:
    if not isinstance(name, str) or not _NAME.fullmatch(name):  # match() accepts a trailing "\n"
        raise ValueError(f"result name {name!r} may use only letters, digits, '_' and '-'")
    return Path(folder) / f"{name}.json"


def read_json(path: str | Path, *, regenerate: str) -> Any:
    """Read a JSON file, or raise a ValueError naming the file and how to regenerate it.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not valid UTF-8 JSON (truncated, overwritten, binary).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); delete it and "
                         f"{regenerate}") from err


def save_results(name: str, values: dict[str, Any], *, device: torch.device | str,
                 folder: str | Path = "results") -> Path:
    """Write ``values`` to ``folder/name.json`` with the device, torch version and date, atomically.

    Raises:
        ValueError: a bad ``name``, or ``values`` holds something JSON cannot store (NaN, inf,
            tensors, objects): the old file is then left untouched.
    """
    record = {
        "name": name,
        "values": values,
        "device": str(device),
        "machine": f"{platform.system()} {platform.machine()}, {cpu_name()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path = _path(name, folder)
    try:
        text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot save results {name!r}: {err} (store plain numbers, strings, "
                         "lists and dicts; convert tensors with .tolist(), and NaN/inf to None)") from err
    return atomic_write_text(path, text)


def load_results(name: str, *, folder: str | Path = "results") -> dict[str, Any]:
    """Read what :func:`save_results` wrote (the whole record, with ``record["values"]``).

    Raises:
        FileNotFoundError: with the notebook to run first.
        ValueError: the file is damaged, naming it and how to regenerate it.
    """
    path = _path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the notebook that records "
                                f"{name!r} first (the baseline comes from notebook 00)")
    regenerate = f"re-run the notebook that records {name!r} (the baseline comes from notebook 00)"
    record = read_json(path, regenerate=regenerate)
    if not isinstance(record, dict) or "values" not in record:
        raise ValueError(f"{path} is not a course results file (no 'values'); delete it and "
                         f"{regenerate}")
    return record


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of per-seed results; the std of one value is 0.

    Every comparison in the course reports this over its seeds.

    Raises:
        ValueError: no values, or a NaN/inf among them (a diverged run: report it separately).
    """
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"mean_std needs numbers, got {values!r}") from err
    if not values:
        raise ValueError("mean_std needs at least one value, got none")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"mean_std got non-finite values {values}: a run diverged; report it "
                         "separately instead of averaging it")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.mean(values), statistics.stdev(values)


def format_mean_std(values: Sequence[float], *, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """``"mean ± std"`` of ``values`` times ``scale`` (100 for percentages), e.g. ``"84.9 ± 0.8 %"``."""
    if not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}")
    mean, std = mean_std(values)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}{unit}"
