"""Finding, verifying and reading datasets (course_utils.datasets), with tiny synthetic IDX files.

The "mnist" spec has no md5 table, so only the structural IDX checks apply to synthetic files;
"fashion_mnist" also checks the published md5, which synthetic files must fail.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import course_utils.datasets as ds
from course_utils.datasets import DataSource, data_cache_dir, load_raw, locate_dataset

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---------------------------------------------------------------------------------------------
# helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding ``array`` (1 or 3 dimensions)."""
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_idx(n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = True) -> Path:
    """Write the four IDX files into ``folder`` (gzipped like torchvision's raw folder, or not)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return folder


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (itself included) with its type, size, mtime and mode."""
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        entries[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_size,
                                                info.st_mtime_ns, stat.S_IMODE(info.st_mode))
    return entries


@pytest.fixture
def make_read_only():
    """chmod a tree read-only (restored afterwards so tmp_path can be cleaned up).

    Running as root, the kernel ignores these bits, so the tests also compare listings."""
    changed: list[tuple[Path, int]] = []

    def apply(root: Path) -> None:
        for path in sorted(root.rglob("*"), reverse=True) + [root]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            changed.append((path, mode))
            path.chmod(0o555 if path.is_dir() else 0o444)

    yield apply
    for path, mode in reversed(changed):
        path.chmod(mode)


def expected(arrays: dict[str, np.ndarray], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images = torch.from_numpy(arrays[f"{prefix}-images-idx3-ubyte"]).unsqueeze(1)
    labels = torch.from_numpy(arrays[f"{prefix}-labels-idx1-ubyte"]).long()
    return images, labels


def assert_loaded(result, arrays, train: bool) -> None:
    images, labels, _ = result
    want_images, want_labels = expected(arrays, train)
    assert images.dtype == torch.uint8 and images.shape == want_images.shape
    assert labels.dtype == torch.int64
    torch.testing.assert_close(images, want_images, rtol=0, atol=0)
    torch.testing.assert_close(labels, want_labels, rtol=0, atol=0)


def cache_raw(spec_folder: str = "MNIST") -> Path:
    return data_cache_dir() / spec_folder / "raw"


# ---------------------------------------------------------------------------------------------
# resolution order: COURSE_DATA_DIR -> cache -> system -> download


def test_data_dir_is_unpacked_into_cache_and_left_untouched(tmp_path, monkeypatch, make_read_only):
    arrays = synthetic_idx()
    root = tmp_path / "shared_data"
    write_idx(root / "MNIST" / "raw", arrays)
    make_read_only(root)
    before = snapshot(root)
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))

    train = load_raw("mnist", True, download=False)
    test = load_raw("mnist", False, download=False)

    assert_loaded(train, arrays, True)
    assert_loaded(test, arrays, False)
    assert train[2] == f"data_dir {root / 'MNIST' / 'raw'}"
    assert snapshot(root) == before  # nothing created, changed or removed under COURSE_DATA_DIR
    cached = sorted(p.name for p in cache_raw().iterdir())
    assert cached == sorted(IDX_NAMES)  # unpacked, no .gz, no leftover temporary files
    for name in IDX_NAMES:
        path = cache_raw() / name
        assert not path.is_symlink()  # unpacked from .gz, so a real file
        assert path.read_bytes() == idx_bytes(arrays[name])


def test_cache_is_used_on_the_second_call(tmp_path, monkeypatch):
    arrays = synthetic_idx()
    root = tmp_path / "shared_data"
    write_idx(root / "MNIST" / "raw", arrays)
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    load_raw("mnist", True, download=False)
    stamps = {name: (cache_raw() / name).stat().st_mtime_ns for name in IDX_NAMES}
    inodes = {name: (cache_raw() / name).stat().st_ino for name in IDX_NAMES}

    # Same source again: the cached files are reused, not unpacked a second time.
    assert_loaded(load_raw("mnist", True, download=False), arrays, True)
    assert {n: (cache_raw() / n).stat().st_mtime_ns for n in IDX_NAMES} == stamps
    assert {n: (cache_raw() / n).stat().st_ino for n in IDX_NAMES} == inodes

    # Without COURSE_DATA_DIR (and the original gone), the cache alone serves the data.
    monkeypatch.delenv("COURSE_DATA_DIR")
    for path in (root / "MNIST" / "raw").iterdir():
        path.unlink()
    result = load_raw("mnist", False, download=False)
    assert_loaded(result, arrays, False)
    assert result[2] == f"cache {cache_raw()}"
    assert locate_dataset("mnist") == DataSource("mnist", "cache", cache_raw())


def test_unpacked_source_files_are_linked_not_copied(tmp_path, monkeypatch, make_read_only):
    arrays = synthetic_idx()
    root = tmp_path / "unpacked"
    source = write_idx(root / "MNIST" / "raw", arrays, gz=False)
    make_read_only(root)
    before = snapshot(root)
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))

    assert_loaded(load_raw("mnist", True, download=False), arrays, True)

    for name in IDX_NAMES:
        link = cache_raw() / name
        assert link.is_symlink(), f"{name} was copied, not linked"
        assert link.resolve() == (source / name).resolve()
    assert snapshot(root) == before


def test_system_copy_is_used_after_data_dir_and_cache(tmp_path, monkeypatch):
    arrays = synthetic_idx(seed=3)
    system = write_idx(tmp_path / "usr_share" / "mnist", arrays)
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"],
                                                               system_dirs=(str(system),)))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    before = snapshot(system)
    result = load_raw("mnist", True, download=False)
    assert_loaded(result, arrays, True)
    assert result[2] == f"system {system}"
    assert snapshot(system) == before


# ---------------------------------------------------------------------------------------------
# rejecting bad files


def _truncate(data: bytes) -> bytes:
    return data[:-100]


@pytest.mark.parametrize("damage, message", [
    (_truncate, "header promises"),
    (lambda data: b"\x00\x00\x09\x03" + data[4:], "not an unsigned-byte IDX file"),
    (lambda data: data[:10], "header promises"),
])
def test_corrupt_idx_is_rejected_and_the_next_source_used(tmp_path, monkeypatch, damage, message):
    bad, good = synthetic_idx(seed=1), synthetic_idx(seed=2)
    bad_root = tmp_path / "bad"
    bad_raw = write_idx(bad_root / "MNIST" / "raw", bad)
    broken = bad_raw / "train-images-idx3-ubyte.gz"
    broken.write_bytes(gzip.compress(damage(idx_bytes(bad["train-images-idx3-ubyte"]))))
    monkeypatch.setenv("COURSE_DATA_DIR", str(bad_root))

    # Alone, the bad folder gives a clear error naming the file and the problem.
    with pytest.raises(FileNotFoundError) as info:
        load_raw("mnist", True, download=False)
    text = str(info.value)
    assert "data_dir" in text and "unusable" in text
    assert "train-images-idx3-ubyte" in text and message in text
    assert "download: skipped" in text
    # The rejected file did not reach the cache, not even as a temporary file.
    assert not any(p.name.startswith("train-images") or p.name.endswith(".tmp")
                   for p in cache_raw().iterdir())

    # With a good system copy behind it, that one is used instead.
    system = write_idx(tmp_path / "system", good)
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"],
                                                               system_dirs=(str(system),)))
    result = load_raw("mnist", True, download=False)
    assert_loaded(result, good, True)
    assert result[2] == f"system {system}"


@pytest.mark.parametrize("damage", [
    lambda gz: gz[:len(gz) // 2],  # an interrupted copy
    lambda gz: b"not gzip at all" + gz,  # a wrong file with a .gz name
    lambda gz: gz[:20] + bytes(255 - b for b in gz[20:]),  # damaged compressed data
])
def test_damaged_gzip_is_rejected_and_the_next_source_used(tmp_path, monkeypatch, damage):
    """A .gz that cannot be unpacked makes its folder unusable; it is not a crash."""
    bad, good = synthetic_idx(seed=1), synthetic_idx(seed=2)
    bad_raw = write_idx(tmp_path / "bad" / "MNIST" / "raw", bad)
    gz = bad_raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(damage(gz.read_bytes()))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "bad"))

    with pytest.raises(FileNotFoundError, match="unusable") as info:
        load_raw("mnist", True, download=False)
    assert f"{gz} is truncated or damaged" in str(info.value)
    assert list(cache_raw().iterdir()) == []  # no partial file left behind

    system = write_idx(tmp_path / "system", good)
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"],
                                                               system_dirs=(str(system),)))
    assert_loaded(load_raw("mnist", True, download=False), good, True)


def test_labels_and_images_of_different_lengths_are_rejected(tmp_path, monkeypatch):
    arrays = synthetic_idx()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    write_idx(tmp_path / "MNIST" / "raw", arrays)
    with pytest.raises(FileNotFoundError, match="12 images but 11 labels"):
        load_raw("mnist", True, download=False)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_md5_rejects_synthetic_files(tmp_path, monkeypatch, gz):
    system = write_idx(tmp_path / "fake_system", synthetic_idx(), gz=gz)
    spec = ds.SPECS["fashion_mnist"]
    monkeypatch.setitem(ds.SPECS, "fashion_mnist", dataclasses.replace(spec, system_dirs=(str(system),)))
    before = snapshot(system)
    assert locate_dataset("fashion_mnist").kind == "system"  # the files are there...

    with pytest.raises(FileNotFoundError) as info:  # ...but their contents are not the real data
        load_raw("fashion_mnist", True, download=False)
    text = str(info.value)
    assert f"system {system}: unusable" in text and "md5" in text
    assert not (data_cache_dir() / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert not any((data_cache_dir() / "FashionMNIST" / "raw").glob(".*.tmp"))
    assert snapshot(system) == before


def test_the_same_synthetic_files_pass_as_mnist(tmp_path, monkeypatch):
    """Counterpart of the md5 test: the structural checks alone accept these files."""
    arrays = synthetic_idx()
    system = write_idx(tmp_path / "fake_system", arrays)
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"],
                                                               system_dirs=(str(system),)))
    assert_loaded(load_raw("mnist", True, download=False), arrays, True)


# ---------------------------------------------------------------------------------------------
# no data anywhere


def test_no_data_and_offline_raises_listing_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "nothing"))

    def no_download(spec):
        pytest.fail("COURSE_OFFLINE must not try to download")

    monkeypatch.setattr(ds, "_download", no_download)
    with pytest.raises(FileNotFoundError) as info:
        load_raw("mnist", True, download=True)
    text = str(info.value)
    assert f"data_dir {tmp_path / 'nothing' / 'MNIST' / 'raw'}: not there" in text
    assert f"cache {cache_raw()}: not there" in text
    assert "download: skipped (download=False or COURSE_OFFLINE is set)" in text


def test_failed_download_is_reported(monkeypatch):
    calls = []

    def failing_download(spec):
        calls.append(spec.name)
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(ds, "_download", failing_download)
    with pytest.raises(FileNotFoundError, match=r"download: failed \(OSError: Temporary failure"):
        load_raw("mnist", True, download=True)
    assert calls == ["mnist"]
    with pytest.raises(FileNotFoundError, match="download: skipped"):
        load_raw("mnist", True, download=False)
    assert calls == ["mnist"]  # download=False never tries


# ---------------------------------------------------------------------------------------------
# cifar10 (pickled batches, no raw/ folder)


def write_cifar(folder: Path, per_batch: int = 4) -> tuple[np.ndarray, list[int]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        all_data.append(data)
        all_labels += labels
    return np.concatenate(all_data), all_labels


def test_cifar10_from_data_dir(tmp_path, monkeypatch):
    data, labels = write_cifar(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    images, targets, source = load_raw("cifar10", True, download=False)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    torch.testing.assert_close(images, torch.from_numpy(data[:20]).reshape(20, 3, 32, 32))
    assert targets.tolist() == labels[:20]
    assert source == f"data_dir {tmp_path / 'cifar-10-batches-py'}"
    test_images, test_targets, _ = load_raw("cifar10", False, download=False)
    assert test_images.shape == (4, 3, 32, 32) and test_targets.tolist() == labels[20:]
    assert locate_dataset("cifar10") == DataSource("cifar10", "data_dir", tmp_path / "cifar-10-batches-py")


# ---------------------------------------------------------------------------------------------
# locate_dataset


def test_locate_dataset_reports_each_kind_and_writes_nothing(tmp_path, monkeypatch):
    # download: nothing anywhere; the cache folder is not even created.
    nowhere = locate_dataset("mnist")
    assert nowhere == DataSource("mnist", "download", data_cache_dir(), "needs internet")
    assert "needs internet" in nowhere.describe()
    assert not data_cache_dir().exists()

    # system
    system = write_idx(tmp_path / "system", synthetic_idx())
    monkeypatch.setitem(ds.SPECS, "mnist", dataclasses.replace(ds.SPECS["mnist"],
                                                               system_dirs=(str(system),)))
    assert locate_dataset("mnist") == DataSource("mnist", "system", system)
    assert locate_dataset("mnist").describe() == f"mnist: system copy {system}"

    # cache beats system
    write_idx(cache_raw(), synthetic_idx(), gz=False)
    assert locate_dataset("mnist") == DataSource("mnist", "cache", cache_raw())

    # COURSE_DATA_DIR beats both
    root = tmp_path / "data_dir"
    write_idx(root / "MNIST" / "raw", synthetic_idx())
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    found = locate_dataset("mnist")
    assert found == DataSource("mnist", "data_dir", root / "MNIST" / "raw")
    assert found.describe() == f"mnist: COURSE_DATA_DIR {root / 'MNIST' / 'raw'}"

    # A folder missing one of the four files does not count.
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert locate_dataset("mnist").kind == "cache"

    before = {path: snapshot(path) for path in (root, system, data_cache_dir())}
    for name in ("mnist", "fashion_mnist", "cifar10", "digits"):
        locate_dataset(name)
    assert {path: snapshot(path) for path in before} == before


def test_locate_digits_is_built_in():
    assert locate_dataset("digits").kind == "fallback"
    assert locate_dataset("digits").path is None


@pytest.mark.parametrize("function", [locate_dataset, lambda name: load_raw(name, True, download=False)])
def test_unknown_dataset_name_lists_the_choices(function):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as info:
        function("imagenet")
    for name in ("fashion_mnist", "mnist", "cifar10", "digits"):
        assert repr(name) in str(info.value)


# ---------------------------------------------------------------------------------------------
# cache location and digits


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert ds.cache_dir() == Path(os.environ["COURSE_CACHE_DIR"])
    assert data_cache_dir() == ds.cache_dir() / "data"
    monkeypatch.delenv("COURSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.cache_dir() == tmp_path / "xdg" / "train-it-faster"


def test_load_digits_split_is_fixed_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    train_images, train_labels = ds.load_digits(True)
    test_images, test_labels = ds.load_digits(False, size=16)
    assert torch.equal(torch.get_rng_state(), state)
    assert train_images.shape == (1437, 1, 28, 28) and train_images.dtype == torch.uint8
    assert test_images.shape == (360, 1, 16, 16)
    assert set(train_labels.tolist()) == set(range(10))
    assert train_images.max() > 200 and train_images.min() == 0  # scaled to the uint8 range
    again, _ = ds.load_digits(True)
    assert torch.equal(again, train_images)
