"""Finding, verifying and reading the course's datasets, offline first.

Resolution order for a dataset (taught in notebook 00):
1. the folder named by ``COURSE_DATA_DIR`` (torchvision's layout, e.g. ``shared/data``);
2. the course's own cache (``COURSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/train-it-faster``);
3. a system copy (Debian's ``dataset-fashion-mnist`` under ``/usr/share/datasets``);
4. torchvision's download into the cache;
5. scikit-learn's bundled 8x8 digits, upsampled, with a printed notice (see ``course_utils.data``).

``COURSE_OFFLINE=1`` skips step 4 and ``COURSE_NO_SYSTEM_DATA=1`` skips step 3 (how CI runs the
notebooks as a user without the data would).

Folders the course does not own are only read: files are linked or unpacked into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives in torchvision's layout and how to check it."""

    name: str
    folder: str  # torchvision's folder under the data root
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # (C, H, W)
    files: dict[bool, tuple[str, str]] = field(default_factory=dict)  # train -> (images, labels)
    md5: dict[str, str] = field(default_factory=dict)  # unpacked file -> md5 of its contents
    system_dirs: tuple[str, ...] = ()
    torchvision_class: str = ""


_IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

SPECS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "FashionMNIST", FASHION_CLASSES, (1, 28, 28), _IDX_FILES,
        # Unpacked contents (Xiao et al. 2017). Debian re-gzips the files, so the .gz checksums
        # differ between sources while these do not.
        md5={"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
             "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
             "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
             "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
        system_dirs=("/usr/share/datasets/fashion-mnist",), torchvision_class="FashionMNIST"),
    "mnist": DatasetSpec("mnist", "MNIST", tuple(str(d) for d in range(10)), (1, 28, 28),
                         _IDX_FILES, torchvision_class="MNIST"),
    "cifar10": DatasetSpec("cifar10", "cifar-10-batches-py", CIFAR10_CLASSES, (3, 32, 32),
                           {True: ("data_batch_1",), False: ("test_batch",)},
                           torchvision_class="CIFAR10"),
    "digits": DatasetSpec("digits", "", tuple(str(d) for d in range(10)), (1, 28, 28)),
}
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _check_name(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {tuple(SPECS)}")
    return SPECS[name]


def cache_dir() -> Path:
    """The course's own writable folder (``COURSE_CACHE_DIR`` overrides it)."""
    if os.environ.get("COURSE_CACHE_DIR"):
        return Path(os.environ["COURSE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "train-it-faster"


def data_cache_dir() -> Path:
    """Root of the cached datasets, in torchvision's layout (usable as ``root=`` there too)."""
    return cache_dir() / "data"


@dataclass(frozen=True)
class DataSource:
    """Where a dataset would come from right now: ``kind`` is one of
    ``"data_dir"``, ``"cache"``, ``"system"``, ``"download"`` or ``"fallback"``."""

    name: str
    kind: str
    path: Path | None
    note: str = ""

    def describe(self) -> str:
        where = {"data_dir": "COURSE_DATA_DIR", "cache": "course cache", "system": "system copy",
                 "download": "not on disk: torchvision would download it to",
                 "fallback": "built in"}[self.kind]
        text = f"{self.name}: {where} {self.path}" if self.path else f"{self.name}: {where}"
        return text + (f" ({self.note})" if self.note else "")


def _raw_dirs(spec: DatasetSpec) -> list[tuple[str, Path]]:
    """Candidate folders holding the raw files, in resolution order (no network)."""
    sub = Path(spec.folder) / ("raw" if spec.name != "cifar10" else "")
    found = []
    if os.environ.get("COURSE_DATA_DIR"):
        found.append(("data_dir", Path(os.environ["COURSE_DATA_DIR"]).expanduser() / sub))
    found.append(("cache", data_cache_dir() / sub))
    if not os.environ.get("COURSE_NO_SYSTEM_DATA"):  # set to test a machine without the package
        found += [("system", Path(d)) for d in spec.system_dirs]
    return found


def _has_files(spec: DatasetSpec, folder: Path) -> bool:
    names = [n for pair in spec.files.values() for n in pair]
    if spec.name == "cifar10":
        names = [*_CIFAR_TRAIN, "test_batch"]
        return all((folder / n).is_file() for n in names)
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)


def locate_dataset(name: str) -> DataSource:
    """Say where ``name`` would be loaded from, without downloading or writing anything."""
    spec = _check_name(name)
    if name == "digits":
        return DataSource(name, "fallback", None, "scikit-learn's bundled 8x8 digits")
    for kind, folder in _raw_dirs(spec):
        if _has_files(spec, folder):
            return DataSource(name, kind, folder)
    return DataSource(name, "download", data_cache_dir(), "needs internet")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_idx(path: Path, spec: DatasetSpec, *, contents: bool = True) -> None:
    """Raise ValueError unless ``path`` is a well-formed IDX file (and, if ``contents``, unless
    its md5 matches the published data where the course knows it)."""
    with open(path, "rb") as f:
        header = f.read(16)
    magic = int.from_bytes(header[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#010x})")
    dims = [int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if path.stat().st_size != expected:
        raise ValueError(f"{path} has {path.stat().st_size} bytes, its header promises {expected}")
    want = spec.md5.get(path.name.lstrip(".").split(".")[0]) if contents else None
    if want and _md5(path) != want:
        raise ValueError(f"{path}: contents differ from the published {spec.name} data (md5)")


def _materialize_idx(spec: DatasetSpec, source: Path) -> Path:
    """Link or unpack the four IDX files from ``source`` into the cache and verify them."""
    target = data_cache_dir() / spec.folder / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for name in (n for pair in spec.files.values() for n in pair):
        dest = target / name
        if dest.exists():  # the cache only ever receives verified files (atomic rename)
            _check_idx(dest, spec, contents=False)
            continue
        tmp = target / f".{name}.{os.getpid()}.tmp"
        try:
            if (source / name).is_file():
                os.symlink((source / name).resolve(), tmp)
            else:
                try:
                    with gzip.open(source / f"{name}.gz", "rb") as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                    raise ValueError(f"{source / name}.gz is truncated or damaged ({err})") from err
            _check_idx(tmp, spec)
        except BaseException:  # never leave a partial file behind (disk full, Ctrl-C, bad data)
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
    return target


def _read_idx(path: Path) -> torch.Tensor:
    with open(path, "rb") as f:
        ndim = f.read(4)[3]
        dims = [int.from_bytes(f.read(4), "big") for _ in range(ndim)]
        array = np.fromfile(f, dtype=np.uint8).reshape(dims)
    return torch.from_numpy(array)


def _read_cifar(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for batch in (_CIFAR_TRAIN if train else ("test_batch",)):
        with open(folder / batch, "rb") as f:
            entry = pickle.load(f, encoding="latin1")  # trusted, as in torchvision
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


def load_raw(name: str, train: bool, *, download: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Load ``(images uint8 (N, C, H, W), labels int64 (N,), source)`` from disk or the network.

    Tries each folder of the resolution order, then (if ``download``) torchvision's download
    into the cache. Raises FileNotFoundError, listing what was tried, when all of them fail.
    """
    spec = _check_name(name)
    if name == "digits":
        images, labels = load_digits(train)
        return images, labels, "scikit-learn's bundled digits"
    tried = []
    for kind, folder in _raw_dirs(spec):
        if not _has_files(spec, folder):
            tried.append(f"{kind} {folder}: not there")
            continue
        try:
            return (*_read_from(spec, folder, train), f"{kind} {folder}")
        except (ValueError, OSError) as err:
            tried.append(f"{kind} {folder}: unusable ({err})")
    if download and not os.environ.get("COURSE_OFFLINE"):
        try:
            _download(spec)
            folder = data_cache_dir() / spec.folder / ("raw" if spec.name != "cifar10" else "")
            return (*_read_from(spec, folder, train), f"download to {folder}")
        except Exception as err:  # any network, disk or checksum failure means "not available"
            tried.append(f"download: failed ({type(err).__name__}: {err})")
    else:
        tried.append("download: skipped (download=False or COURSE_OFFLINE is set)")
    raise FileNotFoundError(f"{name} is not available. Tried:\n  " + "\n  ".join(tried))


def _read_from(spec: DatasetSpec, folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if spec.name == "cifar10":
        return _read_cifar(folder, train)
    cached = _materialize_idx(spec, folder)
    image_file, label_file = spec.files[train]
    images = _read_idx(cached / image_file).unsqueeze(1)
    labels = _read_idx(cached / label_file).long()
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _download(spec: DatasetSpec) -> None:
    import torchvision  # slow import (~1.3 s): only when a download is really needed

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    for train in (True, False):
        dataset_class(root=str(data_cache_dir()), train=train, download=True)


def load_digits(train: bool, size: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits upsampled to ``size`` x ``size``, split 80/20 (seed 0)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                             align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    keep = order[:cut] if train else order[cut:]
    return images[keep], labels[keep]
