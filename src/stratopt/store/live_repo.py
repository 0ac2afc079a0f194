"""Persistence of paper trading: feeds and their pushed bars, runs, events, notifications.

Invariants the live package relies on:
- A run's `state` and the events of the bars it includes are written in ONE transaction
  (`commit_progress`). After a crash, the run resumes from `last_bar_ts` and finds exactly
  the events of the bars before it: nothing recorded is lost and no bar is counted twice.
- Only the runner that holds a run writes it (`commit_progress`, `end_run` are fenced by
  `runner`, under the run row's lock): once another replica has claimed a run, its former
  runner, if it is still alive after all (slow, not dead), can neither append events nor
  move the state on. So what the new runner reads after its claim (`resume_point`) is
  final: the state and the numbering of the events agree, and stay so.
- Events are numbered per (strategy, kind) from 1 with no gap, across the strategy's runs,
  and (strategy_id, kind, sequence) is unique: a replica that raced another fails loudly.
- Notifications are numbered per user from 1; `add_notification` retries on a collision,
  so replicas may add concurrently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import FailedPrecondition
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.paging import Keyset, query_hash


@dataclass(frozen=True)
class EventRow:
    """An event to record: `payload` is JSON-safe; `sequence` is already assigned."""

    strategy_id: str
    run_id: str
    kind: str
    sequence: int
    ts: int
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class RunProgress:
    """A run's state after some bars, written together with those bars' events."""

    run_id: str
    state: Mapping[str, Any]
    bars_processed: int
    last_bar_ts: int
    equity: float


class LiveRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- feeds ---------------------------------------------------------------------------

    async def add_feed(self, feed: models.Feed) -> models.Feed:
        async with self.db.transaction() as s:
            s.add(feed)
        return feed

    async def get_feed(self, feed_id: str) -> models.Feed | None:
        return await self.db.get(models.Feed, feed_id)

    async def list_feeds(
        self, owner_id: str | None, requested: int, token: str
    ) -> tuple[list[models.Feed], str]:
        F = models.Feed
        stmt = select(F)
        if owner_id is not None:
            stmt = stmt.where(F.owner_id == owner_id)
        page = Keyset(F.created_at, F.id, requested, token, query_hash(feeds=owner_id))
        return await page.scan(self.db, stmt)

    async def delete_feed(self, feed_id: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(models.FeedBar).where(models.FeedBar.feed_id == feed_id))
            await s.execute(delete(models.Feed).where(models.Feed.id == feed_id))

    async def add_feed_bars(
        self,
        feed_id: str,
        bars: Sequence[tuple[str, int, float, float, float, float, float]],
        rejected: int,
    ) -> None:
        """Records accepted bars (symbol, ts, o, h, l, c, v) and the feed's counters."""
        newest = max((b[1] for b in bars), default=0)
        async with self.db.transaction() as s:
            if bars:
                s.add_all(
                    models.FeedBar(
                        feed_id=feed_id, symbol=sym, ts=ts, open=o, high=h, low=lo, close=c,
                        volume=v,
                    )
                    for sym, ts, o, h, lo, c, v in bars
                )  # fmt: skip
            await s.execute(
                update(models.Feed)
                .where(models.Feed.id == feed_id)
                .values(
                    bars_accepted=models.Feed.bars_accepted + len(bars),
                    bars_rejected=models.Feed.bars_rejected + rejected,
                    last_bar_ts=case(
                        (models.Feed.last_bar_ts < newest, newest), else_=models.Feed.last_bar_ts
                    ),
                )
            )

    async def feed_bars(
        self,
        feed_id: str,
        symbol: str,
        *,
        after_ts: int = 0,
        until_ts: int | None = None,
        last: int | None = None,
    ) -> list[tuple[int, float, float, float, float, float]]:
        """(ts, o, h, l, c, v) of one symbol, oldest first, after `after_ts` and up to
        `until_ts` included: all of them, or the last N."""
        B = models.FeedBar
        cols = (B.ts, B.open, B.high, B.low, B.close, B.volume)
        stmt = select(*cols).where(B.feed_id == feed_id, B.symbol == symbol, B.ts > after_ts)
        if until_ts is not None:
            stmt = stmt.where(B.ts <= until_ts)
        async with self.db.session() as s:
            if last is not None:
                rows = (await s.execute(stmt.order_by(B.ts.desc()).limit(last))).all()
                rows = list(reversed(rows))
            else:
                rows = (await s.execute(stmt.order_by(B.ts))).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    async def count_feed_bars(self, feed_id: str, symbol: str) -> int:
        B = models.FeedBar
        stmt = select(func.count()).where(B.feed_id == feed_id, B.symbol == symbol)
        async with self.db.session() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def mark_feed_finished(self, feed_id: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(
                update(models.Feed).where(models.Feed.id == feed_id).values(finished=True)
            )

    # -- runs ----------------------------------------------------------------------------

    async def add_run(self, run: models.LiveRun) -> models.LiveRun:
        """Records a new running run and marks its strategy running, in one transaction.

        Raises FailedPrecondition when the strategy is marked running already (a start
        racing another, possibly in another replica): the mark is set only if it was not.
        """
        async with self.db.transaction() as s:
            marked = await s.execute(
                update(models.Strategy)
                .where(
                    models.Strategy.id == run.strategy_id, models.Strategy.run_state != "running"
                )
                .values(run_state="running")
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                raise FailedPrecondition("this strategy is already running; stop it first")
            s.add(run)
        return run

    async def get_run(self, run_id: str) -> models.LiveRun | None:
        return await self.db.get(models.LiveRun, run_id)

    async def latest_run(self, strategy_id: str) -> models.LiveRun | None:
        R = models.LiveRun
        stmt = select(R).where(R.strategy_id == strategy_id).order_by(R.started_at.desc()).limit(1)
        async with self.db.session() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def claim_runs(self, runner: str, stale_before: datetime) -> list[models.LiveRun]:
        """Takes over the running runs that are this runner's already, or whose runner has
        not sent a heartbeat since `stale_before` (it died, or is too slow to tell).
        Compare-and-set per run, so two replicas never both take one.

        The rows are as read before the claim: their state may predate a last commit of
        the former runner. Resume from `resume_point`, read after the claim."""
        R = models.LiveRun
        stmt = select(R).where(
            R.status == "running",
            or_(R.runner == runner, R.heartbeat_at.is_(None), R.heartbeat_at < stale_before),
        )
        claimed: list[models.LiveRun] = []
        async with self.db.transaction() as s:
            for row in (await s.execute(stmt.order_by(R.started_at))).scalars():
                seen = (
                    R.heartbeat_at.is_(None)
                    if row.heartbeat_at is None
                    else (R.heartbeat_at == row.heartbeat_at)
                )
                taken = await s.execute(
                    update(R)
                    .where(R.id == row.id, R.runner == row.runner, seen, R.status == "running")
                    .values(runner=runner, heartbeat_at=models.utcnow())
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row)
        return claimed

    async def heartbeat(self, runner: str, run_ids: Sequence[str]) -> set[str]:
        """Says `runner` still runs these; returns the ids it still owns (others took the
        rest after a long silence, and this runner must let them go)."""
        if not run_ids:
            return set()
        R = models.LiveRun
        async with self.db.transaction() as s:
            await s.execute(
                update(R)
                .where(R.id.in_(run_ids), R.runner == runner, R.status == "running")
                .values(heartbeat_at=models.utcnow())
            )
            owned = await s.execute(select(R.id).where(R.id.in_(run_ids), R.runner == runner))
            return {str(i) for i in owned.scalars()}

    async def release(self, runner: str, run_ids: Sequence[str]) -> None:
        """A runner shutting down hands its runs to whoever starts first (no heartbeat)."""
        if not run_ids:
            return
        R = models.LiveRun
        async with self.db.transaction() as s:
            await s.execute(
                update(R).where(R.id.in_(run_ids), R.runner == runner).values(heartbeat_at=None)
            )

    async def running_runs(self, owner_id: str | None = None) -> list[models.LiveRun]:
        R = models.LiveRun
        stmt = select(R).where(R.status == "running")
        if owner_id is not None:
            stmt = stmt.where(R.owner_id == owner_id)
        async with self.db.session() as s:
            return list((await s.execute(stmt.order_by(R.started_at))).scalars())

    async def running_counts(self, feed_ids: Sequence[str]) -> dict[str, int]:
        """Runs recorded as running, per feed (feeds without any are left out)."""
        if not feed_ids:
            return {}
        R = models.LiveRun
        stmt = (
            select(R.feed_id, func.count())
            .where(R.status == "running", R.feed_id.in_(list(feed_ids)))
            .group_by(R.feed_id)
        )
        async with self.db.session() as s:
            return {feed_id: int(n) for feed_id, n in (await s.execute(stmt)).all()}

    async def commit_progress(
        self, runner: str, progress: Iterable[RunProgress], events: Iterable[EventRow]
    ) -> set[str]:
        """One transaction: the events of some bars and the run states that include them.

        Fenced: only the runs that `runner` still runs (status "running" and `runner` in
        their row, read under the row's lock) are written. Returns the ids of the others,
        none of whose events or state were written: another replica took them over after
        this runner's heartbeat went stale (or they ended), and the caller must let them go.
        Without the fence a runner that was slow rather than dead went on appending events
        after the takeover, ahead of the state the new runner had resumed from, and the new
        runner stored those signals again under new numbers.

        Three statements whatever the numbers: the fence (one SELECT ... FOR UPDATE), one
        multi-row INSERT of the events and one UPDATE by primary key executed for every run
        (executemany). The writer commits every few hundred milliseconds for every running
        strategy; row by row (an ORM object per event, an UPDATE per run) a commit of 100
        runs held the event loop for ~50 ms, delaying the bars and streams served by the
        same loop.
        """
        progress = list(progress)
        events = list(events)
        run_ids = {p.run_id for p in progress} | {e.run_id for e in events}
        if not run_ids:
            return set()
        R = models.LiveRun
        now = models.utcnow()
        async with self.db.transaction() as s:
            # The claim (`claim_runs`) updates the same rows: it waits for this commit, or
            # this fence waits for the claim and then no longer finds the run its own.
            held = set(
                (
                    await s.execute(
                        select(R.id)
                        .where(R.id.in_(run_ids), R.runner == runner, R.status == "running")
                        .order_by(R.id)
                        .with_for_update()
                    )
                ).scalars()
            )
            event_rows = [
                {
                    "strategy_id": e.strategy_id,
                    "run_id": e.run_id,
                    "kind": e.kind,
                    "sequence": e.sequence,
                    "ts": e.ts,
                    "payload": dict(e.payload),
                    "created_at": now,
                }
                for e in events
                if e.run_id in held
            ]
            run_rows = [
                {
                    "run_id": p.run_id,
                    "state": dict(p.state),
                    "bars_processed": p.bars_processed,
                    "last_bar_ts": p.last_bar_ts,
                    "equity": p.equity,
                }
                for p in progress
                if p.run_id in held
            ]
            if event_rows:
                await s.execute(insert(models.LiveEvent), event_rows)
            if run_rows:  # Core, not ORM bulk: one executemany
                runs = cast(Table, models.LiveRun.__table__)
                await s.execute(update(runs).where(runs.c.id == bindparam("run_id")), run_rows)
        return run_ids - held

    async def end_run(
        self, run_id: str, strategy_id: str, status: str, error: str = "", *, runner: str
    ) -> bool:
        """Marks a run stopped or failed, and its strategy with it, if `runner` still runs
        it (fenced like `commit_progress`); False when another replica has taken it over
        (or it had ended), and nothing was changed."""
        R = models.LiveRun
        async with self.db.transaction() as s:
            ended = await s.execute(
                update(R)
                .where(R.id == run_id, R.runner == runner, R.status == "running")
                .values(status=status, error=error[:2000], stopped_at=models.utcnow())
            )
            if ended.rowcount != 1:  # type: ignore[attr-defined]
                return False
            await s.execute(
                update(models.Strategy)
                .where(models.Strategy.id == strategy_id)
                .values(run_state="failed" if status == "failed" else "stopped")
            )
        return True

    # -- events --------------------------------------------------------------------------

    async def last_sequences(self, strategy_id: str) -> dict[str, int]:
        """The highest sequence recorded per kind, so a new run continues the numbering."""
        async with self.db.session() as s:
            return await _last_sequences(s, strategy_id)

    async def resume_point(
        self, run_id: str, runner: str
    ) -> tuple[models.LiveRun, dict[str, int]] | None:
        """What a run `runner` has claimed resumes from: its row as last committed (state,
        position) and the highest sequence recorded per kind. None when it is no longer
        this runner's running run.

        Read after the claim, not with it: a commit of the former runner that the claim
        had to wait for is in both (the state and its events are one transaction), and no
        commit of it can follow (`commit_progress` is fenced), so the two agree."""
        R = models.LiveRun
        stmt = select(R).where(R.id == run_id, R.runner == runner, R.status == "running")
        async with self.db.session() as s:
            row = (await s.execute(stmt)).scalar_one_or_none()
            if row is None:
                return None
            return row, await _last_sequences(s, row.strategy_id)

    async def events_after(
        self, strategy_id: str, kind: str, after: int, limit: int
    ) -> list[models.LiveEvent]:
        E = models.LiveEvent
        stmt = (
            select(E)
            .where(E.strategy_id == strategy_id, E.kind == kind, E.sequence > after)
            .order_by(E.sequence)
            .limit(limit)
        )
        async with self.db.session() as s:
            return list((await s.execute(stmt)).scalars())

    async def count_events_since(self, run_ids: Sequence[str], kind: str, since_ts: int) -> int:
        if not run_ids:
            return 0
        E = models.LiveEvent
        stmt = select(func.count()).where(E.run_id.in_(run_ids), E.kind == kind, E.ts >= since_ts)
        async with self.db.session() as s:
            return int((await s.execute(stmt)).scalar_one())

    # -- notifications -------------------------------------------------------------------

    async def add_notification(self, user_id: str, **fields: Any) -> models.Notification:
        """Appends with the next per-user sequence (retrying when another writer took it)."""
        N = models.Notification
        for _ in range(20):
            try:
                async with self.db.transaction() as s:
                    top = (
                        await s.execute(select(func.max(N.sequence)).where(N.user_id == user_id))
                    ).scalar_one()
                    row = N(user_id=user_id, sequence=int(top or 0) + 1, **fields)
                    s.add(row)
                return row
            except IntegrityError:
                continue
        raise RuntimeError("could not number a notification after 20 attempts")

    async def notifications_after(
        self, user_id: str, after: int, limit: int
    ) -> list[models.Notification]:
        N = models.Notification
        stmt = (
            select(N)
            .where(N.user_id == user_id, N.sequence > after)
            .order_by(N.sequence)
            .limit(limit)
        )
        async with self.db.session() as s:
            return list((await s.execute(stmt)).scalars())

    async def notifications_before(
        self, user_id: str, before: int | None, limit: int
    ) -> list[models.Notification]:
        """Newest first, those below sequence `before` (None: from the newest)."""
        N = models.Notification
        stmt = select(N).where(N.user_id == user_id)
        if before is not None:
            stmt = stmt.where(N.sequence < before)
        async with self.db.session() as s:
            return list((await s.execute(stmt.order_by(N.sequence.desc()).limit(limit))).scalars())

    async def last_notification(self, user_id: str) -> int:
        N = models.Notification
        async with self.db.session() as s:
            top = (
                await s.execute(select(func.max(N.sequence)).where(N.user_id == user_id))
            ).scalar_one()
        return int(top or 0)

    # -- webhooks ------------------------------------------------------------------------

    async def add_webhook(self, hook: models.Webhook) -> models.Webhook:
        async with self.db.transaction() as s:
            s.add(hook)
        return hook

    async def webhooks(self, owner_id: str) -> list[models.Webhook]:
        W = models.Webhook
        stmt = select(W).where(W.owner_id == owner_id).order_by(W.created_at, W.id)
        async with self.db.session() as s:
            return list((await s.execute(stmt)).scalars())

    async def get_webhook(self, webhook_id: str) -> models.Webhook | None:
        return await self.db.get(models.Webhook, webhook_id)

    async def delete_webhook(self, webhook_id: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(models.Webhook).where(models.Webhook.id == webhook_id))

    async def record_delivery(self, webhook_id: str, ok: bool, error: str = "") -> None:
        W = models.Webhook
        values: dict[str, Any] = (
            {"delivered_count": W.delivered_count + 1, "last_error": ""}
            if ok
            else {"failed_count": W.failed_count + 1, "last_error": error[:500]}
        )
        async with self.db.transaction() as s:
            await s.execute(update(W).where(W.id == webhook_id).values(**values))


async def _last_sequences(s: AsyncSession, strategy_id: str) -> dict[str, int]:
    E = models.LiveEvent
    stmt = select(E.kind, func.max(E.sequence)).where(E.strategy_id == strategy_id).group_by(E.kind)
    return {kind: int(seq) for kind, seq in (await s.execute(stmt)).all()}
