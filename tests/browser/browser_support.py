"""What the browser tests share: the chromium to drive, its flags, where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"  # git-ignored; CI keeps them
# What a widget looks like when something shows its repr instead of the widget or its picture.
WIDGET_REPRS = ("VBox(children", "HBox(children", "interactive(children", "Dropdown(", "IntSlider(",
                "FloatSlider(", "FloatLogSlider(", "Image(value", "Loading widget...",
                "Error displaying widget")
