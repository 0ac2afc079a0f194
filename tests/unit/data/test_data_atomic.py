"""Whole-or-nothing writes: a failed write leaves neither the target nor a temp file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stratopt.data import atomic
from stratopt.data.atomic import write_atomic


def test_writes_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"one")
    write_atomic(target, b"two two")
    assert target.read_bytes() == b"two two"
    assert os.listdir(tmp_path) == ["f"]


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from fsync (where a full disk often shows up) on the way to the rename."""

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    target = tmp_path / "f"
    with pytest.raises(OSError) as caught:
        write_atomic(target, b"x" * 10_000)
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"old")

    def refuse(_src: object, _dst: object) -> None:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]
