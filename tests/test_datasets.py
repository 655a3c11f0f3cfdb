"""Finding, verifying and reading datasets (course_utils.datasets), with tiny synthetic IDX files.

conftest's ``synthetic_specs`` drops the published md5s and counts of "mnist" and "cifar10", so
only the structural checks apply to synthetic files there; "fashion_mnist" keeps its md5s, which
synthetic files must fail. Tests of the md5s and counts restore the published specs.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import os
import pickle
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import course_utils.datasets as ds
from course_utils import datacache, files
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


def test_unpacked_source_files_are_copied_not_linked(tmp_path, monkeypatch, make_read_only):
    """A link would let a later change of the source change what the cache returns."""
    arrays = synthetic_idx()
    root = tmp_path / "unpacked"
    write_idx(root / "MNIST" / "raw", arrays, gz=False)
    make_read_only(root)
    before = snapshot(root)
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))

    assert_loaded(load_raw("mnist", True, download=False), arrays, True)

    for name in IDX_NAMES:
        copy = cache_raw() / name
        assert not copy.is_symlink() and copy.read_bytes() == idx_bytes(arrays[name])
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
                   for p in cache_raw().glob("*"))

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
    assert not any(cache_raw().glob("train-images*")) and not any(cache_raw().glob(".*.tmp"))

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
    found = locate_dataset("fashion_mnist")  # the files are there, but not the real data:
    assert found.kind == "download" and f"the system copy {system} is unusable" in found.note
    assert "md5" in found.note

    with pytest.raises(FileNotFoundError) as info:  # load_raw skips them the same way
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


# ---------------------------------------------------------------------------------------------
# the cache never returns wrong data, and one bad file never blocks a good source (issue 11)


def md5s(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: hashlib.md5(idx_bytes(array)).hexdigest() for name, array in arrays.items()}


def publish(monkeypatch, name: str, arrays: dict[str, np.ndarray], **changes) -> None:
    """Make ``arrays`` the "published" data of dataset ``name`` (its md5 table)."""
    monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(ds.SPECS[name], md5=md5s(arrays), **changes))


def load_twice_from(root: Path, monkeypatch, arrays) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    assert_loaded(load_raw("mnist", True, download=False), arrays, True)


def test_a_source_file_overwritten_with_the_same_size_is_checked_again(tmp_path, monkeypatch):
    arrays, other = synthetic_idx(seed=1), synthetic_idx(seed=2)
    publish(monkeypatch, "mnist", arrays)
    root = tmp_path / "data"
    write_idx(root / "MNIST" / "raw", arrays, gz=False)
    load_twice_from(root, monkeypatch, arrays)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(idx_bytes(other["train-images-idx3-ubyte"]))

    result = load_raw("mnist", True, download=False)  # the new bytes fail the md5: the cache serves
    assert_loaded(result, arrays, True)
    assert result[2] == f"cache {cache_raw()}"
    found = locate_dataset("mnist")
    assert found.kind == "cache" and "COURSE_DATA_DIR" in found.note and "md5" in found.note


def test_an_edited_cache_file_is_caught_without_a_published_md5(tmp_path, monkeypatch):
    """The stamp recorded when the cache was filled catches a same-size edit of the labels."""
    arrays = synthetic_idx()
    root = tmp_path / "data"
    write_idx(root / "MNIST" / "raw", arrays)
    load_twice_from(root, monkeypatch, arrays)
    labels = cache_raw() / "train-labels-idx1-ubyte"
    edited = bytearray(labels.read_bytes())
    edited[-1] = (edited[-1] + 1) % 10  # still a valid label
    labels.write_bytes(bytes(edited))

    result = load_raw("mnist", True, download=False)  # copied again from COURSE_DATA_DIR
    assert_loaded(result, arrays, True)
    assert result[2] == f"data_dir {root / 'MNIST' / 'raw'}"
    assert labels.read_bytes() == idx_bytes(arrays["train-labels-idx1-ubyte"])

    labels.write_bytes(bytes(edited))  # now with the cache alone: refused, and moved aside
    monkeypatch.delenv("COURSE_DATA_DIR")
    with pytest.raises(FileNotFoundError, match="changed since the course verified it"):
        load_raw("mnist", True, download=False)
    assert (cache_raw() / "train-labels-idx1-ubyte.damaged").read_bytes() == bytes(edited)
    assert locate_dataset("mnist").kind == "download"


def test_switching_to_a_damaged_data_dir_reports_the_cache_as_the_source(tmp_path, monkeypatch):
    arrays = synthetic_idx()
    load_twice_from(write_idx(tmp_path / "good" / "MNIST" / "raw", arrays).parents[1], monkeypatch, arrays)
    bad = write_idx(tmp_path / "bad" / "MNIST" / "raw", arrays)
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "bad"))

    result = load_raw("mnist", True, download=False)
    assert_loaded(result, arrays, True)
    assert result[2] == f"cache {cache_raw()}"  # not "data_dir .../bad"


@pytest.mark.parametrize("behind", ["data_dir", "system"])
def test_a_truncated_cache_file_does_not_hide_a_good_source(tmp_path, monkeypatch, behind):
    """A SIGKILL during torchvision's extraction leaves a 0-byte file; every other source used to
    be reported unusable, and the course fell back to digits."""
    arrays = synthetic_idx()
    good = write_idx(tmp_path / "good" / "MNIST" / "raw", arrays)
    load_twice_from(good.parents[1], monkeypatch, arrays)
    (cache_raw() / "train-images-idx3-ubyte").write_bytes(b"")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    if behind == "system":
        monkeypatch.delenv("COURSE_DATA_DIR")
        spec = dataclasses.replace(ds.SPECS["mnist"], system_dirs=(str(good),))
        monkeypatch.setitem(ds.SPECS, "mnist", spec)
    found = locate_dataset("mnist")
    assert found.kind == behind  # what get_dataset will do...
    result = load_raw("mnist", True, download=True)  # ...it does
    assert_loaded(result, arrays, True)
    if behind == "data_dir":  # and the cache is whole again
        assert "damaged copy" in found.note and "has 0 bytes" in found.note
        repaired = (cache_raw() / "train-images-idx3-ubyte").read_bytes()
        assert repaired == idx_bytes(arrays["train-images-idx3-ubyte"])
        assert locate_dataset("mnist").note == ""


def test_a_damaged_cache_file_is_unpacked_again_from_the_cached_gz(tmp_path, monkeypatch):
    """torchvision's download leaves NAME.gz beside NAME in the cache."""
    arrays = synthetic_idx()
    write_idx(cache_raw(), arrays)
    write_idx(cache_raw(), arrays, gz=False)
    (cache_raw() / "t10k-images-idx3-ubyte").write_bytes(b"")
    assert locate_dataset("mnist").kind == "cache"
    result = load_raw("mnist", False, download=False)
    assert_loaded(result, arrays, False)
    assert result[2] == f"cache {cache_raw()}"
    assert (cache_raw() / "t10k-images-idx3-ubyte.damaged").stat().st_size == 0


@pytest.mark.parametrize("failure", ["not_a_folder", "disk_full"])
def test_a_cache_that_cannot_be_written_is_bypassed(tmp_path, monkeypatch, failure):
    arrays = synthetic_idx()
    root = write_idx(tmp_path / "data" / "MNIST" / "raw", arrays).parents[1]
    monkeypatch.setenv("COURSE_DATA_DIR", str(root))
    if failure == "not_a_folder":  # (a read-only cache acts the same; as root, chmod cannot show it)
        (tmp_path / "cache_file").write_text("not a folder", encoding="utf-8")
        monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache_file"))
    else:
        def disk_full(path, write):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(datacache, "atomic_write", disk_full)
    result = load_raw("mnist", True, download=False)
    assert_loaded(result, arrays, True)
    assert result[2] == f"data_dir {root / 'MNIST' / 'raw'}"
    if failure == "disk_full":
        assert not any(cache_raw().glob("*"))  # no partial or temporary file


def test_stale_temporary_files_in_the_cache_are_removed_on_the_next_write(tmp_path, monkeypatch):
    stale = cache_raw() / ".train-images-idx3-ubyte.4242.tmp"  # a writer killed mid-copy
    live = cache_raw() / ".t10k-images-idx3-ubyte.x7k2p9aa.tmp"  # a concurrent writer's
    for path in (stale, live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    old = time.time() - 2 * files.STALE_SECONDS
    os.utime(stale, (old, old))
    arrays = synthetic_idx()
    load_twice_from(write_idx(tmp_path / "data" / "MNIST" / "raw", arrays).parents[1], monkeypatch, arrays)
    assert not stale.exists() and live.exists()


# ---------------------------------------------------------------------------------------------
# MNIST and CIFAR-10 are checked like Fashion-MNIST (issue 11)


def test_fashion_mnist_files_in_the_mnist_folder_are_refused(tmp_path, monkeypatch):
    arrays = synthetic_idx()
    publish(monkeypatch, "fashion_mnist", arrays)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    write_idx(tmp_path / "MNIST" / "raw", arrays)
    with pytest.raises(FileNotFoundError, match="is fashion_mnist's train-images-idx3-ubyte, not mnist's"):
        load_raw("mnist", True, download=False)


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.update({"train-labels-idx1-ubyte": a["train-labels-idx1-ubyte"] * 0 + 10}),
     r"has label 10; labels must lie in \[0, 10\)"),
    (lambda a: a.update({"train-images-idx3-ubyte": np.zeros((12, 32, 32), np.uint8)}),
     "holds 32x32 images, this dataset's are 28x28"),
    (lambda a: a.update({"train-labels-idx1-ubyte": np.zeros((12, 28, 28), np.uint8)}),
     "not an unsigned-byte IDX file of labels"),
])
def test_mnist_files_are_checked_for_shape_and_label_range(tmp_path, monkeypatch, damage, message):
    arrays = synthetic_idx()
    damage(arrays)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    write_idx(tmp_path / "MNIST" / "raw", arrays)
    with pytest.raises(FileNotFoundError, match=message):
        load_raw("mnist", True, download=False)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_the_published_md5s_and_counts_refuse_synthetic_files(tmp_path, monkeypatch, synthetic_specs, name):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    if name == "mnist":
        write_idx(tmp_path / "MNIST" / "raw", synthetic_idx())
    else:
        write_cifar(tmp_path / "cifar-10-batches-py")
    spec = synthetic_specs[name]
    monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(spec, md5={}))  # counts only
    with pytest.raises(FileNotFoundError, match="examples, the published data 60000|published data 10000"):
        load_raw(name, True, download=False)
    monkeypatch.setitem(ds.SPECS, name, dataclasses.replace(spec, counts={}))  # md5s only
    with pytest.raises(FileNotFoundError, match=f"contents differ from the published {name} data"):
        load_raw(name, True, download=False)
    assert set(spec.md5) == set(spec.counts) == set(ds._names(spec))


class Payload:
    """A pickle that creates ``marker`` when loaded with plain pickle.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("content, message", [
    ("payload", r"is truncated or not a CIFAR-10 batch \(UnpicklingError: posix.mkdir is not allowed"),
    ("truncated", "is truncated or not a CIFAR-10 batch"),
    ("no_labels", r"is not a CIFAR-10 batch \(no 'data' and 'labels' entries\)"),
    ("labels_out_of_range", r"has labels outside \[0, 10\)"),
    ("wrong_shape", "is not a uint8 array of 3x32x32 images"),
])
def test_a_bad_cifar_batch_runs_no_code_and_is_refused_clearly(tmp_path, monkeypatch, content, message):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    batch = folder / "data_batch_3"
    if content == "payload":
        batch.write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    elif content == "truncated":
        batch.write_bytes(batch.read_bytes()[:-500])
    else:
        entry = {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 3]}
        if content == "no_labels":
            del entry["labels"]
        elif content == "labels_out_of_range":
            entry["labels"] = [0, 1, 2, 10]
        else:
            entry["data"] = np.zeros((4, 1024), np.uint8)
        batch.write_bytes(pickle.dumps(entry))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match=message):
        load_raw("cifar10", True, download=False)
    assert not marker.exists()
    assert locate_dataset("cifar10").kind == "download"

    write_cifar(data_cache_dir() / "cifar-10-batches-py")  # a good copy behind it is used instead
    result = load_raw("cifar10", True, download=False)
    assert result[2] == f"cache {data_cache_dir() / 'cifar-10-batches-py'}"


def test_load_raw_refuses_a_train_flag_that_is_not_a_bool():
    for bad in (None, 1, "train"):
        with pytest.raises(TypeError, match="train must be True .* or False"):
            load_raw("mnist", bad, download=False)
