"""Small JSON result files that let later notebooks compare against earlier ones.

Notebook 00 records the baseline (time-to-accuracy, final accuracy) with the hardware it ran
on; notebooks 01-13 load it to compare their tricks against it on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from course_utils.hardware import cpu_name

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _path(name: str, folder: str | Path) -> Path:
    if not _NAME.fullmatch(name):  # match() would accept a trailing newline ("$")
        raise ValueError(f"result name {name!r} may use only letters, digits, '_' and '-'")
    return Path(folder) / f"{name}.json"


def save_results(name: str, values: dict[str, Any], *, device: torch.device | str,
                 folder: str | Path = "results") -> Path:
    """Write ``values`` to ``folder/name.json`` with the device, torch version and date."""
    record = {
        "name": name,
        "values": values,
        "device": str(device),
        "machine": f"{platform.system()} {platform.machine()}, {cpu_name()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path = _path(name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_results(name: str, *, folder: str | Path = "results") -> dict[str, Any]:
    """Read what :func:`save_results` wrote (the whole record, with ``record["values"]``).

    Raises:
        FileNotFoundError: with the notebook to run first.
    """
    path = _path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the notebook that records "
                                f"{name!r} first (the baseline comes from notebook 00)")
    return json.loads(path.read_text(encoding="utf-8"))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of per-seed results; the std of one value is 0.

    Every comparison in the course reports this over its seeds. Raises ValueError for no values.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value, got none")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.mean(values), statistics.stdev(values)


def format_mean_std(values: Sequence[float], *, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """``"mean ± std"`` of ``values`` times ``scale`` (100 for percentages), e.g. ``"84.9 ± 0.8 %"``."""
    if not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}")
    mean, std = mean_std(values)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}{unit}"

