"""Counts for the operator (Prometheus gauges, server/metrics.py), across all owners and every
replica sharing the database: unlike the overview, nothing here is scoped to a caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from stratopt.jobs.views import STATES
from stratopt.store import models
from stratopt.store.db import Database


@dataclass(frozen=True)
class OperationalCounts:
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    """Every job state, zero included, so a state that empties reads 0 rather than vanishing."""
    running_paper_runs: int = 0
    stored_backtests: int = 0


async def operational_counts(db: Database) -> OperationalCounts:
    J, R, B = models.Job, models.LiveRun, models.Backtest
    async with db.session() as s:
        rows = (await s.execute(select(J.state, func.count()).group_by(J.state))).all()
        running = (
            await s.execute(select(func.count()).select_from(R).where(R.status == "running"))
        ).scalar_one()
        backtests = (await s.execute(select(func.count()).select_from(B))).scalar_one()
    by_state = dict.fromkeys(STATES, 0)
    for state, count in rows:
        by_state[str(state)] = int(count)
    return OperationalCounts(by_state, int(running), int(backtests))
