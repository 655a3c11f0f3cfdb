"""Write the book's pages that come from records, never typed: the claims ledger and the instructor page.

``make book`` runs this before ``jupyter-book build``; it writes ``book/ledger.md`` and
``book/instructor.md`` (git-ignored) from ``book/templates/`` and:

- the verdict records ``notebooks/results/verdicts/<notebook>--<device>.json`` written by
  ``course_utils.verdicts.record_verdicts`` (read with ``load_ledger`` and ``ledger_rows``);
- the stored notebooks' own execution metadata (the CPU run times) and their Exercises sections;
- GPU run records ``notebooks/results/runs/<notebook>--cuda.json``, which
  ``python book/generate_pages.py record-run EXECUTED.ipynb --device cuda --hardware NAME`` writes.

Usage: ``python book/generate_pages.py [--notebooks DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from course_utils import checks, sizing, verdicts
from course_utils.results import atomic_write_text, read_json

BOOK = Path(__file__).resolve().parent
NOTEBOOKS = BOOK.parent / "notebooks"
NO_GPU = "no GPU run recorded"


def _cell(text: object) -> str:
    """A Markdown table cell: one line, no pipes."""
    return " ".join(str(text).split()).replace("|", "/")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def book_notebooks(book: Path = BOOK) -> list[str]:
    """The notebooks in the book's table of contents, e.g. ``["00_setup_and_baseline", ...]``."""
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            name = node.get("file", "")
            if isinstance(name, str) and name.startswith("notebooks/"):
                files.append(name.removeprefix("notebooks/").removesuffix(".ipynb"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8")))
    return files


def _link(notebook: str, in_book: Sequence[str]) -> str:
    number = notebook.split("_", 1)[0]
    if notebook in in_book:
        return f"[{number}](notebooks/{notebook}.ipynb)"
    return f"{number} (not in this edition yet)"


# --- the claims ledger -------------------------------------------------------------------------

def ledger_page(results: Path, in_book: Sequence[str]) -> str:
    """The ledger page's Markdown: all claims C1-C25 from the verdict records under ``results``."""
    ledger = verdicts.load_ledger(results)
    rows = verdicts.ledger_rows(ledger)
    table = []
    for row in rows:
        entry = ledger.get(row["claim"], {})
        gpu = row["gpu"]
        if "cuda" in entry and entry["cuda"]["key_number"] != row["key_number"]:
            gpu = f"{gpu}: {entry['cuda']['key_number']}"
        measured = "; ".join(f"{'CPU' if device == 'cpu' else 'GPU'}: {e['hardware']}"
                             f"{'' if device == 'cpu' else ', ' + e['accelerator']}, {e['date']}"
                             for device, e in sorted(entry.items()) if device in ("cpu", "cuda"))
        table.append((row["claim"], row["statement"], _link(row["notebook"], in_book), row["cpu"], gpu,
                      row["key_number"] or "—", measured or "—"))
    records = sorted(p.name for p in verdicts.verdicts_dir(results).glob("*--*.json"))
    cpu = sum(r["cpu"] != "missing" for r in rows)
    gpu = sum(r["gpu"] != NO_GPU for r in rows)
    summary = (f"**{cpu} of {len(rows)} claims have a CPU verdict and {gpu} a GPU verdict**, "
               + (f"from {len(records)} record(s): {', '.join(f'`{r}`' for r in records)}." if records
                  else "because no notebook has recorded its verdicts yet.")
               + " Runs on the fallback data are not shown.")
    details = []
    for claim_id, entry in ledger.items():
        for device, e in sorted(entry.items()):
            if device not in ("cpu", "cuda"):
                continue
            where = "the CPU" if device == "cpu" else "a GPU"
            details.append(f"### {claim_id} on {where}: {e['verdict']}\n\n"
                           + _table(("measured", "result", "verdict"), e["parts"]))
    fill = {"summary": summary, "protocol": verdicts.PROTOCOL,
            "table": _table(("claim", "statement", "notebook", "CPU verdict", "GPU verdict",
                             "key number", "measured on"), table),
            "details": ("## The measured parts\n\n" + "\n\n".join(details)) if details else ""}
    return _fill("ledger.md", fill)


# --- the instructor page -----------------------------------------------------------------------

def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def notebook_runtime(notebook: dict) -> tuple[float, datetime] | None:
    """Seconds from the first cell's ``iopub.execute_input`` to the last ``shell.execute_reply``.

    Returns ``(seconds, start)`` from the metadata nbclient stores, or None if the notebook
    holds no execution timestamps (it was not executed by nbclient / ``make execute``).
    """
    starts, ends = [], []
    for cell in notebook.get("cells", []):
        execution = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in execution:
            starts.append(_timestamp(execution["iopub.execute_input"]))
        if "shell.execute_reply" in execution:
            ends.append(_timestamp(execution["shell.execute_reply"]))
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds(), min(starts)


def _read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def gpu_runs(results: Path) -> dict[str, dict]:
    """GPU run records: notebook name -> ``{"seconds", "date", "hardware", ...}``."""
    runs = {}
    for path in sorted((results / "runs").glob("*--cuda.json")):
        record = read_json(path, regenerate="record the GPU run again (book/generate_pages.py record-run)")
        runs[record["notebook"]] = record
    return runs


def runtime_table(notebooks: Sequence[Path], results: Path, in_book: Sequence[str]) -> str:
    rows, total = [], 0.0
    runs = gpu_runs(results)
    for path in notebooks:
        measured = notebook_runtime(_read_notebook(path))
        record = verdicts.verdicts_dir(results) / f"{path.stem}--cpu.json"
        machine = (", " + read_json(record, regenerate="re-run the notebook")["hardware"]
                   if record.is_file() else "")  # the same run wrote the verdicts
        if measured is None:
            cpu = "not recorded (no execution metadata)"
        else:
            total += measured[0]
            cpu = f"{measured[0]:.0f} s ({measured[1]:%Y-%m-%d}{machine})"
        run = runs.get(path.stem)
        gpu = f"{run['seconds']:.0f} s on {run['hardware']}, {run['date']}" if run else NO_GPU
        rows.append((_link(path.stem, in_book), cpu, gpu))
    rows.append(("**all**", f"**{total / 60:.1f} min**", ""))
    return _table(("notebook", "2-core CPU: the stored run", "GPU"), rows)


@dataclass(frozen=True)
class Exercise:
    notebook: str
    number: str
    title: str
    check: str | None = None
    solution: bool = False


_STUB = re.compile(r'raise NotImplementedError\(\s*["\']your code here')
_CHECK_CALL = re.compile(r"^(check_\w+)\(\s*(\w+)\s*\)\s*$", re.MULTILINE)
_ITEM = re.compile(r"^(\d+)\.\s+(.*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)")


def exercises(path: Path) -> list[Exercise]:
    """The numbered items of a notebook's Exercises section, each with its check and solution."""
    found: list[dict] = []
    level = None  # the Exercises heading's level while inside the section
    for cell in _read_notebook(path)["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for line in source.splitlines():
                heading = _HEADING.match(line)
                if heading and level is None and heading[2].strip().lower().startswith("exercises"):
                    level = len(heading[1])
                elif heading and level is not None and len(heading[1]) <= level:
                    level = None
                elif level is not None and (item := _ITEM.match(line)):
                    title = re.match(r"\*\*(.+?)\*\*", item[2])
                    found.append({"number": item[1],
                                  "title": (title[1] if title else item[2][:60]).rstrip(".")})
        elif level is not None and found:
            if "solution" in cell.get("metadata", {}).get("tags", []):
                found[-1]["solution"] = True
            elif _STUB.search(source) and (call := _CHECK_CALL.search(source)):
                found[-1]["check"] = call[1]
    return [Exercise(path.stem, **item) for item in found]


def exercise_table(notebooks: Sequence[Path], in_book: Sequence[str]) -> str:
    rows = []
    for path in notebooks:
        for e in exercises(path):
            checked = f"`{e.check}`" if e.check else "open question"
            solution = ("hidden cell after the exercise" if e.solution
                        else "not yet written" if e.check else "—")
            rows.append((_link(e.notebook, in_book), e.number, e.title, checked, solution))
    checked = sum(1 for r in rows if r[3] != "open question")
    return (f"{len(rows)} exercises, {checked} of them checked automatically.\n\n"
            + _table(("notebook", "#", "exercise", "checked by", "solution"), rows))


def checks_list() -> str:
    lines = []
    for name in checks.__all__:
        if name.startswith("check_"):
            doc = (getattr(checks, name).__doc__ or "").strip().splitlines()[0]
            lines.append(f"- `{name}`: {doc}")
    return "The checks, from `course_utils.checks`:\n\n" + "\n".join(lines)


def sizing_text() -> str:
    defaults = ", ".join(f"{scale:g} on {device.upper() if device != 'cuda' else 'a CUDA GPU'}"
                         for device, scale in sizing.DEFAULT_SCALE.items())
    return (f"Every experiment's size comes from `course_utils.sizing`: a scale of {defaults} "
            f"(scale 1 reproduces the stored outputs). Set `{sizing.ENV_VAR}` for the whole class to "
            f"change it: `{sizing.ENV_VAR}=0.5` for slow laptops, `{sizing.ENV_VAR}=4` to run the GPU "
            f"sizes anywhere (at most {sizing.MAX_SCALE:g}). Sizes are clamped to the data available, "
            "with a one-line notice. A smaller scale shrinks the data-sized parts of the experiments, "
            "not the budgets a claim needs (five seeds, notebook 02's 50 epochs), so 0.5 saves about a "
            "quarter of the time, not half (the README has the measurement); CI runs every notebook at "
            "0.5 and at 4 on the fallback data.")


def instructor_page(notebooks: Sequence[Path], results: Path, in_book: Sequence[str]) -> str:
    """The instructor page's Markdown, from the stored notebooks and the run records."""
    return _fill("instructor.md", {
        "runtimes": runtime_table(notebooks, results, in_book),
        "exercises": exercise_table(notebooks, in_book),
        "checks": checks_list(),
        "sizing": sizing_text(),
    })


def _fill(template: str, values: dict[str, str]) -> str:
    text = (BOOK / "templates" / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"template {template} has an unfilled placeholder: {re.findall(r'{{.*?}}', text)}")
    return text.rstrip() + "\n"


def record_run(executed: Path, *, device: str, hardware: str, results: Path) -> Path:
    """Record how long an executed copy of a notebook took (e.g. on a GPU) for the instructor page."""
    measured = notebook_runtime(_read_notebook(executed))
    if measured is None:
        raise ValueError(f"{executed} holds no execution timestamps: execute it with nbclient "
                         "(jupyter nbconvert --to notebook --execute) first")
    notebook = re.sub(r"\.nbconvert$", "", executed.stem)
    record = {"notebook": notebook, "device": device, "hardware": hardware,
              "seconds": round(measured[0], 1), "date": f"{measured[1]:%Y-%m-%d}"}
    path = results / "runs" / f"{notebook}--{device}.json"
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS)
    parser.add_argument("--out", type=Path, default=BOOK)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("record-run", help="record the run time of an executed notebook")
    run.add_argument("executed", type=Path)
    run.add_argument("--device", default="cuda")
    run.add_argument("--hardware", required=True)
    args = parser.parse_args(argv)
    results = args.notebooks / "results"
    if args.command == "record-run":
        path = record_run(args.executed, device=args.device, hardware=args.hardware, results=results)
        print(f"wrote {path}")
        return 0
    in_book = book_notebooks()
    notebooks = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
    for name, text in (("ledger.md", ledger_page(results, in_book)),
                       ("instructor.md", instructor_page(notebooks, results, in_book))):
        atomic_write_text(args.out / name, text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
