"""``import course_utils`` stays cheap: no torchvision, matplotlib, ipywidgets, sklearn or tqdm.auto.

Checked in a fresh interpreter, against what ``import torch`` alone already loads (torch itself
imports plain ``tqdm``).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torchvision", "matplotlib", "ipywidgets", "sklearn")
SUBMODULES = ("hardware", "data", "datasets", "models", "train", "checkpoint", "bench", "checks", "results",
              "schedules", "lr_finder", "pipeline", "batching", "optim", "surfaces",
              "distributed", "precision", "augment", "metrics", "imbalance", "transfer",
              "layers", "regularization", "tuning", "procedure", "curves", "studies", "selection",
              "batch_transforms")

SCRIPT = f"""
import importlib, json, sys
import torch
baseline = set(sys.modules)
import course_utils
for name in {SUBMODULES!r}:
    importlib.import_module("course_utils." + name)
after_package = set(sys.modules)
import course_utils.plots  # the leaf that does import matplotlib: shows the check can see it
print(json.dumps({{"baseline": sorted(baseline), "package": sorted(after_package),
                  "plots": sorted(set(sys.modules))}}))
"""


def top_level(names) -> set[str]:
    return {name.partition(".")[0] for name in names}


def test_import_course_utils_does_not_import_heavy_packages():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    baseline, package = set(modules["baseline"]), set(modules["package"])

    assert {f"course_utils.{name}" for name in SUBMODULES} <= package
    new = top_level(package - baseline)
    assert not new & set(HEAVY), sorted(new & set(HEAVY))
    assert "tqdm.auto" not in package
    assert "matplotlib" in top_level(set(modules["plots"]) - baseline)
