"""Atomic writes and the clean-up of abandoned temporary files (course_utils.files)."""

from __future__ import annotations

import os
import time

import pytest

from course_utils import files


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "sub" / "record.bin"
    assert files.atomic_write(path, lambda f: f.write(b"one")) == path
    files.atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["record.bin"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary_file(tmp_path, error):
    path = files.atomic_write_text(tmp_path / "record.txt", "old")

    def half_then_fail(f):
        f.write(b"new but only ha")
        raise error

    with pytest.raises(type(error)):
        files.atomic_write(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "old"
    assert files.temp_files(path) == []


def test_remove_stale_temps_only_removes_old_ones(tmp_path):
    old, young = tmp_path / ".a.1.tmp", tmp_path / ".a.2.tmp"
    for path in (old, young):
        path.write_bytes(b"x")
    then = time.time() - files.STALE_SECONDS - 10
    os.utime(old, (then, then))
    assert files.remove_stale_temps(tmp_path) == [old]
    assert young.exists() and not old.exists()
    assert files.remove_stale_temps(tmp_path / "missing") == []



def test_new_files_get_the_usual_permissions_and_replaced_ones_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        path = files.atomic_write_text(tmp_path / "new.txt", "x")
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o600)
        files.atomic_write_text(path, "y")
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(umask)
