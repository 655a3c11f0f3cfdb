"""Writing files so that a crash, a full disk or a second process never leaves a broken one.

Every file the course writes (results, checkpoints, the data cache) goes through
:func:`atomic_write`: a temporary file in the same folder, flushed to disk, then renamed over the
target, so a reader sees the old file or the new one, whole. A writer killed mid-write (SIGKILL,
power loss) can leave its temporary file behind; the next write of the same target removes such
leftovers once they are old enough that no live writer can still own them.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

# A live writer touches its temporary file continuously; one untouched this long was abandoned.
STALE_SECONDS = 300.0


def temp_files(target: Path) -> list[Path]:
    """The temporary files :func:`atomic_write` creates for ``target`` (``.NAME.*.tmp``)."""
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def remove_stale_temps(folder: str | Path, pattern: str = ".*.tmp", *,
                       older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete temporary files in ``folder`` matching ``pattern`` not modified for ``older_than`` s.

    Younger ones are left alone: they may belong to a writer that is still running.
    Returns the files removed; files that vanish or cannot be removed meanwhile are skipped.
    """
    removed, now = [], time.time()
    for path in Path(folder).glob(pattern):
        try:
            if path.is_file() and now - path.lstat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except OSError:  # removed by another process, or not ours to remove
            continue
    return removed


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Replace ``path`` with what ``write(file)`` writes, atomically, and return ``path``.

    ``write`` receives a binary file in the same folder; it is flushed and fsynced, then renamed
    over ``path``. On any failure (an exception in ``write``, a full disk, Ctrl-C) the temporary
    file is removed and the old file is left as it was. Stale temporary files of ``path`` left
    by a killed writer are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{glob.escape(path.name)}.*.tmp")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _mode(path))  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode(path: Path) -> int:
    """The replaced file's permissions, or what a plain ``open(path, "w")`` would give."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with the UTF-8 ``text`` atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))

