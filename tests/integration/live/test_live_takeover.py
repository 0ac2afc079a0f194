"""Takeovers between replicas, interleaved on purpose: two LiveManagers on one database.

A run whose runner's heartbeat goes stale is claimed by another replica and resumed from
its last commit. The runner may be slow rather than dead (a stalled event loop, a busy
database): it then still commits for a moment after the claim. These tests pin that
moment instead of waiting for it to happen under load (which is how the replicas test in
test_live_replicas.py failed once: the resumed run stored the last two signals of its
former runner again, under new sequence numbers). Each injects the interleaving at the
repository call where it matters, on a SQLite file and, when there is one, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from stratopt.data.bars import Bars
from stratopt.live import manager as manager_module
from stratopt.live.manager import LiveManager
from stratopt.live.runner import StrategyRun
from stratopt.store import migrate, models
from stratopt.store.db import Database
from stratopt.store.live_repo import EventRow, LiveRepo, RunProgress
from tests.integration.jobs.test_postgres_scaleout import database, postgres_url
from tests.unit.live._replay import SYMBOL, live_bars, spec, synthetic

_ = (database, postgres_url)  # the PostgreSQL fixture shared with the jobs scale-out test

BARS = 400
# Paced, so that a takeover lands mid-run: 2 s for the whole replay.
RATE = 200


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    # A database of its own on the PostgreSQL of .ci/postgres.sh (skipped without it).
    return str(request.getfixturevalue("database"))


@pytest.fixture()
async def dbs(url: str) -> AsyncIterator[tuple[Database, Database]]:
    """One database, as two replicas see it: an engine each."""
    first, second = Database(url), Database(url)
    await migrate.upgrade(first)
    async with first.transaction() as s:
        s.add(models.User(id="u", username="u", role="trader", password_hash="x"))
        await s.flush()
        s.add(
            models.Strategy(
                id="a", owner_id="u", name="a", name_key="a", strategy_type="roc_momentum",
                category="momentum", risk_level="medium", status="active",
            )
        )  # fmt: skip
    yield first, second
    for db in (first, second):
        await db.dispose()


async def add_feed(repo: LiveRepo, bars: Bars, rate: float = RATE) -> models.Feed:
    return await repo.add_feed(
        models.Feed(
            id="f", owner_id="u", kind="replay", symbols=[SYMBOL], timeframe="1h",
            dataset_id="d", start_ts=int(bars.ts[0]), bars_per_second=rate,
        )
    )  # fmt: skip


def uninterrupted(bars: Bars, feed: models.Feed) -> tuple[list[Any], list[Any]]:
    """The signals and fills of the run over every bar, computed in one go."""
    s = spec("a", feed)
    run = StrategyRun(s.signal(), s.execution.resolved(), SYMBOL)
    results = [run.step(bar) for bar in live_bars(bars)]
    signals = [(r.ts, r.signal.bar_index, r.signal.target) for r in results if r.signal]
    fills = [(r.ts, f.kind, f.side, f.bar_index) for r in results for f in r.fills]
    return signals, fills


async def recorded(repo: LiveRepo) -> tuple[list[Any], list[Any]]:
    """The stored signals and fills, after checking they are numbered 1, 2, 3, ..."""
    signals = await repo.events_after("a", "signal", 0, 100_000)
    fills = await repo.events_after("a", "fill", 0, 100_000)
    for events in (signals, fills):
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    return (
        [(e.ts, e.payload["bar_index"], e.payload["target"]) for e in signals],
        [(e.ts, e.payload["kind"], e.payload["side"], e.payload["bar_index"]) for e in fills],
    )


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.01)


async def until_ended(repo: LiveRepo, timeout: float = 30.0) -> models.LiveRun:
    deadline = asyncio.get_running_loop().time() + timeout
    while (row := await repo.latest_run("a")) is None or row.status == "running":
        assert asyncio.get_running_loop().time() < deadline, "the run never ended"
        await asyncio.sleep(0.02)
    return row


async def go_silent(db: Database) -> None:
    """The runner's heartbeat is older than RUNNER_STALE_S, as after a long stall."""
    async with db.transaction() as s:
        await s.execute(
            update(models.LiveRun)
            .where(models.LiveRun.strategy_id == "a")
            .values(heartbeat_at=models.utcnow() - timedelta(hours=1))
        )


async def crash(manager: LiveManager) -> None:
    """What SIGKILL leaves of a server: its tasks stop where they are, nothing is flushed."""
    tasks = [*manager._replays, manager._writer, manager._watchdog, manager._heartbeats]
    for task in tasks:
        if task is not None:
            task.cancel()
    for task in tasks:
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@pytest.fixture(autouse=True)
def no_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claims happen where the tests call them (LiveManager.start), not on a timer."""
    monkeypatch.setattr(manager_module, "HEARTBEAT_S", 3600.0)


@dataclass
class Replicas:
    """Replica A and replica B on the two connections of `dbs`, a paced feed stored by A,
    and `want`: what the run records when nothing interrupts it."""

    repo_a: LiveRepo
    repo_b: LiveRepo
    a: LiveManager
    b: LiveManager
    feed: models.Feed
    want: tuple[list[Any], list[Any]]


async def replicas(dbs: tuple[Database, Database]) -> Replicas:
    bars = synthetic(BARS)
    repo_a, repo_b = LiveRepo(dbs[0]), LiveRepo(dbs[1])
    a = LiveManager(repo_a, lambda _: bars, commit_interval=0.05, runner="replica-a")
    b = LiveManager(repo_b, lambda _: bars, commit_interval=0.05, runner="replica-b")
    feed = await add_feed(repo_a, bars)
    # Computed first, which also compiles the kernel: a cold compile inside the paced
    # replay would let every bar fall due at once, and the run end before any takeover.
    want = uninterrupted(bars, feed)
    return Replicas(repo_a, repo_b, a, b, feed, want)


async def test_a_commit_of_the_former_runner_racing_the_claim_is_not_traded_again(
    dbs: tuple[Database, Database],
) -> None:
    """A commits once more right after B claimed its run, then dies.

    B resumed from the state it read with the claim but numbered its events after those
    stored when it got to reading them: the signals of A's last commit came again under
    new numbers. Now A's late commit is refused (fenced: the run is no longer A's), and B
    resumes from what it reads after the claim; the record is the uninterrupted run's.
    """
    r = await replicas(dbs)
    repo_a, repo_b, a, b, feed, want = r.repo_a, r.repo_b, r.a, r.b, r.feed, r.want

    claimed = asyncio.Event()
    a_committed_after_claim = asyncio.Event()
    commit = repo_a.commit_progress

    async def commit_and_tell(*args: Any, **kwargs: Any) -> Any:
        refused = await commit(*args, **kwargs)
        rows = kwargs.get("events", args[-1])
        if claimed.is_set() and (refused or any(e.kind == "signal" for e in rows)):
            a_committed_after_claim.set()
        return refused

    repo_a.commit_progress = commit_and_tell  # type: ignore[method-assign]
    claim = repo_b.claim_runs

    async def claim_then_let_a_commit_then_kill_it(*args: Any) -> list[models.LiveRun]:
        rows = await claim(*args)
        if rows:
            claimed.set()
            await asyncio.wait_for(a_committed_after_claim.wait(), 10)
            await crash(a)
        return rows

    repo_b.claim_runs = claim_then_let_a_commit_then_kill_it  # type: ignore[method-assign]
    await a.start()
    try:
        await a.start_run(spec("a", feed), feed)
        await until(lambda: a.runs["a"].run.bars_processed >= 60, "60 bars traded by A")
        await go_silent(dbs[0])
        await b.start()
        assert claimed.is_set() and "a" in b.runs
        row = await until_ended(repo_b)
        assert (row.status, row.runner, row.bars_processed) == ("stopped", "replica-b", BARS)
        assert await recorded(repo_b) == want
    finally:
        await crash(a)
        await b.close()


async def test_a_runner_that_was_only_slow_lets_the_run_go_at_its_next_commit(
    dbs: tuple[Database, Database],
) -> None:
    """A is alive and goes on trading after B took its run over (A never noticed).

    Its commits went on landing beside B's: the same numbers twice (B's writer stuck on the
    unique constraint) or numbers B had skipped. Now A's first commit after the claim is
    refused, A lets the run go (its streams end, to resume on B), and B alone records it.
    """
    r = await replicas(dbs)
    repo_b, a, b, feed, want = r.repo_b, r.a, r.b, r.feed, r.want
    await a.start()
    try:
        await a.start_run(spec("a", feed), feed)
        await until(lambda: a.runs["a"].run.bars_processed >= 60, "60 bars traded by A")
        await go_silent(dbs[0])
        await b.start()
        assert "a" in b.runs
        await until(lambda: "a" not in a.runs, "A letting the run go", timeout=5)
        assert a.feeds == {}  # its replay stopped with its last run
        row = await until_ended(repo_b)
        assert (row.status, row.runner, row.bars_processed) == ("stopped", "replica-b", BARS)
        assert await recorded(repo_b) == want
    finally:
        await a.close()
        await b.close()


async def test_writes_of_a_runner_that_lost_its_run_are_refused(
    dbs: tuple[Database, Database],
) -> None:
    repo = LiveRepo(dbs[0])
    bars = synthetic(10)
    feed = await add_feed(repo, bars)
    run = await repo.add_run(
        models.LiveRun(
            strategy_id="a", owner_id="u", feed_id=feed.id, symbol=SYMBOL, status="running",
            spec=spec("a", feed).to_json(), state={}, runner="replica-a",
            heartbeat_at=models.utcnow() - timedelta(hours=1),
        )
    )  # fmt: skip
    assert [r.id for r in await repo.claim_runs("replica-b", models.utcnow())] == [run.id]
    late = EventRow("a", run.id, "signal", 1, 1, {"late": True})
    progress = RunProgress(run.id, {"late": True}, 5, 5, 1.0)
    assert await repo.commit_progress("replica-a", [progress], [late]) == {run.id}
    assert not await repo.end_run(run.id, "a", "stopped", runner="replica-a")
    point = await repo.resume_point(run.id, "replica-b")
    assert point is not None
    row, last = point
    assert (row.status, row.state, row.bars_processed, last) == ("running", {}, 0, {})
    assert await repo.resume_point(run.id, "replica-a") is None
    # The runner that holds it writes as before.
    assert await repo.commit_progress("replica-b", [progress], [late]) == set()
    assert await repo.end_run(run.id, "a", "stopped", runner="replica-b")
    assert await repo.last_sequences("a") == {"signal": 1}


async def test_a_run_started_while_a_heartbeat_is_under_way_is_not_let_go(
    dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat asked about the runs it had; one started meanwhile was not among
    those still owned, so it was taken for one another server had taken over: let go,
    then resumed here again (its unwritten events, the "started" alert, dropped)."""
    monkeypatch.setattr(manager_module, "HEARTBEAT_S", 0.01)
    bars = synthetic(BARS)
    repo = LiveRepo(dbs[0])
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="replica-a")
    feed = await add_feed(repo, bars)
    heartbeat = repo.heartbeat
    beats = 0
    starts: list[asyncio.Task[str]] = []

    async def start_during_the_first(runner: str, run_ids: Any) -> set[str]:
        nonlocal beats
        beats += 1
        if beats == 1:
            assert list(run_ids) == []
            starts.append(asyncio.create_task(manager.start_run(spec("a", feed), feed)))
            await until(lambda: "a" in manager.runs, "the run attached")
        return await heartbeat(runner, run_ids)

    repo.heartbeat = start_during_the_first  # type: ignore[method-assign]
    await manager.start()
    try:
        await until(lambda: "a" in manager.runs, "the run attached")
        handle = manager.runs["a"]
        await until(lambda: beats >= 5, "five heartbeats")
        assert manager.runs.get("a") is handle
        await starts[0]
    finally:
        await manager.close()
    alerts = await repo.events_after("a", "alert", 0, 100)
    assert [e.payload["message"] for e in alerts][:1] == ["A started on SYN."]


async def test_a_run_is_not_resumed_while_its_end_is_being_recorded(
    dbs: tuple[Database, Database],
) -> None:
    """The heartbeat's claim (its own runs, not running here) landed between the run
    leaving this server and its end being recorded: the run was resumed for a second life
    (the end of the replay announced twice, or a stopped run trading on)."""
    bars = synthetic(BARS)
    repo = LiveRepo(dbs[0])
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="replica-a")
    feed = await add_feed(repo, bars, rate=0)
    end_run = repo.end_run
    claims: list[int] = []

    async def claim_first(*args: Any, **kwargs: Any) -> Any:
        if not claims:
            await manager._resume_claimed()
            claims.append(len(manager.runs))
        return await end_run(*args, **kwargs)

    repo.end_run = claim_first  # type: ignore[method-assign]
    await manager.start()
    try:
        await manager.start_run(spec("a", feed), feed)
        row = await until_ended(repo)
        await until(lambda: not manager.runs, "the run gone")
        assert (row.status, row.bars_processed) == ("stopped", BARS)
    finally:
        await manager.close()
    alerts = await repo.events_after("a", "alert", 0, 100)
    finished = [e for e in alerts if "end of its dataset" in e.payload["message"]]
    assert len(finished) == 1
    assert claims == [1]  # the run was still here while its end was recorded


async def test_a_run_is_not_resumed_while_it_is_being_started(
    dbs: tuple[Database, Database],
) -> None:
    """The heartbeat's claim (its own runs, not running here) landed between a starting
    run's row being recorded and the run being attached: it resumed the run for a second
    life beside the first. One of the two was left in the manager after the replay ended,
    so the strategy read as running for ever (seen once in CI with 20 replays starting)."""
    bars = synthetic(BARS)
    repo = LiveRepo(dbs[0])
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="replica-a")
    feed = await add_feed(repo, bars, rate=0)
    add_run = repo.add_run
    claims: list[int] = []

    async def recorded_then_claim(*args: Any, **kwargs: Any) -> Any:
        row = await add_run(*args, **kwargs)
        await manager._resume_claimed()
        claims.append(len(manager.runs))
        return row

    repo.add_run = recorded_then_claim  # type: ignore[method-assign]
    await manager.start()
    try:
        await manager.start_run(spec("a", feed), feed)
        row = await until_ended(repo)
        await until(lambda: not manager.runs, "the run gone")
        assert (row.status, row.bars_processed) == ("stopped", BARS)
    finally:
        await manager.close()
    assert claims == [0]  # the claim left the starting run alone
    alerts = await repo.events_after("a", "alert", 0, 100)
    messages = [e.payload["message"] for e in alerts]
    assert messages.count("A started on SYN.") == 1
    assert len([m for m in messages if "end of its dataset" in m]) == 1
    assert await recorded(repo) == uninterrupted(bars, feed)


@pytest.mark.parametrize("failing", ["commit_progress", "end_run"])
async def test_a_run_whose_end_fails_to_be_written_still_ends(
    dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The database refused the writes that end a run (locked past the busy timeout on a
    loaded machine, or away for a moment). A failed last flush left the run here, unhooked
    and recorded as running: it read as running for ever (seen once in CI, a replay "still
    running" 60 s after the others ended). The end is now written once the database
    takes it again."""
    monkeypatch.setattr(manager_module, "END_RETRY_S", 0.05)
    bars = synthetic(BARS)
    repo = LiveRepo(dbs[0])
    # No timed commits: the writes that fail are the ones that end the run.
    manager = LiveManager(repo, lambda _: bars, commit_interval=3600.0, runner="replica-a")
    feed = await add_feed(repo, bars, rate=0)
    refusals = 0
    finished = repo.mark_feed_finished
    real = getattr(repo, failing)

    async def finished_then_refuse(*args: Any, **kwargs: Any) -> Any:
        nonlocal refusals
        refusals = 3  # the database is away for the next three writes of the end
        return await finished(*args, **kwargs)

    async def refused_while_away(*args: Any, **kwargs: Any) -> Any:
        nonlocal refusals
        if refusals > 0:
            refusals -= 1
            raise OSError("database is locked")
        return await real(*args, **kwargs)

    repo.mark_feed_finished = finished_then_refuse  # type: ignore[method-assign]
    setattr(repo, failing, refused_while_away)
    await manager.start()
    try:
        await manager.start_run(spec("a", feed), feed)
        row = await until_ended(repo)
        await until(lambda: not manager.runs, "the run gone")
        assert (row.status, row.bars_processed) == ("stopped", BARS)
        assert refusals == 0, "the writes were refused as planned"
    finally:
        await manager.close()
    assert await recorded(repo) == uninterrupted(bars, feed)


async def test_shutdown_during_a_heartbeat_still_commits_the_last_progress(
    dbs: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() cancels the heartbeat; cancelled while its transaction was in SQLite, the
    beat kept the write lock, and the final flush failed "database is locked" (a CI run
    caught it). A beat under way now completes, and the flush commits after it."""
    monkeypatch.setattr(manager_module, "HEARTBEAT_S", 0.01)
    bars = synthetic(BARS)
    repo = LiveRepo(dbs[0])
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="replica-a")
    feed = await add_feed(repo, bars)
    heartbeat = repo.heartbeat
    in_beat = asyncio.Event()

    async def slow_heartbeat(runner: str, run_ids: Any) -> set[str]:
        if not run_ids:
            return await heartbeat(runner, run_ids)
        async with dbs[0].transaction() as s:  # holds the write lock while SQLite counts
            await s.execute(update(models.LiveRun).values(heartbeat_at=models.utcnow()))
            in_beat.set()
            await s.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < 3000000) SELECT count(*) FROM n"
                )
            )
        return await heartbeat(runner, run_ids)

    repo.heartbeat = slow_heartbeat  # type: ignore[method-assign]
    await manager.start()
    await manager.start_run(spec("a", feed), feed)
    await asyncio.wait_for(in_beat.wait(), 10)
    await asyncio.sleep(0.05)  # the count is under way in aiosqlite's thread
    bars_here = manager.runs["a"].run.bars_processed
    await manager.close()  # raised "database is locked" before
    row = await repo.latest_run("a")
    assert row is not None and row.status == "running"
    assert row.bars_processed >= bars_here
