"""MarketDataService: uploads, synthetic data, dataset listing and bar streaming; feeds in
`api.feed_methods`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
import numpy as np

from stratopt.api.context import current_principal
from stratopt.api.convert import ns_to_pb, pb_to_ns, ts_to_pb
from stratopt.api.feed_methods import FeedMethods
from stratopt.api.memory_trim import trim_soon
from stratopt.data.errors import DataError, UploadBudgetError
from stratopt.data.importers import BarStreamImporter, MemoryBudget
from stratopt.errors import InvalidArgument, ResourceExhausted
from stratopt.services.datasets import (
    DatasetCatalog,
    DatasetMeta,
    data_error_to_invalid,
    validate_meta,
)
from stratopt.services.live import LiveService
from stratopt.services.records import Dataset
from stratopt.v1 import market_data_pb2 as pb
from stratopt.v1 import market_data_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext
SOURCE_TO_PB = {
    "import": pb.DATASET_SOURCE_IMPORT,
    "synthetic": pb.DATASET_SOURCE_SYNTHETIC,
    "sample": pb.DATASET_SOURCE_SAMPLE,
}
FORMATS = {
    pb.IMPORT_FORMAT_ROWS: "rows",
    pb.IMPORT_FORMAT_CSV: "csv",
    pb.IMPORT_FORMAT_PARQUET: "parquet",
}
DEFAULT_PAGE = 5_000
MAX_PAGE = 50_000
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_UPLOAD_MEMORY = 1024 * 1024 * 1024
UPLOAD_RETRY_S = 5.0


def dataset_to_pb(row: Dataset) -> pb.Dataset:
    return pb.Dataset(
        id=row.id,
        name=row.name,
        symbol=row.symbol,
        timeframe=row.timeframe,
        description=row.description,
        source=SOURCE_TO_PB.get(row.source, 0),  # type: ignore[arg-type]
        bar_count=row.bar_count,
        start_time=ns_to_pb(row.start_ts),
        end_time=ns_to_pb(row.end_ts),
        size_bytes=row.size_bytes,
        checksum=row.checksum,
        owner_id=row.owner_id,
        create_time=ts_to_pb(row.created_at),
    )


class MarketDataServicer(FeedMethods, pbg.MarketDataServiceServicer):
    def __init__(
        self,
        datasets: DatasetCatalog,
        live: LiveService,
        upload_budget: MemoryBudget | None = None,
    ) -> None:
        self.datasets = datasets
        self.live = live
        # One budget for every upload in progress in this process (STRATOPT_UPLOAD_MEMORY_MB).
        self.upload_budget = upload_budget or MemoryBudget(DEFAULT_UPLOAD_MEMORY)

    async def ImportBars(
        self, request_iterator: AsyncIterator[pb.ImportBarsRequest], context: Ctx
    ) -> pb.ImportBarsResponse:
        p = current_principal()
        header: pb.ImportHeader | None = None
        importer: BarStreamImporter | None = None
        try:
            async for msg in request_iterator:
                kind = msg.WhichOneof("payload")
                if kind == "header":
                    if header is not None:
                        raise InvalidArgument.field("header", "send the header once, first")
                    header, importer = self._start(msg.header)
                    continue
                if importer is None:
                    raise InvalidArgument.field("header", "the first message must be the header")
                if kind == "rows":
                    await asyncio.to_thread(_feed_rows, importer, msg.rows)
                elif kind == "chunk":
                    await asyncio.to_thread(importer.feed_bytes, msg.chunk)
            if importer is None or header is None:
                raise InvalidArgument.field("header", "the upload is empty")
            bars = await asyncio.to_thread(importer.finish)
            meta = DatasetMeta(header.name, header.symbol, header.timeframe, header.description)
            row = await self.datasets.create(p.user_id, meta, bars, "import")
            del bars
        except UploadBudgetError as e:
            raise ResourceExhausted(str(e), retry_after_seconds=UPLOAD_RETRY_S) from None
        except DataError as e:
            raise data_error_to_invalid(e) from None
        finally:
            # Whatever happened (done, refused, client gone), the upload's memory goes back
            # to the budget and to the system.
            if importer is not None:
                importer.close()
                trim_soon()
        return pb.ImportBarsResponse(dataset=dataset_to_pb(row))

    def _start(self, h: pb.ImportHeader) -> tuple[pb.ImportHeader, BarStreamImporter]:
        v = validate_meta(DatasetMeta(h.name, h.symbol, h.timeframe, h.description), "header.")
        if h.format not in FORMATS:
            raise InvalidArgument.field("header.format", "ROWS, CSV or PARQUET")
        if v:
            raise InvalidArgument.of(v)
        return h, BarStreamImporter(
            FORMATS[h.format],  # type: ignore[arg-type]
            max_bytes=MAX_UPLOAD_BYTES,
            budget=self.upload_budget,
        )

    async def GenerateSyntheticDataset(
        self, request: pb.GenerateSyntheticDatasetRequest, context: Ctx
    ) -> pb.GenerateSyntheticDatasetResponse:
        meta = DatasetMeta(request.name, request.symbol or "SYNTH", request.timeframe or "1h")
        start = (
            pb_to_ns(request.start_time, "start_time")
            if request.HasField("start_time")
            else 1_577_836_800 * 10**9
        )
        row = await self.datasets.generate(
            current_principal(),
            meta,
            request.bar_count or 10_000,
            start,
            request.start_price or 100.0,
            request.seed,
        )
        return pb.GenerateSyntheticDatasetResponse(dataset=dataset_to_pb(row))

    async def GetDataset(
        self, request: pb.GetDatasetRequest, context: Ctx
    ) -> pb.GetDatasetResponse:
        _require(request.dataset_id)
        row = await self.datasets.get(current_principal(), request.dataset_id)
        return pb.GetDatasetResponse(dataset=dataset_to_pb(row))

    async def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: Ctx
    ) -> pb.ListDatasetsResponse:
        rows, token = await self.datasets.list_page(
            current_principal(),
            request.symbol.strip(),
            request.timeframe.strip(),
            request.page_size,
            request.page_token,
        )
        return pb.ListDatasetsResponse(
            datasets=[dataset_to_pb(r) for r in rows], next_page_token=token
        )

    async def DeleteDataset(
        self, request: pb.DeleteDatasetRequest, context: Ctx
    ) -> pb.DeleteDatasetResponse:
        _require(request.dataset_id)
        await self.datasets.delete(current_principal(), request.dataset_id)
        return pb.DeleteDatasetResponse()

    async def ReadBars(
        self, request: pb.ReadBarsRequest, context: Ctx
    ) -> AsyncIterator[pb.ReadBarsResponse]:
        _require(request.dataset_id)
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            raise InvalidArgument.field("page_size", f"0..{MAX_PAGE}")
        size = request.page_size or DEFAULT_PAGE
        tr = request.time_range
        _, bars = await self.datasets.load(
            current_principal(),
            request.dataset_id,
            pb_to_ns(tr.start_time, "time_range.start_time") if tr.HasField("start_time") else 0,
            pb_to_ns(tr.end_time, "time_range.end_time") if tr.HasField("end_time") else 0,
            request.timeframe.strip(),
        )
        total = len(bars)
        for offset in range(0, max(total, 1), size):
            page = bars.slice(offset, min(offset + size, total))
            msg = await asyncio.to_thread(
                _bars_page, page.ts, page.open, page.high, page.low, page.close, page.volume
            )
            msg.offset, msg.total = offset, total
            yield msg


def _bars_page(
    ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, cl: np.ndarray, v: np.ndarray
) -> pb.ReadBarsResponse:
    out = pb.ReadBarsResponse()
    secs, nanos = np.divmod(ts, 1_000_000_000)
    for i in range(len(ts)):
        bar = out.bars.add(open=o[i], high=h[i], low=lo[i], close=cl[i], volume=v[i])
        bar.time.seconds = int(secs[i])
        bar.time.nanos = int(nanos[i])
    return out


def _feed_rows(importer: BarStreamImporter, rows: pb.BarRows) -> None:
    n = len(rows.bars)
    if n == 0:
        return
    try:
        ts = np.fromiter(
            (b.time.seconds * 1_000_000_000 + b.time.nanos for b in rows.bars), np.int64, n
        )
        nanos = np.fromiter((b.time.nanos for b in rows.bars), np.int64, n)
        valid = bool(((nanos >= 0) & (nanos < 1_000_000_000)).all())
    except OverflowError:  # past what int64 nanoseconds hold (1677..2262)
        valid = False
    if not valid:
        for i, b in enumerate(rows.bars):  # name the first bad row
            pb_to_ns(b.time, f"rows.bars[{i}].time")
    cols = [
        np.fromiter((getattr(b, f) for b in rows.bars), np.float64, n)
        for f in ("open", "high", "low", "close", "volume")
    ]
    importer.feed_arrays(ts, *cols)


def _require(dataset_id: str) -> None:
    if not dataset_id:
        raise InvalidArgument.field("dataset_id", "required")
