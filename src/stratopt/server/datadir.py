"""The data folder is private to the server's user: it holds the SQLite file (password
hashes, API key hashes, audit trail), the datasets and the exports.

`make_private` runs once at start: it sets the process umask to 077, so everything the
server creates from then on (the database and its -wal/-shm files, datasets, backtests,
exports, the development JWT key) is 0600 and every folder 0700, and it tightens what an
earlier version left readable. Files the server's user does not own are left alone (and
reported), so pointing the data folder at a shared mount does not fail the start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("stratopt.server")

PRIVATE_UMASK = 0o077


def make_private(root: Path) -> None:
    os.umask(PRIVATE_UMASK)
    root.mkdir(parents=True, exist_ok=True)
    loose = 0
    for path in [root, *root.rglob("*")]:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                continue
            if st.st_uid != os.geteuid():
                loose += 1
                continue
            path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
        except OSError:
            loose += 1
    if loose:
        log.warning(
            "some files in the data folder stay readable by others (not ours to change)",
            extra={"data_dir": str(root), "files": loose},
        )
