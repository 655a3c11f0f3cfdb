"""Finding, verifying and reading the course's datasets, offline first.

Resolution order for a dataset (taught in notebook 00):
1. the folder named by ``COURSE_DATA_DIR`` (torchvision's layout, e.g. ``shared/data``);
2. the course's own cache (``COURSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/train-it-faster``);
3. a system copy (Debian's ``dataset-fashion-mnist`` under ``/usr/share/datasets``);
4. torchvision's download into the cache;
5. scikit-learn's bundled 8x8 digits, upsampled, with a printed notice (see ``course_utils.data``).

``COURSE_OFFLINE=1`` skips step 4 and ``COURSE_NO_SYSTEM_DATA=1`` skips step 3 (how CI runs the
notebooks as a user without the data would).

Every file is checked before its data is returned (the published md5, then its structure: see
:mod:`course_utils.rawfiles`), once per change of the file (see :mod:`course_utils.datacache`).
A file that fails its check makes its folder unusable and the next source is tried; a damaged
file in the cache is moved aside, so it never hides a good source. Folders the course does not
own are only read: IDX files are copied (unpacked) into the cache, CIFAR-10 batches are read
where they are. Nothing is written outside the cache.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from course_utils.datacache import Stamps, file_problem, load_stamps, verified_files
from course_utils.files import remove_stale_temps
from course_utils.rawfiles import parse_cifar_batch, parse_idx, read_contents

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
    files: dict[bool, tuple[str, ...]] = field(default_factory=dict)  # train -> its files
    md5: dict[str, str] = field(default_factory=dict)  # unpacked file -> md5 of its contents
    counts: dict[str, int] = field(default_factory=dict)  # file -> number of examples in it
    system_dirs: tuple[str, ...] = ()
    torchvision_class: str = ""


_IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_COUNTS = {"train-images-idx3-ubyte": 60_000, "train-labels-idx1-ubyte": 60_000,
               "t10k-images-idx3-ubyte": 10_000, "t10k-labels-idx1-ubyte": 10_000}
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))

SPECS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "FashionMNIST", FASHION_CLASSES, (1, 28, 28), _IDX_FILES,
        # Unpacked contents (Xiao et al. 2017). Debian re-gzips the files, so the .gz checksums
        # differ between sources while these do not.
        md5={"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
             "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
             "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
             "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
        counts=_IDX_COUNTS, system_dirs=("/usr/share/datasets/fashion-mnist",),
        torchvision_class="FashionMNIST"),
    "mnist": DatasetSpec(
        "mnist", "MNIST", tuple(str(d) for d in range(10)), (1, 28, 28), _IDX_FILES,
        # Unpacked contents of LeCun's release (torchvision lists only the .gz checksums).
        md5={"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
        counts=_IDX_COUNTS, torchvision_class="MNIST"),
    "cifar10": DatasetSpec(
        "cifar10", "cifar-10-batches-py", CIFAR10_CLASSES, (3, 32, 32),
        {True: _CIFAR_TRAIN, False: ("test_batch",)},
        md5={"data_batch_1": "c99cafc152244af753f735de768cd75f",  # as torchvision checks them
             "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
             "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
             "test_batch": "40351d587109b95175f43aff81a1287e"},
        counts={n: 10_000 for n in (*_CIFAR_TRAIN, "test_batch")}, torchvision_class="CIFAR10"),
    "digits": DatasetSpec("digits", "", tuple(str(d) for d in range(10)), (1, 28, 28)),
}


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


def _names(spec: DatasetSpec) -> list[str]:
    return [n for split in (True, False) for n in spec.files[split]]


def _source_file(spec: DatasetSpec, folder: Path, name: str) -> Path:
    """``folder / name``, or its ``.gz`` where IDX files may be packed."""
    path = folder / name
    return path if path.is_file() or spec.name == "cifar10" else path.with_name(name + ".gz")


def _has_files(spec: DatasetSpec, folder: Path) -> bool:
    return all(_source_file(spec, folder, n).is_file() for n in _names(spec))


def _verify(spec: DatasetSpec, name: str, data: bytearray, where: str, md5: str) -> None:
    """Raise ValueError unless ``data`` (the file ``name``, read at ``where``) is good data."""
    _parse(spec, name, data, where)  # first: "truncated" says more than "md5 differs"
    for other in SPECS.values():  # a published file of another dataset, or another file of this one
        for file, known in other.md5.items():
            if known == md5 and (other.name, file) != (spec.name, name):
                raise ValueError(f"{where} is {other.name}'s {file}, not {spec.name}'s {name}")
    if spec.md5.get(name) and md5 != spec.md5[name]:
        raise ValueError(f"{where}: contents differ from the published {spec.name} data (md5)")


def _parse(spec: DatasetSpec, name: str, data: bytearray, where: str) -> tuple[np.ndarray, ...]:
    count, classes = spec.counts.get(name), len(spec.classes)
    if spec.name == "cifar10":
        return parse_cifar_batch(data, where, count=count, classes=classes)
    return (parse_idx(data, where, images="images" in name, shape=spec.shape[1:], count=count,
                      classes=classes),)


def _problems(spec: DatasetSpec, kind: str, folder: Path, stamps: Stamps) -> list[str]:
    """Why ``folder`` cannot serve ``spec`` (empty if it can); reads only."""
    verify, problems = functools.partial(_verify, spec), []
    for name in _names(spec):
        path = _source_file(spec, folder, name)
        problem = file_problem(path, name, verify, stamps, ours=kind == "cache")
        packed = path.with_name(name + ".gz")
        if problem and kind == "cache" and path != packed and packed.is_file():
            problem = file_problem(packed, name, verify, stamps, ours=True)  # unpacked again
        problems += [problem] if problem else []
    return problems


def _cache_notes(spec: DatasetSpec, stamps: Stamps) -> list[str]:
    """Damaged copies in the cache, which the next load from another source replaces."""
    if spec.name == "cifar10":
        return []
    folder, verify, notes = data_cache_dir() / spec.folder / "raw", functools.partial(_verify, spec), []
    for name in _names(spec):
        if (folder / name).is_file():
            problem = file_problem(folder / name, name, verify, stamps, ours=True)
            notes += [f"the course cache holds a damaged copy ({problem}); the next load replaces "
                      "it, or run `python -m course_utils data` now"] if problem else []
    return notes


_LABELS = {"data_dir": "COURSE_DATA_DIR", "cache": "the course cache", "system": "the system copy"}


def locate_dataset(name: str) -> DataSource:
    """Say where ``name`` would be loaded from right now, without downloading or writing anything.

    Files are checked as :func:`load_raw` checks them, so a folder that holds damaged or wrong
    files is skipped here too; ``note`` says what was skipped and what the cache needs.
    """
    spec = _check_name(name)
    if name == "digits":
        return DataSource(name, "fallback", None, "scikit-learn's bundled 8x8 digits")
    stamps, skipped = load_stamps(cache_dir()), []
    for kind, folder in _raw_dirs(spec):
        if not _has_files(spec, folder):
            continue
        problems = _problems(spec, kind, folder, stamps)
        if not problems:
            notes = skipped + (_cache_notes(spec, stamps) if kind != "cache" else [])
            return DataSource(name, kind, folder, "; ".join(notes))
        skipped.append(f"{_LABELS[kind]} {folder} is unusable: {problems[0]}")
    return DataSource(name, "download", data_cache_dir(), "; ".join([*skipped, "needs internet"]))


def load_raw(name: str, train: bool, *, download: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Load ``(images uint8 (N, C, H, W), labels int64 (N,), source)`` from disk or the network.

    Tries each folder of the resolution order, then (if ``download``) torchvision's download
    into the cache; ``source`` names the folder the data actually came from. Every file is
    checked first (see the module docstring).

    Raises:
        ValueError: unknown ``name``; TypeError: ``train`` is not True or False.
        FileNotFoundError: listing what was tried, when every source fails.
    """
    spec = _check_name(name)
    if not isinstance(train, bool):
        raise TypeError(f"train must be True (the training split) or False (the test split), "
                        f"got {train!r}")
    if name == "digits":
        images, labels = load_digits(train)
        return images, labels, "scikit-learn's bundled digits"
    tried = []
    for kind, folder in _raw_dirs(spec):
        if not _has_files(spec, folder):
            tried.append(f"{kind} {folder}: not there")
            continue
        try:
            return (*_read_from(spec, kind, folder, train), f"{kind} {folder}")
        except (ValueError, OSError) as err:
            tried.append(f"{kind} {folder}: unusable ({err})")
    if download and not os.environ.get("COURSE_OFFLINE"):
        try:
            _download(spec)
            folder = data_cache_dir() / spec.folder / ("raw" if spec.name != "cifar10" else "")
            return (*_read_from(spec, "cache", folder, train), f"download to {folder}")
        except Exception as err:  # any network, disk or checksum failure means "not available"
            tried.append(f"download: failed ({type(err).__name__}: {err})")
    else:
        tried.append("download: skipped (download=False or COURSE_OFFLINE is set)")
    raise FileNotFoundError(f"{name} is not available. Tried:\n  " + "\n  ".join(tried))


def _read_from(spec: DatasetSpec, kind: str, folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Check every file of ``folder`` (copying IDX files into the cache), then read one split."""
    copy_to = None if spec.name == "cifar10" else data_cache_dir() / spec.folder / "raw"
    found = verified_files({n: _source_file(spec, folder, n) for n in _names(spec)}, cache=cache_dir(),
                           ours=kind == "cache", copy_to=copy_to, verify=functools.partial(_verify, spec))
    arrays = [_parse(spec, n, f if isinstance(f, bytearray) else read_contents(f), str(f))
              for n, f in ((n, found[n]) for n in spec.files[train])]
    if spec.name == "cifar10":
        images = np.concatenate([a[0] for a in arrays])
        labels = np.concatenate([a[1] for a in arrays])
    else:
        images, labels = arrays[0][0][:, None], arrays[1][0].astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images), torch.from_numpy(labels)


def _download(spec: DatasetSpec) -> None:
    import torchvision  # slow import (~1.3 s): only when a download is really needed

    remove_stale_temps(data_cache_dir() / spec.folder / ("raw" if spec.name != "cifar10" else ""))
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
