"""Small JSON result files (course_utils.results)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from course_utils.results import format_mean_std, load_results, mean_std, save_results


def test_round_trip_with_metadata(tmp_path):
    values = {"time_to_accuracy_s": 12.5, "final_accuracy": 0.91, "epochs": [1, 2, 3], "ok": True}
    path = save_results("baseline", values, device=torch.device("cpu"), folder=tmp_path / "results")
    assert path == tmp_path / "results" / "baseline.json" and path.is_file()
    record = load_results("baseline", folder=tmp_path / "results")
    assert record["values"] == values
    assert record["name"] == "baseline" and record["device"] == "cpu"
    assert record["torch"] == torch.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", record["date"])
    assert record["machine"]
    assert json.loads(path.read_text(encoding="utf-8")) == record  # plain JSON on disk


def test_save_overwrites_and_accepts_string_folder(tmp_path):
    save_results("run-1", {"a": 1}, device="cuda:0", folder=str(tmp_path))
    save_results("run-1", {"a": 2}, device="cpu", folder=str(tmp_path))
    record = load_results("run-1", folder=str(tmp_path))
    assert record["values"] == {"a": 2} and record["device"] == "cpu"


def test_default_folder_is_results_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_results("nb00_baseline", {"x": 1}, device="cpu")
    assert (tmp_path / "results" / "nb00_baseline.json").is_file()
    assert load_results("nb00_baseline")["values"] == {"x": 1}


@pytest.mark.parametrize("name", ["", "../escape", "a b", "a/b", "base.json", "name\n", "é"])
def test_bad_names_raise(tmp_path, name):
    with pytest.raises(ValueError, match="may use only letters, digits"):
        save_results(name, {}, device="cpu", folder=tmp_path)
    with pytest.raises(ValueError, match="may use only letters, digits"):
        load_results(name, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_names_notebook_00(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 00") as info:
        load_results("baseline", folder=tmp_path)
    assert str(tmp_path / "baseline.json") in str(info.value)


def test_mean_std_uses_the_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std(torch.tensor([1.0, 3.0])) == (2.0, pytest.approx(2 ** 0.5))


def test_format_mean_std():
    assert format_mean_std([0.849, 0.841, 0.857], scale=100, unit=" %") == "84.9 ± 0.8 %"
    assert format_mean_std([1.0, 2.0, 3.0], digits=3) == "2.000 ± 1.000"


def test_mean_std_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
    with pytest.raises(ValueError, match="digits"):
        format_mean_std([1.0], digits=-1)
