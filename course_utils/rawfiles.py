"""The raw formats of the course's datasets: IDX (MNIST, Fashion-MNIST) and CIFAR-10's pickles.

Each reader checks what it reads before returning it: the IDX header against the file size,
the image shape, the number of examples and the label range; CIFAR-10 batches are unpickled with
an allow-list (builtin containers and NumPy arrays only), so a hostile file cannot run code, and
a truncated or malformed one gives a ValueError naming it instead of an ``UnpicklingError`` or a
``KeyError``. Used by :mod:`course_utils.datasets`; the md5 checks live there.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path

import numpy as np


def read_contents(path: Path) -> bytearray:
    """The bytes of ``path``, unpacked if it ends in ``.gz`` (a writable buffer, no extra copy).

    Raises:
        ValueError: a ``.gz`` that is truncated or damaged.
        OSError: the file cannot be read.
    """
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            data = bytearray(path.stat().st_size)
            read = f.readinto(data)
        return data[:read] if read != len(data) else data
    try:
        with gzip.open(path, "rb") as f:
            return bytearray(f.read())
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"{path} is truncated or damaged ({err})") from err


def parse_idx(data: bytearray, where: str, *, images: bool, shape: tuple[int, int],
              count: int | None, classes: int) -> np.ndarray:
    """The array stored in an unsigned-byte IDX file, after checking it.

    Args:
        images: an image file ``(N, H, W)`` (else a label file ``(N,)``).
        shape: the images' ``(H, W)``; count: the examples expected (None: any); classes:
            labels must lie in ``[0, classes)``.

    Raises:
        ValueError: naming ``where`` and what is wrong.
    """
    ndim = 3 if images else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where} has {len(data)} bytes: truncated (the header promises at least "
                         f"{header})")
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 | ndim:
        kind = "images (N, H, W)" if images else "labels (N,)"
        raise ValueError(f"{where} is not an unsigned-byte IDX file of {kind} (magic {magic:#010x})")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{where} has {len(data)} bytes, its header promises {expected}")
    if images and tuple(dims[1:]) != tuple(shape):
        raise ValueError(f"{where} holds {dims[1]}x{dims[2]} images, this dataset's are "
                         f"{shape[0]}x{shape[1]}")
    if count is not None and dims[0] != count:
        raise ValueError(f"{where} holds {dims[0]} examples, the published data {count}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    if not images and array.size and int(array.max()) >= classes:
        raise ValueError(f"{where} has label {int(array.max())}; labels must lie in [0, {classes})")
    return array


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array rebuilder, under either module name
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10 batches hold: builtin containers and NumPy arrays."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def parse_cifar_batch(data: bytes | bytearray, where: str, *, count: int | None,
                      classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 3, 32, 32)`` and labels ``int64 (N,)`` of one CIFAR-10 batch file.

    Raises:
        ValueError: the file is truncated, not a CIFAR-10 batch, refers to anything but
            builtin types and NumPy arrays, or holds the wrong number or range of values.
    """
    try:
        entry = _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # a malformed pickle can fail in many ways; all mean "unusable"
        raise ValueError(f"{where} is truncated or not a CIFAR-10 batch "
                         f"({type(err).__name__}: {err})") from err
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise ValueError(f"{where} is not a CIFAR-10 batch (no 'data' and 'labels' entries)")
    images, labels = entry["data"], np.asarray(entry["labels"])
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3 * 32 * 32):
        raise ValueError(f"{where}: 'data' is not a uint8 array of 3x32x32 images")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: {len(images)} images but labels of shape {labels.shape}")
    if count is not None and len(images) != count:
        raise ValueError(f"{where} holds {len(images)} examples, the published data {count}")
    if labels.size and not (0 <= int(labels.min()) and int(labels.max()) < classes):
        raise ValueError(f"{where} has labels outside [0, {classes})")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)
