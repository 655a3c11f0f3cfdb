"""Move nbval's in-source markers (``# NBVAL_IGNORE_OUTPUT`` ...) into cell-metadata tags.

Readers of the book then see clean code; nbval reads the tags (``nbval-ignore-output``,
``nbval-skip``, ``raises-exception``). Run once over notebooks/ after pasting in old cells:
``python scripts/nbtags.py notebooks/*.ipynb``. Only the marker lines and tags change; outputs
are kept as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARKERS = {"# NBVAL_IGNORE_OUTPUT": "nbval-ignore-output", "# NBVAL_SKIP": "nbval-skip",
           "# NBVAL_RAISES_EXCEPTION": "raises-exception", "# NBVAL_CHECK_OUTPUT": "nbval-check-output"}


def convert(path: Path) -> int:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    moved = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).split("\n")
        kept = []
        for line in lines:
            tag = MARKERS.get(line.strip())
            if tag is None:
                kept.append(line)
                continue
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if tag not in tags:
                tags.append(tag)
            moved += 1
        if len(kept) != len(lines):
            text = "\n".join(kept)
            cell["source"] = [line + "\n" for line in text.split("\n")[:-1]] + [text.split("\n")[-1]]
            cell["source"] = [s for s in cell["source"] if s != ""]
    if moved:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return moved


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {convert(Path(name))} marker(s) moved to tags")
