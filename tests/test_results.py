"""Small JSON result files (course_utils.results)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import re
import time

import pytest
import torch

from course_utils import files
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


# --- atomic writes, damaged files, bad numbers (issue 11) ---------------------------------------


def _writer(folder: str, writer: int, rounds: int) -> None:
    for i in range(rounds):
        save_results("shared", {"writer": writer, "round": i, "payload": [writer] * 5000},
                     device="cpu", folder=folder)


def test_two_processes_saving_the_same_name_never_leave_a_broken_file(tmp_path):
    """Readers racing two writers always see one whole record, never a mix or a fragment."""
    save_results("shared", {"writer": -1, "round": -1, "payload": []}, device="cpu", folder=tmp_path)
    ctx = multiprocessing.get_context("fork")  # torch is already imported: no second start-up
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), w, 60)) for w in (0, 1)]
    for process in writers:
        process.start()
    reads = 0
    while any(p.is_alive() for p in writers) or reads < 20:
        values = load_results("shared", folder=tmp_path)["values"]  # never a decode error
        assert values["payload"] == [values["writer"]] * len(values["payload"])
        reads += 1
    for process in writers:
        process.join()
        assert process.exitcode == 0
    assert load_results("shared", folder=tmp_path)["values"]["round"] == 59
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary file left


def test_a_failure_mid_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = save_results("baseline", {"acc": 0.9}, device="cpu", folder=tmp_path)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)  # after the new bytes were written
    with pytest.raises(OSError, match="No space"):
        save_results("baseline", {"acc": 0.1, "big": list(range(1000))}, device="cpu", folder=tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]


@pytest.mark.parametrize("content", [b'{"name": "baseline", "values": {"acc": 0.', b"\xff\xfe\x00binary",
                                     b"", b"[1, 2]"])
def test_a_damaged_file_names_itself_and_how_to_regenerate_it(tmp_path, content):
    (tmp_path / "baseline.json").write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_results("baseline", folder=tmp_path)
    assert str(tmp_path / "baseline.json") in str(info.value)
    assert "notebook 00" in str(info.value) and "re-run" in str(info.value)


@pytest.mark.parametrize("values", [{"acc": float("nan")}, {"acc": float("inf")},
                                    {"acc": torch.tensor(0.5)}, {"acc": object()}])
def test_values_json_cannot_store_are_refused_and_the_old_file_kept(tmp_path, values):
    path = save_results("baseline", {"acc": 0.9}, device="cpu", folder=tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot save results 'baseline'"):
        save_results("baseline", values, device="cpu", folder=tmp_path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]


def test_stale_temporary_files_are_removed_on_the_next_write_live_ones_kept(tmp_path):
    stale = tmp_path / ".baseline.json.k1ll3d00.tmp"  # left by a writer killed mid-write
    live = tmp_path / ".baseline.json.wr1t1ng0.tmp"  # a concurrent writer's, still being written
    other = tmp_path / ".notes.txt.tmp"  # not one of ours: never touched
    for path in (stale, live, other):
        path.write_text("partial", encoding="utf-8")
    old = time.time() - 2 * files.STALE_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_results("baseline", {"acc": 0.9}, device="cpu", folder=tmp_path)
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert load_results("baseline", folder=tmp_path)["values"] == {"acc": 0.9}


@pytest.mark.parametrize("values", [[1.0, float("nan")], [float("inf"), 1.0], [float("-inf")]])
def test_mean_std_refuses_non_finite_values(values):
    with pytest.raises(ValueError, match="diverged"):
        mean_std(values)
    with pytest.raises(ValueError, match="diverged"):
        format_mean_std(values)


def test_mean_std_refuses_non_numbers():
    with pytest.raises(ValueError, match="needs numbers"):
        mean_std(["a", 1.0])
