"""Sphinx extension of the course's book: offline math, no stored widget state.

- MathJax is served from the built site itself: ``make book`` installs the npm package pinned
  in ``book/package-lock.json`` into ``book/node_modules`` (git-ignored) and this extension
  copies it to ``_static/mathjax`` (``mathjax_path`` in ``_config.yml`` points there).
- Widget state stored in a notebook's metadata would make myst-nb load require.js and the
  widget embed manager from a CDN; it is dropped when the notebook is read (the explorers'
  cells carry a static picture for the book instead).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MATHJAX = Path(__file__).resolve().parents[1] / "node_modules" / "mathjax" / "es5"
ENTRY = "tex-mml-chtml.js"  # the component mathjax_path names; the others are not copied


def check_mathjax(app: Sphinx) -> None:
    if not (MATHJAX / ENTRY).is_file():
        raise ExtensionError(f"MathJax is not installed in {MATHJAX.parent}: run `make book`, which runs "
                             "`npm ci --prefix book` first (the book must not load MathJax from a CDN)")
    if app.config.mathjax_path != f"mathjax/{ENTRY}":
        raise ExtensionError(f"mathjax_path must be 'mathjax/{ENTRY}' (served from the book), "
                             f"got {app.config.mathjax_path!r}")


def drop_widget_state(app: Sphinx, docname: str, source: list[str]) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    if notebook.get("metadata", {}).pop("widgets", None) is not None:
        source[0] = json.dumps(notebook)


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.rmtree(target, ignore_errors=True)
    # the other combined components (svg output, speech, full) are never requested
    shutil.copytree(MATHJAX, target, ignore=lambda folder, names: [
        n for n in names if folder == str(MATHJAX) and n.endswith(".js") and n != ENTRY])
    shutil.copy2(MATHJAX.parent / "LICENSE", target / "LICENSE")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", check_mathjax)
    app.connect("source-read", drop_widget_state)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
