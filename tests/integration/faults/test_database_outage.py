"""The database out for a while: health turns NOT_SERVING, calls answer UNAVAILABLE with a
retry hint (never INTERNAL), and everything works again once it is back, without a restart.

SQLite: another process holds the write lock past the busy timeout (what a stuck backup or
a second program on the file does). PostgreSQL: a private server of the test's own is
stopped and started again (the shared one of .ci/postgres.sh is left alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from tests.conftest import free_port
from tests.integration.faults.support import (
    NOT_SERVING,
    SERVING,
    Metadata,
    dataset,
    eventually,
    fault_settings,
    health_status,
    login,
    paper_run,
    performance,
    reason,
    retry_delay,
    rpc_error,
    start,
)

SERVICE = "stratopt.v1.StrategyService"


def create_request() -> spb.CreateStrategyRequest:
    return spb.CreateStrategyRequest(
        strategy=spb.Strategy(name=f"fault-{uuid.uuid4().hex[:8]}", strategy_type="sma_crossover")
    )


async def assert_outage_then_recovery(
    ch: grpc.aio.Channel,
    md: Metadata,
    begin_outage: Callable[[], object],
    end_outage: Callable[[], object],
) -> None:
    """Shared script: works, outage (NOT_SERVING + UNAVAILABLE), recovery (SERVING + OK).
    A paper strategy running through it all is still running afterwards. The outage is
    begun and ended from a thread: the server shares this event loop and must keep going."""
    stub = sg.StrategyServiceStub(ch)
    before = (await stub.CreateStrategy(create_request(), metadata=md)).strategy
    paper = await paper_run(ch, md, await dataset(ch, md, bars=5_000), bars_per_second=20)
    assert await health_status(ch, SERVICE) == SERVING

    await asyncio.to_thread(begin_outage)

    async def not_serving() -> bool:
        return await health_status(ch, SERVICE) == NOT_SERVING

    await eventually(not_serving, "health to turn NOT_SERVING during the outage")
    assert await health_status(ch) == NOT_SERVING, "the server as a whole is not serving"
    err = await rpc_error(stub.CreateStrategy(create_request(), metadata=md, timeout=30))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
    assert "database" in (err.details() or "")
    assert reason(err) == "UNAVAILABLE"
    assert retry_delay(err) >= 1.0, "a retry hint a client can use"
    refused = await rpc_error(login(ch, "analyst"))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE, (refused.code(), refused.details())

    await asyncio.to_thread(end_outage)

    async def serving() -> bool:
        return await health_status(ch, SERVICE) == SERVING

    await eventually(serving, "health to turn SERVING again without a restart")
    after = (await stub.CreateStrategy(create_request(), metadata=md)).strategy
    assert await login(ch, "analyst"), "logins work again too"
    got = await stub.GetStrategy(spb.GetStrategyRequest(strategy_id=before.id), metadata=md)
    assert got.strategy.name == before.name and after.id != before.id

    seen = (await performance(ch, md, paper)).bars_processed

    async def still_trading() -> bool:
        perf = await performance(ch, md, paper)
        assert perf.run_state == spb.RUN_STATE_RUNNING, "the outage stopped the paper run"
        return bool(perf.bars_processed > seen)

    await eventually(still_trading, "the paper run to go on after the outage")


async def test_sqlite_write_lock_held_by_another_process(tmp_path: Path) -> None:
    db_file = tmp_path / "stratopt.db"
    settings = fault_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{db_file}?timeout=0.5",
        health_interval_seconds=0.2,
    )
    server, addr = await start(settings)
    holder = sqlite3.connect(db_file, isolation_level=None, timeout=20, check_same_thread=False)
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            md = await login(ch)
            await assert_outage_then_recovery(
                ch,
                md,
                begin_outage=lambda: holder.execute("BEGIN IMMEDIATE"),
                end_outage=lambda: holder.execute("ROLLBACK"),
            )
    finally:
        holder.close()
        await server.stop(grace=1)


# --- PostgreSQL --------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of this test's own, on a free port, that it may stop and start."""

    bin_dir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c fsync=off -c listen_addresses=127.0.0.1"
        cmd = [
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            *args,
        ]
        _as_postgres(cmd)


def _as_postgres(cmd: list[str]) -> None:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    if os.geteuid() == 0:
        cmd = ["su", "postgres", "-c", " ".join(f"'{c}'" for c in cmd)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture()
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no PostgreSQL binaries in CI: .ci/postgres.sh installs them")
        pytest.skip("no PostgreSQL binaries (initdb): run .ci/postgres.sh to install them")
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # the postgres user.
    root = Path(tempfile.mkdtemp(prefix="stratopt-pgfault-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    pg = PrivatePostgres(bin_dir, root, free_port())
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust"]
        _as_postgres([*initdb, "-U", "postgres", "--no-sync"])
        pg.ctl("start")
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg.ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
async def test_postgres_server_stopped_and_started(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    settings = fault_settings(
        tmp_path, database_url=private_postgres.url, health_interval_seconds=0.2
    )
    server, addr = await start(settings)
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            md = await login(ch)
            await assert_outage_then_recovery(
                ch,
                md,
                begin_outage=lambda: private_postgres.ctl("-m", "fast", "stop"),
                end_outage=lambda: private_postgres.ctl("start"),
            )
    finally:
        await server.stop(grace=1)
