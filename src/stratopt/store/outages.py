"""Which database failures are outages (the call will work later) rather than bugs.

A database that is down, restarting, refusing connections or locked by another process for
longer than the busy timeout is not a defect of the request: the client should see
UNAVAILABLE with a retry hint, not INTERNAL. The errors interceptor (api/) asks `translate`,
which the server wires in, because api/ may not know SQL. A failure that is not recognised
here stays a bug (INTERNAL, logged with its stack trace): syntax errors, missing tables and
constraint violations are never outages.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from types import TracebackType

from sqlalchemy import exc as sa_exc

from stratopt.errors import StorageFull, StratoptError, Unavailable

RETRY_AFTER_S = 2.0
"""The hint given with UNAVAILABLE: about one health probe interval."""
MESSAGE = "the database is unavailable for the moment; retry shortly"

_SQLITE_OUTAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
    "readonly database",
)
_SQLITE_FULL = "database or disk is full"
# SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown, starting
# up), 53300 too many connections.
_PG_OUTAGE_STATES = ("08", "57P", "53300")
_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


def translate(exc: BaseException) -> StratoptError | None:
    """The client-facing error for a database outage, or None when `exc` is not one."""
    if isinstance(exc, sa_exc.TimeoutError):  # the connection pool stayed exhausted
        return Unavailable(MESSAGE, RETRY_AFTER_S)
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return Unavailable(MESSAGE, RETRY_AFTER_S)
        return _from_driver_error(exc.orig)
    if isinstance(exc, sqlite3.OperationalError):
        return _from_driver_error(exc)
    if isinstance(exc, OSError) and _raised_by_driver(exc.__traceback__):
        # asyncpg lets a refused or reset connection through as a bare OSError
        # (ConnectionRefusedError when the server is down), from inside the pool.
        return Unavailable(MESSAGE, RETRY_AFTER_S)
    return None


def _from_driver_error(orig: BaseException | None) -> StratoptError | None:
    if orig is None:
        return None
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if state.startswith(_PG_OUTAGE_STATES):
        return Unavailable(MESSAGE, RETRY_AFTER_S)
    text = str(orig).lower()
    if _SQLITE_FULL in text:
        return StorageFull(
            "the database has no room to write (disk full); nothing was stored, "
            "try again later or ask the operator to free space",
            retry_after_seconds=60.0,
        )
    if any(m in text for m in _SQLITE_OUTAGES):
        return Unavailable(MESSAGE, RETRY_AFTER_S)
    if isinstance(orig, OSError | ConnectionError):
        return Unavailable(MESSAGE, RETRY_AFTER_S)
    return None


def _raised_by_driver(tb: TracebackType | None) -> bool:
    """True when the traceback passes through SQLAlchemy or a database driver, so a bare
    OSError came from reaching the database and not from, say, a webhook."""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


class FailureLog:
    """Logs a retry loop's repeating failure (the database away for a while) without
    flooding the log: the first one with its traceback, then a one-line reminder a minute,
    then the recovery. One per loop; `extra` goes with every line."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        every_s: float = 60.0,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self.logger = logger
        self.what = what
        self.every_s = every_s
        self.extra = dict(extra or {})
        self.count = 0
        self._last = 0.0

    def failed(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count == 1:
            self.logger.warning(self.what, exc_info=True, extra=self.extra)
            self._last = now
        elif now - self._last >= self.every_s:
            self.logger.warning(f"{self.what}, still ({self.count} times)", extra=self.extra)
            self._last = now

    def recovered(self) -> None:
        if self.count:
            self.logger.info(f"{self.what} {self.count} times; working again", extra=self.extra)
            self.count = 0
