"""``benchmarks/time_to_accuracy.py --check``: re-runs the record's last row, judges it, logs the sitting.

On tiny synthetic data with random labels (no target is reached, so only the final accuracy is
judged): on the same machine a re-run repeats the record's accuracies exactly and reproduces; a
record that says otherwise is not reproduced; a record made with another recipe is refused.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from course_utils.speedrun import SpeedrunData, stack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "time_to_accuracy.py"
    spec = importlib.util.spec_from_file_location("time_to_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(576, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (576,), generator=generator)
    return SpeedrunData(x[:512], y[:512], x[512:], y[512:], (0.5,), (0.29,))


def record(bench, rows, data, path):
    """The record's last row, two seeds, as ``--rows last`` writes it."""
    bench.run_rows(rows[-1:], data, [0, 1], torch.device("cpu"), path, "synthetic", "stack",
                   first=len(rows) - 1)


def test_check_reproduces_its_own_record_and_logs_the_sitting(bench, data, tmp_path, capsys):
    rows = stack(epochs=4)
    path = tmp_path / "time_to_accuracy_cpu.json"
    record(bench, rows, data, path)
    before = path.read_text()

    assert bench.check_row(rows[-1], data, torch.device("cpu"), path, "synthetic") == 0
    out = capsys.readouterr().out
    assert "identical to the record's, seed by seed" in out and "verdict: reproduces" in out
    assert path.read_text() == before  # the record is left alone
    sitting = json.loads((tmp_path / "time_to_accuracy_cpu_checks.json").read_text())["sittings"][-1]
    assert sitting["reproduces"] and sitting["identical_accuracy"] and sitting["row"] == rows[-1].name
    assert [c["metric"] for c in sitting["checks"]] == ["final test accuracy"]  # no target reached


def test_check_fails_against_a_record_it_does_not_reproduce(bench, data, tmp_path, capsys):
    rows = stack(epochs=4)
    path = tmp_path / "time_to_accuracy_cpu.json"
    record(bench, rows, data, path)
    stored = json.loads(path.read_text())
    row = stored["rows"][rows[-1].name]
    row["final_acc"] = [a + 0.5 for a in row["final_acc"]]  # a record 50 points better than the re-run
    path.write_text(json.dumps(stored))
    assert bench.check_row(rows[-1], data, torch.device("cpu"), path, "synthetic") == 1
    assert "does NOT reproduce" in capsys.readouterr().out
    log = json.loads((tmp_path / "time_to_accuracy_cpu_checks.json").read_text())
    assert not log["sittings"][-1]["reproduces"]

    with pytest.raises(SystemExit, match="the stack changed since the record was made"):
        bench.check_row(stack(epochs=3)[-1], data, torch.device("cpu"), path, "synthetic")
    with pytest.raises(SystemExit, match="make the record first"):
        bench.check_row(rows[-1], data, torch.device("cpu"), tmp_path / "missing.json", "synthetic")


def test_cifar10_without_the_data_stops_with_a_message(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_NO_SYSTEM_DATA", "1")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="cifar10 is not available on this machine"):
        bench.main(["--dataset", "cifar10", "--rows", "last"])


def test_the_cifar10_row_records_and_checks_on_data_of_its_shape(bench, tmp_path, capsys):
    from course_utils.speedrun import CIFAR10_TARGETS, cifar10_recipe

    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(96, 3, 32, 32, generator=generator), torch.randint(0, 10, (96,), generator=generator)
    data = SpeedrunData(x[:64], y[:64], x[64:], y[64:], (0.5,) * 3, (0.29,) * 3)
    recipe = cifar10_recipe("cpu").but(width=4, batch_size=16, epochs=1)
    path = tmp_path / "time_to_accuracy_cifar10_cpu.json"
    bench.run_rows([recipe], data, [0, 1], torch.device("cpu"), path, "synthetic", "stack",
                   targets=CIFAR10_TARGETS)
    assert json.loads(path.read_text())["targets"] == [0.90, 0.93, 0.94]
    assert bench.check_row(recipe, data, torch.device("cpu"), path, "synthetic",
                                targets=CIFAR10_TARGETS) == 0
    assert "verdict: reproduces" in capsys.readouterr().out
