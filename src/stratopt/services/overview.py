"""The dashboard overview: what the caller can see, counted, and the state of the server.

Paper-trading figures cover the caller's running strategies (everyone's for admins):
`trades_today` counts their fills recorded since 00:00 UTC (by when the fill was recorded,
not by its bar's time, so a replay of old bars counts today's trading), and
`paper_portfolio_value` sums their latest persisted equity. `open_stream_count` is the
server streams open on this replica, counted by the stream-cap interceptor's limiter
(`OpenStreams`): the caller's, or everyone's for admins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select

from stratopt import __version__
from stratopt.jobs.views import QUEUED, RUNNING
from stratopt.security.principal import Principal
from stratopt.services.access import dataset_owner_scope, owner_scope
from stratopt.store import models
from stratopt.store.db import Database


@dataclass(frozen=True)
class Overview:
    version: str
    uptime_s: float
    strategy_count: int
    running_strategy_count: int
    dataset_count: int
    backtest_count: int
    queued_job_count: int
    running_job_count: int
    engine_ready: bool
    database_backend: str
    server_time: datetime
    trades_today: int = 0
    paper_portfolio_value: float = 0.0
    open_stream_count: int = 0


class OpenStreams(Protocol):
    """Read-only view of the server streams open on this replica (what the stream-cap
    interceptor holds: `security.ratelimit.ConcurrencyLimiter`)."""

    def in_use(self, principal: str) -> int: ...

    def total_in_use(self) -> int: ...


class SystemOverview:
    def __init__(
        self,
        db: Database,
        started_at: float,
        engine_ready: Callable[[], bool],
        streams: OpenStreams | None = None,
    ) -> None:
        self.db = db
        self.started_at = started_at
        self.engine_ready = engine_ready
        self.streams = streams

    async def get(self, principal: Principal) -> Overview:
        """Counts of what the caller owns (everything for admins); datasets include the
        public samples. Strategies shared with the caller are not counted."""
        S, D, B, J = models.Strategy, models.Dataset, models.Backtest, models.Job
        R, E = models.LiveRun, models.LiveEvent
        owner = owner_scope(principal)

        def count(model: Any, *where: Any) -> Any:
            stmt = select(func.count()).select_from(model).where(*where)
            return stmt if owner is None else stmt.where(model.owner_id == owner)

        datasets = select(func.count()).select_from(D)
        if (owners := dataset_owner_scope(principal)) is not None:
            datasets = datasets.where(D.owner_id.in_(owners))
        async with self.db.session() as s:

            async def scalar(stmt: Any) -> int:
                return int((await s.execute(stmt)).scalar_one())

            strategies = await scalar(count(S))
            running = await scalar(count(S, S.run_state == "running"))
            dataset_count = await scalar(datasets)
            backtests = await scalar(count(B))
            queued = await scalar(count(J, J.state == QUEUED))
            active = await scalar(count(J, J.state == RUNNING))
            live = select(func.coalesce(func.sum(R.equity), 0.0)).where(R.status == "running")
            fills = (
                select(func.count())
                .select_from(E)
                .join(R, E.run_id == R.id)
                .where(R.status == "running", E.kind == "fill", E.created_at >= _midnight_utc())
            )
            if owner is not None:
                live = live.where(R.owner_id == owner)
                fills = fills.where(R.owner_id == owner)
            portfolio = float((await s.execute(live)).scalar_one() or 0.0)
            trades_today = await scalar(fills)
        return Overview(
            version=__version__,
            uptime_s=time.time() - self.started_at,
            strategy_count=strategies,
            running_strategy_count=running,
            dataset_count=dataset_count,
            backtest_count=backtests,
            queued_job_count=queued,
            running_job_count=active,
            engine_ready=self.engine_ready(),
            database_backend=self.db.backend,
            server_time=datetime.now(UTC),
            trades_today=trades_today,
            paper_portfolio_value=portfolio,
            open_stream_count=self._open_streams(owner),
        )

    def _open_streams(self, owner: str | None) -> int:
        if self.streams is None:
            return 0
        return self.streams.total_in_use() if owner is None else self.streams.in_use(owner)


def _midnight_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
