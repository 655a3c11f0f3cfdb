"""Verified files: what the course has already checked, and the verified copies in its cache.

Checking a file costs one md5 (and, for a ``.gz``, unpacking it). A stamp per checked file (its
size, mtime and inode, and the md5 of its contents) in the cache's ``verified.json`` lets later
loads skip that work; a file whose size, mtime or inode changed is checked again. The cache holds
copies, never links, so a changed source cannot change what the cache returns. A cached file
that fails its check is moved aside to ``NAME.damaged``, so it never hides a good source; a cache
that cannot be written (read-only, disk full) is bypassed and the data read straight from the
source. Nothing is written outside the cache. Used by :mod:`course_utils.datasets`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from course_utils.files import atomic_write, atomic_write_text, remove_stale_temps
from course_utils.rawfiles import read_contents

# verify(file name, contents, where, md5 of contents) raises ValueError naming the problem.
Verify = Callable[[str, bytearray, str, str], None]
Stamps = dict[str, list]


def stamps_path(cache: Path) -> Path:
    return cache / "verified.json"


def load_stamps(cache: Path) -> Stamps:
    """The stamps recorded under ``cache`` ({} if none, or if the file is damaged)."""
    try:
        stamps = json.loads(stamps_path(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or damaged: everything is simply checked again
        return {}
    return stamps if isinstance(stamps, dict) else {}


def save_stamps(cache: Path, stamps: Stamps) -> None:
    """Record ``stamps`` (best effort: a cache that cannot be written just re-checks next time)."""
    try:
        atomic_write_text(stamps_path(cache), json.dumps(stamps, indent=0, sort_keys=True))
    except OSError:
        pass


def _key(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def stamped_md5(stamps: Stamps, path: Path) -> str | None:
    """The md5 recorded for ``path`` if the file is unchanged since it was checked, else None."""
    entry = stamps.get(os.path.abspath(path))
    try:
        return entry[3] if isinstance(entry, list) and len(entry) == 4 and entry[:3] == _key(path) else None
    except OSError:
        return None


def _remember(stamps: Stamps, path: Path, md5: str) -> None:
    stamps[os.path.abspath(path)] = [*_key(path), md5]


def _check(path: Path, name: str, verify: Verify, stamps: Stamps, *, ours: bool) -> bytearray:
    """Read and check ``path`` (unpacking a .gz); record its stamp. ``ours``: a cache file, which
    must also still hold the contents it was stamped with."""
    data = read_contents(path)
    md5 = hashlib.md5(data).hexdigest()
    verify(name, data, str(path), md5)
    old = stamps.get(os.path.abspath(path))
    if ours and isinstance(old, list) and len(old) == 4 and old[3] != md5:
        raise ValueError(f"{path} changed since the course verified it (md5)")
    _remember(stamps, path, md5)
    return data


def checked_file(path: Path, name: str, verify: Verify, stamps: Stamps) -> Path:
    """``path`` after checking it (skipped when its stamp is current); records the stamp.

    Raises:
        ValueError: the file fails its check.
    """
    if stamped_md5(stamps, path) is None:
        _check(path, name, verify, stamps, ours=False)
    return path


def quarantine(path: Path) -> None:
    """Move a damaged cache file aside (``NAME.damaged``) so that it hides no good source."""
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except OSError:  # a read-only cache: the file stays, but every load re-checks and skips it
        pass


def cached_copy(name: str, source: Path, cache_folder: Path, verify: Verify,
                stamps: Stamps) -> Path | bytearray:
    """A verified copy of ``source`` (unpacked) at ``cache_folder / name``, or its contents.

    The copy is reused when it was made from these very contents; otherwise ``source`` is read,
    checked and copied, replacing whatever the cache held. If the cache cannot be written, the
    checked contents are returned instead.

    Raises:
        ValueError: ``source`` fails its check (the cache is then left as it was).
    """
    dest = cache_folder / name
    md5 = stamped_md5(stamps, source)
    if md5 is not None and dest.is_file() and stamped_md5(stamps, dest) == md5:
        return dest
    data = _check(source, name, verify, stamps, ours=False)
    try:
        remove_stale_temps(cache_folder)
        atomic_write(dest, lambda f: f.write(data))
    except OSError:  # read-only or full: read straight from the source this time
        return data
    _remember(stamps, dest, stamps[os.path.abspath(source)][3])
    return dest


def checked_cache_file(name: str, cache_folder: Path, verify: Verify, stamps: Stamps) -> Path:
    """``cache_folder / name`` after checking it; a damaged one is moved aside and, if the cache
    holds ``NAME.gz`` (torchvision's download does), unpacked again from it.

    Raises:
        ValueError: no usable file (naming the problem).
    """
    dest, problem = cache_folder / name, f"{cache_folder / name} is missing"
    if dest.is_file():
        if stamped_md5(stamps, dest) is not None:
            return dest
        try:
            _check(dest, name, verify, stamps, ours=True)
            return dest
        except ValueError as err:
            quarantine(dest)
            problem = f"{err} (moved aside to {dest.name}.damaged)"
    packed = dest.with_name(name + ".gz")
    if not packed.is_file():
        raise ValueError(problem)
    data = _check(packed, name, verify, stamps, ours=True)
    try:
        remove_stale_temps(cache_folder)
        atomic_write(dest, lambda f: f.write(data))
    except OSError as err:
        raise ValueError(f"{problem}; cannot unpack {packed.name} again: {err}") from err
    _remember(stamps, dest, stamps[os.path.abspath(packed)][3])
    return dest


def verified_files(sources: dict[str, Path], *, cache: Path, ours: bool, copy_to: Path | None,
                   verify: Verify) -> dict[str, Path | bytearray]:
    """Check every source file (name -> path) and return what to read each from.

    ``ours``: the sources are the cache's own files, checked in place and repaired (see
    :func:`checked_cache_file`). Otherwise each is copied, verified, into ``copy_to`` (see
    :func:`cached_copy`), or only checked where it is if ``copy_to`` is None. Stamps are kept
    under ``cache``.

    Raises:
        ValueError: a file fails its check; OSError: a file cannot be read.
    """
    stamps, found = load_stamps(cache), {}
    try:
        for name, path in sources.items():
            if ours:
                found[name] = checked_cache_file(name, path.parent, verify, stamps)
            elif copy_to is None:
                found[name] = checked_file(path, name, verify, stamps)
            else:
                found[name] = cached_copy(name, path, copy_to, verify, stamps)
    finally:
        save_stamps(cache, stamps)
    return found


def file_problem(path: Path, name: str, verify: Verify, stamps: Stamps, *, ours: bool) -> str | None:
    """What is wrong with ``path`` (None if it passes its check); reads only, records nothing."""
    if stamped_md5(stamps, path) is not None:
        return None
    try:
        _check(path, name, verify, dict(stamps), ours=ours)
    except (ValueError, OSError) as err:
        return str(err)
    return None
