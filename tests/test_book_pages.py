"""The book's generated pages (book/generate_pages.py): the claims ledger and the instructor page
come from records and notebooks, never from typed numbers."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from course_utils import hardware
from course_utils.verdicts import CLAIMS, check, judge, record_verdicts

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("generate_pages", ROOT / "book" / "generate_pages.py")
pages = importlib.util.module_from_spec(spec)
sys.modules["generate_pages"] = pages  # dataclasses look their module up there
spec.loader.exec_module(pages)


def cell(kind, source, *, tags=(), execution=None):
    metadata = {"tags": list(tags)} if tags else {}
    if execution:
        metadata["execution"] = execution
    out = {"cell_type": kind, "metadata": metadata, "source": source}
    if kind == "code":
        out.update(outputs=[], execution_count=None)
    return out


def write_notebook(path, cells):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def course(tmp_path, monkeypatch):
    """Two notebooks (one executed, one not) and verdict records for C1 on a CPU, a GPU and fallback data."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    executed = {"iopub.execute_input": "2026-11-25T10:00:00.000000Z",
                "shell.execute_reply": "2026-11-25T10:00:01.000000Z"}
    last = {"iopub.execute_input": "2026-11-25T10:00:30.000000Z",
            "shell.execute_reply": "2026-11-25T10:00:42.400000Z"}
    write_notebook(notebooks / "01_data_normalization.ipynb", [
        cell("markdown", "# 01 · Normalization\n\n## Setup"),
        cell("code", "import torch", execution=executed),
        cell("markdown", "## Verdict\n\n| a | b |\n|---|---|\n\n## Exercises\n\n"
                         "1. **Streaming statistics.** Write `my_mean_std`."),
        cell("code", 'def my_mean_std(dataset, batch_size):\n    raise NotImplementedError("your code here")'
                     "\n\n\ncheck_mean_std(my_mean_std)", execution=last),
        cell("code", "def my_mean_std(dataset, batch_size):\n    ...\n\ncheck_mean_std(my_mean_std)",
             tags=("solution", "hide-cell")),
        cell("markdown", "2. **Centring or scaling?** Add two arms.\n3. **Leakage.** Why?"),
        cell("markdown", "## Summary\n\n1. not an exercise"),
    ])
    write_notebook(notebooks / "02_data_augmentation.ipynb", [
        cell("markdown", "## Exercises\n\n1. **Mixup.** Write it."),
        cell("code", 'def my_mixup(x, y, lam, num_classes):\n    raise NotImplementedError("your code here")'
                     "\n\n\ncheck_mixup(my_mixup)"),
    ])
    results = notebooks / "results"
    c1 = judge("C1", check("from scratch equals torch", True, "exact to 1e-6"))
    record_verdicts("01_data_normalization", [c1], device="cpu", data="fashion_mnist (disk)", scale=1.0,
                    hardware="Test CPU (2 logical cores)", folder=results)
    monkeypatch.setattr(hardware, "describe_accelerator", lambda device: "Test GPU, 80 GiB, CUDA 13.0")
    record_verdicts("01_data_normalization", [c1], device="cuda", data="fashion_mnist (disk)", scale=4.0,
                    hardware="Test host", folder=results)
    wrong = judge("C2", check("one batch equals streaming", False, "off by 1e-2"))
    record_verdicts("01_data_normalization", [wrong], device="cpu", data="fallback digits", scale=1.0,
                    folder=results)
    return notebooks


def rows_of(page):
    return {m[1]: m[0] for m in re.finditer(r"^\| (C\d+) \|.*$", page, re.MULTILINE)}


def test_ledger_lists_every_claim_with_its_recorded_verdicts(course):
    page = pages.ledger_page(course / "results", ["01_data_normalization"])
    rows = rows_of(page)
    assert list(rows) == list(CLAIMS)  # C1-C25, in order, nothing typed
    c1 = rows["C1"].split(" | ")
    assert c1[2] == "[01](notebooks/01_data_normalization.ipynb)"
    assert c1[3] == "holds" and c1[4] == "holds"
    assert c1[5] == "exact to 1e-6"
    assert "CPU: Test CPU (2 logical cores)" in c1[6] and "GPU: Test host, Test GPU" in c1[6]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", c1[6])
    c2 = rows["C2"].split(" | ")  # only a fallback-data record: not shown
    assert c2[3] == "missing" and c2[4] == "no GPU run recorded"
    assert "10 (not in this edition yet)" in rows["C21"]
    assert "[02]" not in rows["C3"] and "02 (not in this edition yet)" in rows["C3"]
    assert "**1 of 25 claims have a CPU verdict and 1 a GPU verdict**" in page
    assert "### C1 on the CPU: holds" in page and "{{" not in page


def test_ledger_without_records_shows_everything_missing(tmp_path):
    page = pages.ledger_page(tmp_path / "results", [])
    rows = rows_of(page)
    assert len(rows) == len(CLAIMS)
    assert all(" | missing | no GPU run recorded | " in row for row in rows.values())
    assert "no notebook has recorded its verdicts yet" in page and "The measured parts" not in page


def test_runtime_comes_from_the_execution_metadata(course):
    notebook = json.loads((course / "01_data_normalization.ipynb").read_text())
    seconds, start = pages.notebook_runtime(notebook)
    assert seconds == pytest.approx(42.4) and f"{start:%Y-%m-%d}" == "2026-11-25"
    assert pages.notebook_runtime(json.loads((course / "02_data_augmentation.ipynb").read_text())) is None


def test_instructor_page_times_exercises_and_gpu_runs(course, tmp_path):
    notebooks = sorted(course.glob("*.ipynb"))
    page = pages.instructor_page(notebooks, course / "results", ["01_data_normalization"])
    assert "| [01](notebooks/01_data_normalization.ipynb) | 42 s (2026-11-25, Test CPU (2 logical cores)) " \
           "| no GPU run recorded |" in page
    assert "| 02 (not in this edition yet) | not recorded (no execution metadata) |" in page
    assert "4 exercises, 2 of them checked automatically." in page
    assert "| 1 | Streaming statistics | `check_mean_std` | hidden cell after the exercise |" in page
    assert "| 2 | Centring or scaling? | open question | — |" in page
    assert "| 3 | Leakage | open question | — |" in page
    assert "| 1 | Mixup | `check_mixup` | not yet written |" in page
    assert "not an exercise" not in page
    assert "`check_adam_step`" in page and "COURSE_SCALE" in page and "{{" not in page

    executed = write_notebook(tmp_path / "01_data_normalization.nbconvert.ipynb", [
        cell("code", "x = 1", execution={"iopub.execute_input": "2026-12-01T09:00:00Z",
                                        "shell.execute_reply": "2026-12-01T09:00:07.2Z"})])
    path = pages.record_run(executed, device="cuda", hardware="Test GPU", results=course / "results")
    assert path.name == "01_data_normalization--cuda.json"
    page = pages.instructor_page(notebooks, course / "results", ["01_data_normalization"])
    assert "| 7 s on Test GPU, 2026-12-01 |" in page


def test_record_run_refuses_a_notebook_that_was_not_executed(course, tmp_path):
    with pytest.raises(ValueError, match="no execution timestamps"):
        pages.record_run(course / "02_data_augmentation.ipynb", device="cuda", hardware="x",
                         results=tmp_path)


def test_the_real_course_generates_both_pages(tmp_path):
    assert pages.main(["--out", str(tmp_path)]) == 0
    ledger = (tmp_path / "ledger.md").read_text()
    assert len(rows_of(ledger)) == len(CLAIMS)
    instructor = (tmp_path / "instructor.md").read_text()
    for notebook in pages.book_notebooks():
        assert f"(notebooks/{notebook}.ipynb)" in instructor
    assert "exercises, " in instructor and "{{" not in instructor


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stores_no_widget_state(path):
    """Stored widget state makes pages load require.js and the widget manager from a CDN.

    ``make execute`` drops it and stores none; fails for a notebook not re-executed since.
    """
    assert "widgets" not in json.loads(path.read_text(encoding="utf-8"))["metadata"], \
        f"{path.name} stores widget state in its metadata: re-run it with `make execute`"


def test_every_explorer_cell_is_tagged():
    """The JupyterLab test and the book test find explorers by the tag ``explorer``."""
    for path in NOTEBOOKS:
        for index, c in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            source = "".join(c["source"])
            shows = c["cell_type"] == "code" and re.search(r"^\w+_explorer\(", source, re.MULTILINE)
            tagged = "explorer" in c.get("metadata", {}).get("tags", [])
            assert bool(shows) == tagged, f"{path.name} cell {index}: tag `explorer` iff it shows an explorer"


MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users|check|content|opt|var|mnt)/")


def test_compared_outputs_name_no_machine_path():
    """nbval compares text outputs, so one that prints where this machine keeps its data or cache
    fails on every other machine (CI checks out under a different root). Such cells are tagged
    ``nbval-ignore-output``, or print something that does not depend on the machine."""
    offenders = []
    for path in NOTEBOOKS:
        for index, c in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            tags = c.get("metadata", {}).get("tags", [])
            if c["cell_type"] != "code" or {"nbval-ignore-output", "nbval-skip"} & set(tags):
                continue
            for out in c.get("outputs", []):
                data = out.get("data", {})
                texts = [out.get("text", ""), data.get("text/plain", ""), data.get("text/html", "")]
                found = MACHINE_PATH.search("".join("".join(t) for t in texts))
                if found:
                    offenders.append(f"{path.name} cell {index}: ...{found.group(0)}...")
    assert not offenders, "compared outputs that name a path on this machine:\n" + "\n".join(offenders)
