"""Datasets: bar files in the data folder plus a metadata row, kept in step.

The file is written first and the row second, so a crash leaves at worst an orphan file
(cleaned at start), never a row pointing at nothing. Sample datasets have no owner and every
reader sees them; only admins may delete them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from stratopt.data.bars import Bars
from stratopt.data.errors import (
    BarValidationError,
    DataError,
    TimeframeError,
    UploadTooLargeError,
)
from stratopt.data.resample import resample
from stratopt.data.storage import DatasetStore, StoredInfo
from stratopt.data.synthetic import SampleDataset, generate_bars, sample_datasets
from stratopt.data.timeframes import format_timeframe, parse_timeframe
from stratopt.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from stratopt.security.principal import Principal
from stratopt.services.access import PUBLIC_OWNER, dataset_owner_scope, owns, sees_dataset
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id
from stratopt.store.paging import Keyset, query_hash

log = logging.getLogger("stratopt.datasets")
MAX_SYNTHETIC_BARS = 5_000_000
MIN_SYNTHETIC_BARS = 100
MAX_TIME_NS = 2**63 - 1
"""Bar times are int64 nanoseconds since 1970."""


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    symbol: str
    timeframe: str = ""
    description: str = ""


def data_error_to_invalid(err: DataError, field_prefix: str = "rows") -> InvalidArgument:
    """Import problems become field violations that name the offending row."""
    if isinstance(err, BarValidationError):
        vs = [
            FieldViolation(
                f"{field_prefix}[{p.row}].{p.field}" if p.row is not None else field_prefix,
                str(p),
            )
            for p in err.problems
        ]
        if err.omitted:
            vs.append(FieldViolation(field_prefix, f"... and {err.omitted} more problems"))
        return InvalidArgument(str(err).splitlines()[0], vs)
    if isinstance(err, UploadTooLargeError):
        return InvalidArgument.field("chunk", str(err))
    if isinstance(err, TimeframeError):
        return InvalidArgument.field("timeframe", str(err))
    return InvalidArgument.field(field_prefix, str(err))


def validate_meta(meta: DatasetMeta, prefix: str = "") -> list[FieldViolation]:
    out = []
    if not meta.name.strip() or len(meta.name) > 100:
        out.append(FieldViolation(f"{prefix}name", "1..100 characters"))
    if not meta.symbol.strip() or len(meta.symbol) > 32:
        out.append(FieldViolation(f"{prefix}symbol", "1..32 characters"))
    if meta.timeframe:
        try:
            parse_timeframe(meta.timeframe)
        except (TimeframeError, ValueError) as e:
            out.append(FieldViolation(f"{prefix}timeframe", str(e)))
    if len(meta.description) > 4000:
        out.append(FieldViolation(f"{prefix}description", "at most 4000 characters"))
    return out


class DatasetCatalog:
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.files = DatasetStore(root)

    async def create(
        self, owner_id: str, meta: DatasetMeta, bars: Bars, source: str, dataset_id: str = ""
    ) -> models.Dataset:
        did = dataset_id or new_id()
        try:
            info: StoredInfo = await asyncio.to_thread(self.files.save, did, bars)
        except DataError as e:
            raise data_error_to_invalid(e) from None
        timeframe = meta.timeframe or format_timeframe(info.timeframe_seconds)
        row = models.Dataset(
            id=did,
            owner_id=owner_id,
            name=meta.name.strip(),
            symbol=meta.symbol.strip().upper(),
            timeframe=timeframe,
            description=meta.description,
            source=source,
            bar_count=info.rows,
            start_ts=info.first_ts,
            end_ts=info.last_ts,
            size_bytes=info.byte_size,
            checksum=info.sha256,
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except Exception:
            await asyncio.to_thread(self.files.delete, did)
            raise
        return row

    async def generate(
        self,
        principal: Principal,
        meta: DatasetMeta,
        bar_count: int,
        start_ns: int,
        start_price: float,
        seed: int,
    ) -> models.Dataset:
        v = validate_meta(meta)
        if not MIN_SYNTHETIC_BARS <= bar_count <= MAX_SYNTHETIC_BARS:
            v.append(FieldViolation("bar_count", f"{MIN_SYNTHETIC_BARS}..{MAX_SYNTHETIC_BARS:,}"))
        if not 0 < start_price < 1e9:
            v.append(FieldViolation("start_price", "must be in (0, 1e9)"))
        if seed < 0:
            v.append(FieldViolation("seed", "must not be negative"))
        if not v:
            # Every bar's time must fit int64 nanoseconds (up to 2262-04-11); weekday-only
            # series never stretch further than 7/5 of this plus a few days.
            span = (bar_count * 7 // 5 + 14) * parse_timeframe(meta.timeframe) * 1_000_000_000
            if start_ns > MAX_TIME_NS - span:
                v.append(FieldViolation("start_time", "the bars would end after 2262-04-11"))
        if v:
            raise InvalidArgument.of(v)
        bars = await asyncio.to_thread(
            generate_bars,
            bar_count,
            start=start_ns,
            timeframe=meta.timeframe,
            start_price=start_price,
            seed=seed,
        )
        return await self.create(principal.user_id, meta, bars, "synthetic")

    async def get(self, principal: Principal, dataset_id: str) -> models.Dataset:
        row = await self.db.get(models.Dataset, dataset_id)
        if row is None or not sees_dataset(principal, row.owner_id):
            raise NotFound("dataset", dataset_id)
        return row

    async def list_page(
        self, principal: Principal, symbol: str, timeframe: str, requested: int, token: str
    ) -> tuple[list[models.Dataset], str]:
        D = models.Dataset
        stmt = select(D)
        if (owners := dataset_owner_scope(principal)) is not None:
            stmt = stmt.where(D.owner_id.in_(owners))
        if symbol:
            stmt = stmt.where(func.upper(D.symbol) == symbol.upper())
        if timeframe:
            stmt = stmt.where(D.timeframe == timeframe)
        qhash = query_hash(u=principal.user_id, s=symbol, t=timeframe)
        page = Keyset(D.id, D.id, requested, token, qhash, desc=False)
        return await page.scan(self.db, stmt)

    async def delete(self, principal: Principal, dataset_id: str) -> None:
        row = await self.get(principal, dataset_id)
        if not owns(principal, row.owner_id):
            raise PermissionDenied("only admins may delete sample datasets")
        async with self.db.transaction() as s:
            live = await s.get(models.Dataset, dataset_id)
            if live is not None:
                await s.delete(live)
        await asyncio.to_thread(self.files.delete, dataset_id)

    async def load(
        self,
        principal: Principal,
        dataset_id: str,
        start_ns: int = 0,
        end_ns: int = 0,
        timeframe: str = "",
    ) -> tuple[models.Dataset, Bars]:
        """The dataset's bars in [start, end), resampled if asked; memory-mapped, cheap."""
        row = await self.get(principal, dataset_id)
        bars = await asyncio.to_thread(self.files.load, dataset_id)
        if start_ns or end_ns:
            bars = bars.between(start_ns or None, end_ns or None)
        if timeframe and timeframe != row.timeframe:
            try:
                bars = await asyncio.to_thread(resample, bars, timeframe)
            except DataError as e:
                raise data_error_to_invalid(e, "timeframe") from None
        return row, bars

    async def ensure_samples(self, samples: tuple[SampleDataset, ...] | None = None) -> int:
        """Creates the sample datasets a fresh install starts with; idempotent."""
        made = 0
        for sample in samples if samples is not None else sample_datasets():
            async with self.db.session() as s:
                if await s.get(models.Dataset, sample.dataset_id) is not None:
                    continue
            bars = await asyncio.to_thread(sample.generate)
            meta = DatasetMeta(sample.name, sample.symbol, sample.timeframe, sample.description)
            await self.create(PUBLIC_OWNER, meta, bars, "sample", sample.dataset_id)
            made += 1
        if made:
            log.info("created sample datasets", extra={"count": made})
        return made
