"""Whole-or-nothing file writes: a reader, a crash or a full disk never leaves half a file.

The bytes go to a hidden temp file beside the target, are flushed to disk, then renamed over
the target in one step. When anything fails (ENOSPC on a full disk, EFBIG past a file size
limit, a cancelled call) the temp file is removed and the error propagates, so the caller
reports it and no partial file stays behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def temp_path_for(target: Path) -> Path:
    """A unique hidden sibling of `target` (same folder, so the rename stays atomic)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def write_atomic(target: Path, data: bytes) -> None:
    """Writes `data` to `target` entirely or not at all (blocking: run it in a thread)."""
    temp = temp_path_for(target)
    try:
        with temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
