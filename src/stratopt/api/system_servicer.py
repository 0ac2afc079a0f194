"""SystemService: overview figures for dashboards."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import duration_pb2
from sqlalchemy import func, or_, select

from stratopt import __version__
from stratopt.api.context import current_principal
from stratopt.api.convert import ts_to_pb
from stratopt.store import models
from stratopt.v1 import system_pb2 as pb
from stratopt.v1 import system_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


class SystemServicer(pbg.SystemServiceServicer):
    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    async def GetOverview(
        self, request: pb.GetOverviewRequest, context: Ctx
    ) -> pb.GetOverviewResponse:
        p = current_principal()
        S, D, B = models.Strategy, models.Dataset, models.Backtest

        def mine(q: Any, owner: Any, *, shared_samples: bool = False) -> Any:
            if p.is_admin:
                return q
            return (
                q.where(or_(owner == p.user_id, owner == ""))
                if shared_samples
                else q.where(owner == p.user_id)
            )

        async with self.rt.db.session() as s:
            strategies = (
                await s.execute(mine(select(func.count()).select_from(S), S.owner_id))
            ).scalar_one()
            running = (
                await s.execute(
                    mine(
                        select(func.count()).select_from(S).where(S.run_state == "running"),
                        S.owner_id,
                    )
                )
            ).scalar_one()
            datasets = (
                await s.execute(
                    mine(select(func.count()).select_from(D), D.owner_id, shared_samples=True)
                )
            ).scalar_one()
            backtests = (
                await s.execute(mine(select(func.count()).select_from(B), B.owner_id))
            ).scalar_one()
        queued, active = await self._job_counts(p)
        uptime = time.time() - self.rt.started_at
        return pb.GetOverviewResponse(
            version=__version__,
            uptime=duration_pb2.Duration(seconds=int(uptime)),
            strategy_count=strategies,
            running_strategy_count=running,
            dataset_count=datasets,
            backtest_count=backtests,
            queued_job_count=queued,
            running_job_count=active,
            engine_ready=self.rt.engine_ready,
            database_backend=self.rt.db.backend,
            server_time=ts_to_pb(datetime.now(UTC)),
        )

    async def _job_counts(self, p: Any) -> tuple[int, int]:
        counter = getattr(self.rt, "job_counts", None)
        if counter is None:
            return 0, 0
        queued, running = await counter(p)
        return int(queued), int(running)
