"""Small JSON result files that let later notebooks compare against earlier ones.

Notebook 00 records the baseline (time-to-accuracy, final accuracy) with the hardware it ran
on; notebooks 01-13 load it to compare their tricks against it on the same machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
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
