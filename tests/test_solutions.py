"""Exercise solutions: one source, in the notebooks, run through the same checks as the students' code.

Each exercise cell that calls a ``check_*`` on a student stub (a function that raises
``NotImplementedError("your code here")``) is followed by a solution cell tagged ``solution`` and
``hide-cell`` (behind a toggle in the book), collapsed in JupyterLab (``jupyter.source_hidden``),
self-contained, defining the function under the exercise's name and ending with the same check
call, whose stored output starts with "PASSED". These tests find the cells in notebooks/*.ipynb,
so there is no second copy of any solution.

While the notebooks are still getting their solution cells, test_every_checked_exercise_has_a_solution
and test_as_many_solutions_as_checked_exercises FAIL on purpose, naming what is missing.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STUB = re.compile(r'raise NotImplementedError\(\s*["\']your code here')
CHECK_CALL = re.compile(r"^(check_\w+)\(\s*(\w+)\s*\)\s*$", re.MULTILINE)


def _cells():
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            yield path, index, cell, cells


def _source(cell) -> str:
    return "".join(cell["source"])


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercises():
    """(notebook, cell index, check name, function name) of every checked exercise on a stub."""
    found = []
    for path, index, cell, _ in _cells():
        source = _source(cell)
        if cell["cell_type"] == "code" and "solution" not in _tags(cell) and STUB.search(source):
            call = CHECK_CALL.search(source)
            if call:
                found.append((path.name, index, call[1], call[2]))
    return found


def solutions():
    """(notebook, cell index, source) of every cell tagged ``solution``."""
    return [(path.name, index, _source(cell)) for path, index, cell, _ in _cells()
            if cell["cell_type"] == "code" and "solution" in _tags(cell)]


def run_cell(source: str) -> object:
    """Execute a cell in a fresh namespace and return its last expression's value (as Jupyter shows it)."""
    tree = ast.parse(source)
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        raise AssertionError("a solution cell must end with its check_*(...) call")
    last = ast.Expression(tree.body.pop().value)
    namespace: dict[str, object] = {"__name__": "__solution__"}
    exec(compile(tree, "<solution>", "exec"), namespace)  # noqa: S102 - the notebook's own cell
    return eval(compile(last, "<solution>", "eval"), namespace)  # noqa: S307


@pytest.mark.parametrize(("notebook", "index", "source"), solutions(),
                         ids=[f"{nb}:{i}" for nb, i, _ in solutions()])
def test_solution_passes_its_check(notebook, index, source, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)  # where the notebook runs
    result = run_cell(source)
    assert repr(result).startswith("PASSED"), f"{notebook} cell {index}: {result!r}"
    assert bool(result)


@pytest.mark.parametrize(("notebook", "index", "check", "function"), exercises(),
                         ids=[f"{nb}:{fn}" for nb, _, _, fn in exercises()])
def test_every_checked_exercise_has_a_solution(notebook, index, check, function):
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    after = cells[index + 1] if index + 1 < len(cells) else None
    where = f"{notebook}: the cell after exercise `{function}` (cell {index})"
    assert after is not None and after["cell_type"] == "code" and "solution" in _tags(after), \
        f"{where} must be its solution cell, tagged `solution` (expected to fail until it is written)"
    assert "hide-cell" in _tags(after), f"{where}: tag it `hide-cell` so the book hides it behind a toggle"
    assert after.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True, \
        f'{where}: set metadata "jupyter": {{"source_hidden": true}} so JupyterLab shows it collapsed'
    source = _source(after)
    assert not STUB.search(source), f"{where} still raises NotImplementedError"
    assert re.search(rf"^def {function}\(", source, re.MULTILINE), f"{where} must define `{function}`"
    last = source.rstrip().splitlines()[-1].strip()
    assert last == f"{check}({function})", f"{where} must end with `{check}({function})`, not {last!r}"
    assert re.search(r"^from course_utils[\w.]* import .*\b" + check + r"\b", source, re.MULTILINE), \
        f"{where} must import {check} itself (it runs on its own)"
    texts = ["".join(o.get("data", {}).get("text/plain", o.get("text", "")))
             for o in after.get("outputs", [])]
    assert texts and texts[-1].startswith("PASSED"), \
        f"{where}: its stored output must start with PASSED (execute the notebook), got {texts}"


def test_as_many_solutions_as_checked_exercises():
    """Fails until every checked exercise has its solution cell (and no solution is left without one)."""
    checked, solved = exercises(), solutions()
    assert checked, "no checked exercises found: the stub or check pattern changed"
    assert len(solved) == len(checked), (
        f"{len(checked)} checked exercises but {len(solved)} solution cells; without a solution: "
        + ", ".join(f"{nb}:{fn}" for nb, i, _, fn in checked
                    if not any(snb == nb and si == i + 1 for snb, si, _ in solved)))
