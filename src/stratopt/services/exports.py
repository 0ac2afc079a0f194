"""Export files: Pine Script and reports, written under the data folder and listed per owner.

Every file expires (`ttl` per request, else the server's `export_ttl_hours`). Expiry is
checked on every read, so an expired export is gone for Get, List and Download at once;
`sweep()` (a background task, `export_sweep_seconds`) then deletes the rows and the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from stratopt.data.atomic import write_atomic
from stratopt.engine.options import ExecutionOptions
from stratopt.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unimplemented,
)
from stratopt.export.pine import Provenance, period_text, pine_script
from stratopt.security.principal import Principal
from stratopt.security.roles import EXPORT_REPORTS_ONLY_ROLES
from stratopt.services.access import Access, load_strategy, owner_scope, require_owner
from stratopt.services.backtests import BacktestCatalog
from stratopt.services.optimization_jobs import OptimizationJobs
from stratopt.services.type_resolution import resolve, resolve_in
from stratopt.services.validation import ENSEMBLE_TYPE
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id, utcnow
from stratopt.store.paging import (
    Keyset,
    query_hash,
)
from stratopt.strategies.base import StrategyType

BestParams = Callable[
    [Principal, str], Awaitable[tuple[StrategyType, dict[str, Any], ExecutionOptions, Provenance]]
]
"""(principal, job_id) -> (strategy type, best parameters, execution, provenance), from the
job system."""

Notify = Callable[[str, str, str, str, str, str], Awaitable[object]]
"""(user_id, kind, severity, title, message, resource): see live.notify.Notifier.notify."""

CONTENT_TYPES = {
    "pine": ("text/plain; charset=utf-8", "pine"),
    "json": ("application/json", "json"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "html": ("text/html; charset=utf-8", "html"),
    "pdf": ("application/pdf", "pdf"),
}
REPORT_FORMATS = ("json", "csv", "html", "pdf")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
DEFAULT_TTL = timedelta(hours=24)
MIN_TTL = timedelta(seconds=1)
EXPORT_MAX_TTL = timedelta(days=90)
log = logging.getLogger("stratopt.services.exports")


def check_ttl(ttl: timedelta | None, field: str = "ttl") -> None:
    """A requested lifetime must lie in [1 s, 90 days]; None means the server default."""
    if ttl is not None and not MIN_TTL <= ttl <= EXPORT_MAX_TTL:
        raise InvalidArgument.field(field, "must be between 1 second and 90 days")


class ExportCatalog:
    def __init__(
        self,
        db: Database,
        root: Path,
        backtests: BacktestCatalog,
        *,
        default_ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        if not MIN_TTL <= default_ttl <= EXPORT_MAX_TTL:
            raise ValueError("export_ttl_hours must lie between 1 second and 90 days")
        self.db = db
        self.root = root
        self.backtests = backtests
        self.default_ttl = default_ttl
        self.best_params: BestParams | None = None
        # Job reports read results and trials through it (wired by the server).
        self.jobs: OptimizationJobs | None = None
        # Tells the owner a file is ready (wired to live.notify.Notifier.notify).
        self.notify: Notify | None = None

    async def pine(
        self,
        principal: Principal,
        *,
        strategy_id: str,
        job_id: str,
        strategy_type: str,
        parameters: Mapping[str, Any],
        title: str,
        include_execution: bool,
        ttl: timedelta | None = None,
    ) -> tuple[str, models.ExportFile]:
        if principal.role in EXPORT_REPORTS_ONLY_ROLES:
            raise PermissionDenied("your role may export reports, not Pine Script")
        check_ttl(ttl)
        given = [
            n
            for n, v in (
                ("strategy_id", strategy_id),
                ("job_id", job_id),
                ("strategy_type", strategy_type),
            )
            if v
        ]
        if len(given) != 1:
            raise InvalidArgument.field(
                "strategy_id", "give exactly one of strategy_id, job_id, strategy_type"
            )
        execution = ExecutionOptions()
        stype: StrategyType | None = None
        if strategy_id:
            async with self.db.session() as s:
                strat = await load_strategy(s, principal, strategy_id, Access.READ)
                if strat.strategy_type == ENSEMBLE_TYPE:
                    raise FailedPrecondition("ensembles cannot be exported to Pine Script yet")
                try:
                    # A user type as the strategy's owner sees it (type_resolution.py).
                    stype = (await resolve_in(s, strat.strategy_type, user_id=strat.owner_id)).stype
                except KeyError:
                    raise FailedPrecondition(
                        f"the strategy's type {strat.strategy_type!r} is no longer available"
                    ) from None
            stype_name, params, execution = (
                strat.strategy_type,
                dict(strat.parameters),
                ExecutionOptions.from_dict(strat.execution),
            )
            title = title or strat.name
            source = f"strategies/{strat.id}"
            provenance = await self._strategy_provenance(principal, strat, stype)
        elif job_id:
            if self.best_params is None:
                raise Unimplemented("optimization jobs are not available in this server")
            stype, params, execution, provenance = await self.best_params(principal, job_id)
            stype_name = stype.name
            source = f"jobs/{job_id}"
        else:
            stype_name, params, source = (
                strategy_type,
                dict(parameters),
                f"strategyTypes/{strategy_type}",
            )
            provenance = Provenance(
                source=source, note="Not from a stored backtest: default execution options."
            )
        try:
            if stype is None:
                stype = (
                    await resolve(
                        self.db, stype_name, user_id=principal.user_id, is_admin=principal.is_admin
                    )
                ).stype
        except KeyError:
            raise InvalidArgument.field(
                "strategy_type", f"unknown strategy type {stype_name!r}"
            ) from None
        problems = stype.validate(params)
        if problems:
            raise InvalidArgument.of(FieldViolation(v.field, v.description) for v in problems)
        title = (title or stype.display_name)[:100]
        script = pine_script(
            stype,
            params,
            execution,
            title,
            include_execution=include_execution,
            provenance=provenance,
        )
        row = await self._store(
            principal, "pine_script", f"{title}.pine", "pine", script.encode(), source, ttl
        )
        return script, row

    async def _strategy_provenance(
        self, principal: Principal, strat: models.Strategy, stype: StrategyType
    ) -> Provenance:
        """The strategy's latest backtest that the caller may see and that ran its current
        parameters and execution options: its data, period and metrics."""
        B = models.Backtest
        stmt = select(B).where(B.strategy_id == strat.id)
        if (owner := owner_scope(principal)) is not None:
            stmt = stmt.where(B.owner_id == owner)
        stmt = stmt.order_by(B.created_at.desc(), B.id.desc()).limit(20)
        async with self.db.session() as s:
            recent = list((await s.execute(stmt)).scalars())
        try:
            params = stype.resolve(strat.parameters)
        except (KeyError, ValueError):
            params = dict(strat.parameters)
        runs = _trade_settings(ExecutionOptions.from_dict(strat.execution))
        bt = next(
            (
                b
                for b in recent
                if b.parameters == params
                and _trade_settings(ExecutionOptions.from_dict(b.execution)) == runs
            ),
            None,
        )
        if bt is None:
            return Provenance(
                source=f"strategies/{strat.id}",
                strategy=strat.name,
                note="No backtest of these parameters and options on record.",
            )
        metrics = {k: v for k, v in (bt.metrics or {}).items() if isinstance(v, int | float)}
        return Provenance(
            source=f"strategies/{strat.id}",
            strategy=strat.name,
            dataset=f"datasets/{bt.dataset_id}" + (f" ({bt.timeframe})" if bt.timeframe else ""),
            period=period_text(bt.start_ts, bt.end_ts),
            metrics=metrics,
            note=f"Metrics of backtests/{bt.id} ({bt.bar_count:,} bars).",
        )

    async def report(
        self,
        principal: Principal,
        *,
        backtest_id: str,
        job_id: str,
        fmt: str,
        charts: bool,
        ttl: timedelta | None = None,
        table: str = "",
    ) -> models.ExportFile:
        """`table` picks a CSV's rows: "" (a backtest's trades, a job's trials), "trades",
        "equity" (backtests) or "trials" (jobs)."""
        check_ttl(ttl)
        if bool(backtest_id) == bool(job_id):
            raise InvalidArgument.field("backtest_id", "give exactly one of backtest_id, job_id")
        if fmt not in REPORT_FORMATS:
            raise InvalidArgument.field("format", "JSON, CSV, HTML or PDF")
        allowed = ("", "trades", "equity") if backtest_id else ("", "trials")
        if table and fmt != "csv":
            raise InvalidArgument.field("csv_table", "only for CSV reports")
        if table not in allowed:
            what = "TRADES or EQUITY for a backtest" if backtest_id else "TRIALS for a job"
            raise InvalidArgument.field("csv_table", what)
        # Imported here: matplotlib loads with the first report, not with every server.
        from stratopt.export.job_reports import render_job
        from stratopt.export.reports import render_backtest
        from stratopt.services.report_sources import backtest_report, job_report, rendered

        # Gather with the caller's rights (another user's backtest or job is NOT_FOUND),
        # then render off the event loop: charts and PDF are CPU-bound.
        if backtest_id:
            bt = await backtest_report(self.backtests, principal, backtest_id)
            data = await rendered(lambda: render_backtest(bt, fmt, charts=charts, table=table))
            name = f"backtest-{backtest_id}" + ("-equity" if table == "equity" else "")
            source = f"backtests/{backtest_id}"
        else:
            if self.jobs is None:
                raise Unimplemented("optimization jobs are not available in this server")
            job = await job_report(self.jobs, principal, job_id)
            data = await rendered(lambda: render_job(job, fmt, charts=charts))
            name, source = f"job-{job_id}", f"jobs/{job_id}"
        return await self._store(principal, "report", f"{name}.{fmt}", fmt, data, source, ttl)

    async def get(self, principal: Principal, export_id: str) -> models.ExportFile:
        row = await self.db.get(models.ExportFile, export_id)
        if row is not None and row.expires_at <= utcnow():
            row = None
        return require_owner(principal, row, "export", export_id)

    async def list_page(
        self, principal: Principal, kind: str, requested: int, token: str
    ) -> tuple[list[models.ExportFile], str]:
        E = models.ExportFile
        stmt = select(E).where(E.expires_at > utcnow())
        if (owner := owner_scope(principal)) is not None:
            stmt = stmt.where(E.owner_id == owner)
        if kind:
            stmt = stmt.where(E.kind == kind)
        qhash = query_hash(u=principal.user_id, k=kind)
        return await Keyset(E.created_at, E.id, requested, token, qhash).scan(self.db, stmt)

    async def chunks(
        self, principal: Principal, export_id: str, chunk_size: int
    ) -> AsyncIterator[tuple[bytes, int, int]]:
        row = await self.get(principal, export_id)
        path = self.root / row.id
        if not path.exists():
            raise NotFound("export file content", export_id)
        total = path.stat().st_size
        with path.open("rb") as f:
            offset = 0
            while True:
                data = await asyncio.to_thread(f.read, chunk_size)
                if not data:
                    break
                yield data, offset, total
                offset += len(data)

    async def delete(self, principal: Principal, export_id: str) -> None:
        row = await self.get(principal, export_id)
        async with self.db.transaction() as s:
            live = await s.get(models.ExportFile, row.id)
            if live is not None:
                await s.delete(live)
        (self.root / row.id).unlink(missing_ok=True)

    async def sweep(self) -> int:
        """Deletes expired exports, rows first; returns how many went.

        A row is deleted before its file, so a crash in between leaves only an orphan
        file (never a row without content); orphans older than the longest TTL go too.
        """
        E = models.ExportFile
        now = utcnow()
        async with self.db.transaction() as s:
            ids = list((await s.scalars(select(E.id).where(E.expires_at <= now))).all())
            for eid in ids:
                row = await s.get(E, eid)
                if row is not None:
                    await s.delete(row)
        for eid in ids:
            (self.root / eid).unlink(missing_ok=True)
        await asyncio.to_thread(self._drop_orphans, now.timestamp())
        return len(ids)

    def _drop_orphans(self, now: float) -> None:
        if not self.root.is_dir():
            return
        too_old = now - EXPORT_MAX_TTL.total_seconds() - 3600
        for path in self.root.iterdir():
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime < too_old:
                    path.unlink()

    async def sweep_forever(self, every: float) -> None:
        """The background sweeper; a failed sweep is logged and tried again later."""
        while True:
            await asyncio.sleep(every)
            try:
                if gone := await self.sweep():
                    log.info("expired exports deleted", extra={"count": gone})
            except Exception:
                log.exception("export sweep failed; retrying in %.0f s", every)

    async def _store(
        self,
        principal: Principal,
        kind: str,
        name: str,
        ext: str,
        data: bytes,
        source: str,
        ttl: timedelta | None = None,
    ) -> models.ExportFile:
        eid = new_id()
        self.root.mkdir(parents=True, exist_ok=True)
        # Whole or nothing: a full disk fails the call (RESOURCE_EXHAUSTED) and leaves no file.
        await asyncio.to_thread(write_atomic, self.root / eid, data)
        base = _SAFE.sub("-", name.rsplit(".", 1)[0]).strip("-") or "export"
        row = models.ExportFile(
            id=eid,
            owner_id=principal.user_id,
            kind=kind,
            file_name=f"{base}.{ext}",
            content_type=CONTENT_TYPES[ext][0],
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            source=source,
            expires_at=utcnow() + (ttl or self.default_ttl),
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except BaseException:
            (self.root / eid).unlink(missing_ok=True)  # no file without its row
            raise
        if self.notify is not None:
            await self.notify(
                principal.user_id, "export.ready", "info", f"Export ready: {row.file_name}",
                f"{row.size_bytes:,} bytes, from {source}", f"exports/{row.id}",
            )  # fmt: skip
        return row


def _trade_settings(options: ExecutionOptions) -> dict[str, Any]:
    """The options that decide a backtest's trades (the annualization does not)."""
    values = options.resolved().to_dict()
    values.pop("periods_per_year", None)
    return values
