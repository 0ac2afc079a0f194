"""What some tests need from the machine (PostgreSQL, Debian's chromium), found in one place.

Locally a missing tool skips the test with how to get it; in CI (`CI=true`, set by .ci/run,
which installs them all) it fails, so a broken install never passes as skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import make_url, text

from stratopt.store import migrate
from stratopt.store.db import Database

PG_ENV_FILE = Path("/tmp/stratopt-pg.env")
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skips locally; fails in CI, where .ci/run should have provided it."""
    if in_ci():
        pytest.fail(f"{reason} (in CI .ci/run provides it)")
    pytest.skip(reason)


def postgres_url() -> str:
    """The test server's URL (STRATOPT_TEST_POSTGRES_URL, or the file .ci/postgres.sh writes)."""
    url = os.environ.get("STRATOPT_TEST_POSTGRES_URL")
    if url is None and PG_ENV_FILE.exists():
        for line in PG_ENV_FILE.read_text().splitlines():
            if line.startswith("STRATOPT_TEST_POSTGRES_URL="):
                url = line.split("=", 1)[1].strip()
    if not url:
        unavailable("no PostgreSQL: run .ci/postgres.sh or set STRATOPT_TEST_POSTGRES_URL")
    return url


@asynccontextmanager
async def fresh_postgres(prefix: str) -> AsyncIterator[Database]:
    """A migrated database of its own on the test server, dropped afterwards."""
    url = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = Database(url)
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(make_url(url).set(database=name).render_as_string(hide_password=False))
    try:
        await migrate.upgrade(database)
        yield database
    finally:
        await database.dispose()
        async with admin.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
