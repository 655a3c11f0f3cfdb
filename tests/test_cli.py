"""The command line: ``python -m course_utils doctor`` and ``... data`` (never runs apt-get)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import course_utils.__main__ as cli
import course_utils.datasets as ds


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    """No test may start a process (apt-get, sudo); a call fails the test."""
    def forbidden(*args, **kwargs):
        pytest.fail(f"subprocess.run was called: {args}")

    monkeypatch.setattr(cli.subprocess, "run", forbidden)


@pytest.fixture
def no_data(monkeypatch):
    """No data on disk (no system copy either, whatever the machine) and a download that fails."""
    for name in ("fashion_mnist", "mnist", "cifar10"):
        monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(ds.SPECS[name], system_dirs=()))
    calls = []

    def download(spec):
        calls.append(spec.name)
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(ds, "_download", download)
    return calls


def write_mnist(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 3)):
        head = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
        pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + pixels))
        head = (0x0801).to_bytes(4, "big") + n.to_bytes(4, "big")
        labels = rng.integers(0, 10, n, dtype=np.uint8).tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(head + labels))


def test_doctor_passes_here_and_prints_the_environment(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "All required packages work." in out
    assert "PROBLEMS" not in out
    for row in ("python", "torch", "torchvision", "device", "data"):
        assert any(line.startswith(row) for line in out.splitlines()), row


def test_doctor_fails_naming_a_missing_module(monkeypatch, capsys):
    monkeypatch.setattr(cli, "REQUIRED", (*cli.REQUIRED, "course_no_such_module_xyz"))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS" in out
    assert "course_no_such_module_xyz: cannot be imported (ModuleNotFoundError" in out
    assert "All required packages work." not in out


def test_doctor_warns_when_fashion_mnist_is_not_on_disk(no_data, capsys):
    assert cli.main(["doctor"]) == 0  # a warning, not a failure
    assert "WARNING: Fashion-MNIST is not on disk" in capsys.readouterr().out
    assert no_data == []  # doctor never downloads


def test_data_with_synthetic_mnist_in_data_dir(tmp_path, monkeypatch, no_data, capsys):
    write_mnist(tmp_path / "data")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["data", "mnist"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mnist is ready (data_dir ")
    assert str(ds.data_cache_dir()) in out
    assert no_data == []  # found on disk: no download attempted
    assert sorted(p.name for p in (ds.data_cache_dir() / "MNIST" / "raw").iterdir()) == sorted(
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_data_without_any_source_fails_with_three_ways(monkeypatch, no_data, capsys, name):
    monkeypatch.setenv("COURSE_NO_APT", "1")
    monkeypatch.setattr(cli.shutil, "which", lambda cmd: pytest.fail(f"looked for {cmd}"))
    assert cli.main(["data", name]) == 1
    out = capsys.readouterr().out
    assert f"ERROR: could not make {name} available. Three ways to get it:" in out
    assert "1. on Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist`" in out
    assert "2. with internet: `make data`" in out
    assert "3. copy the files in torchvision's layout" in out and "COURSE_DATA_DIR" in out
    assert "download: failed (OSError" in out  # the reason is shown
    assert no_data == [name]  # the download was tried once, after the disk
    if name == "fashion_mnist":
        assert "Not using apt" in out


def test_data_tries_apt_install_then_update_when_permitted(monkeypatch, no_data, capsys):
    """The apt path with every process faked: install fails, update, install fails again."""
    commands = []

    def fake_run(command, **kwargs):
        commands.append(list(command))
        return type("Done", (), {"returncode": 1})()

    monkeypatch.delenv("COURSE_NO_APT", raising=False)
    monkeypatch.setattr(cli.shutil, "which", lambda cmd: f"/usr/bin/{cmd}")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    assert cli.main(["data", "fashion_mnist"]) == 1
    install = ["apt-get", "install", "-y", "--no-install-recommends", "dataset-fashion-mnist"]
    assert commands == [install, ["apt-get", "update"], install]
    assert "$ apt-get install -y --no-install-recommends dataset-fashion-mnist" in capsys.readouterr().out


def test_data_rejects_unknown_and_fallback_names(capsys):
    for argv in (["data", "imagenet"], ["data", "digits"], []):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err


# --- doctor and data say and do what get_dataset does (issue 11) --------------------------------


def idx(array: np.ndarray) -> bytes:
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return (0x0800 | array.ndim).to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


@pytest.fixture
def synthetic_fashion(tmp_path, monkeypatch, no_data):
    """Synthetic files published as Fashion-MNIST (their md5s), in a COURSE_DATA_DIR."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 6),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3)}
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        (raw / f"{name}.gz").write_bytes(gzip.compress(idx(array)))
    md5 = {name: hashlib.md5(idx(array)).hexdigest() for name, array in arrays.items()}
    spec = dataclasses.replace(ds.SPECS["fashion_mnist"], md5=md5, counts={}, system_dirs=())
    monkeypatch.setitem(ds.SPECS, "fashion_mnist", spec)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_NO_APT", "1")
    return raw


def test_doctor_and_data_find_and_repair_a_damaged_cache(synthetic_fashion, monkeypatch, no_data, capsys):
    assert cli.main(["data"]) == 0
    cached = ds.data_cache_dir() / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    good = cached.read_bytes()
    cached.write_bytes(b"")  # what a SIGKILL during an extraction leaves
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    capsys.readouterr()

    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"loads Fashion-MNIST from COURSE_DATA_DIR {synthetic_fashion}" in out
    assert "damaged copy" in out and "has 0 bytes" in out and "python -m course_utils data` repairs it" in out

    assert cli.main(["data"]) == 0  # repaired from COURSE_DATA_DIR: no apt, no download
    out = capsys.readouterr().out
    assert "fashion_mnist is ready (data_dir" in out and "apt" not in out
    assert cached.read_bytes() == good and no_data == []


def test_doctor_warns_when_the_only_copy_is_damaged(synthetic_fashion, monkeypatch, no_data, capsys):
    assert cli.main(["data"]) == 0
    monkeypatch.delenv("COURSE_DATA_DIR")
    (ds.data_cache_dir() / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"\x00" * 11)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: Fashion-MNIST is not usable on disk (the course cache" in out
    assert "COURSE_OFFLINE is set, so notebooks fall back to scikit-learn's digits" in out


def test_data_cifar10_never_runs_code_from_a_batch_file(tmp_path, monkeypatch, no_data, capsys):
    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(tmp_path / "pwned"),)

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": Payload(), "labels": [0]}))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["data", "cifar10"]) == 1
    assert not (tmp_path / "pwned").exists()
    assert "is not allowed in a CIFAR-10 batch" in capsys.readouterr().out
