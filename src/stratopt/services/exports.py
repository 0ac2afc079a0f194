"""Export files: Pine Script and reports, written under the data folder and listed per owner."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

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
from stratopt.export.reports import report_csv, report_html, report_json
from stratopt.security.principal import Principal
from stratopt.security.roles import EXPORT_REPORTS_ONLY_ROLES
from stratopt.services.access import Access, load_strategy, owner_scope, require_owner
from stratopt.services.backtests import BacktestCatalog
from stratopt.services.validation import ENSEMBLE_TYPE
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id
from stratopt.store.paging import (
    keyset_page,
    query_hash,
)
from stratopt.strategies import registry

BestParams = Callable[
    [Principal, str], Awaitable[tuple[str, dict[str, Any], ExecutionOptions, Provenance]]
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
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExportCatalog:
    def __init__(self, db: Database, root: Path, backtests: BacktestCatalog) -> None:
        self.db = db
        self.root = root
        self.backtests = backtests
        self.best_params: BestParams | None = None
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
    ) -> tuple[str, models.ExportFile]:
        if principal.role in EXPORT_REPORTS_ONLY_ROLES:
            raise PermissionDenied("your role may export reports, not Pine Script")
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
        if strategy_id:
            async with self.db.session() as s:
                strat = await load_strategy(s, principal, strategy_id, Access.READ)
            if strat.strategy_type == ENSEMBLE_TYPE:
                raise FailedPrecondition("ensembles cannot be exported to Pine Script yet")
            stype_name, params, execution = (
                strat.strategy_type,
                dict(strat.parameters),
                ExecutionOptions.from_dict(strat.execution),
            )
            title = title or strat.name
            source = f"strategies/{strat.id}"
            provenance = await self._strategy_provenance(principal, strat)
        elif job_id:
            if self.best_params is None:
                raise Unimplemented("optimization jobs are not available in this server")
            stype_name, params, execution, provenance = await self.best_params(principal, job_id)
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
            stype = registry.get(stype_name)
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
            principal, "pine_script", f"{title}.pine", "pine", script.encode(), source
        )
        return script, row

    async def _strategy_provenance(
        self, principal: Principal, strat: models.Strategy
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
            params = registry.get(strat.strategy_type).resolve(strat.parameters)
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
        self, principal: Principal, *, backtest_id: str, job_id: str, fmt: str, charts: bool
    ) -> models.ExportFile:
        if job_id and not backtest_id:
            raise Unimplemented("optimization reports are not available yet; export a backtest")
        if not backtest_id:
            raise InvalidArgument.field("backtest_id", "required")
        if fmt == "pdf":
            raise Unimplemented("PDF reports are not available yet; HTML reports print to PDF")
        if fmt not in ("json", "csv", "html"):
            raise InvalidArgument.field("format", "JSON, CSV, HTML or PDF")
        bt = await self.backtests.get(principal, backtest_id)
        all_trades = await self.backtests.all_trades(bt)
        summary = {
            "title": f"{bt.strategy_type} backtest",
            "subtitle": (
                f"dataset {bt.dataset_id}, {bt.bar_count:,} bars, parameters {bt.parameters}"
            ),
            "backtest_id": bt.id,
            "strategy_type": bt.strategy_type,
            "parameters": bt.parameters,
            "dataset_id": bt.dataset_id,
            "execution": ExecutionOptions.from_dict(bt.execution).resolved().to_dict(),
            "metrics": bt.metrics,
            "equity_curve": bt.equity_curve,
            "monte_carlo": bt.monte_carlo,
            "walk_forward": bt.walk_forward,
        }
        render = {
            "json": lambda: report_json(summary, all_trades),
            "csv": lambda: report_csv(all_trades),
            "html": lambda: report_html(summary, all_trades, charts=charts),
        }[fmt]
        data = await asyncio.to_thread(render)
        return await self._store(
            principal, "report", f"backtest-{bt.id}.{fmt}", fmt, data, f"backtests/{bt.id}"
        )

    async def get(self, principal: Principal, export_id: str) -> models.ExportFile:
        async with self.db.session() as s:
            row = await s.get(models.ExportFile, export_id)
        return require_owner(principal, row, "export", export_id)

    async def list_page(
        self, principal: Principal, kind: str, requested: int, token: str
    ) -> tuple[list[models.ExportFile], str]:
        E = models.ExportFile
        stmt = select(E)
        if (owner := owner_scope(principal)) is not None:
            stmt = stmt.where(E.owner_id == owner)
        if kind:
            stmt = stmt.where(E.kind == kind)
        qhash = query_hash(u=principal.user_id, k=kind)
        async with self.db.session() as s:
            return await keyset_page(
                s, stmt, E.created_at, E.id, requested=requested, token=token, qhash=qhash
            )

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

    async def _store(
        self, principal: Principal, kind: str, name: str, ext: str, data: bytes, source: str
    ) -> models.ExportFile:
        eid = new_id()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{eid}.tmp"
        await asyncio.to_thread(tmp.write_bytes, data)
        os.replace(tmp, self.root / eid)
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
        )
        async with self.db.transaction() as s:
            s.add(row)
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
