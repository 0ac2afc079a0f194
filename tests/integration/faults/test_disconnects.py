"""Clients that vanish mid-stream and mid-upload leave nothing behind in the server.

Each round opens, on a channel of its own, a WatchJob stream, a StreamSignals stream of a
running paper strategy, a DownloadExportFile of 1-byte chunks and an ImportBars upload that
never finishes, checks the server really holds all four, then closes the channel without
a goodbye (the server sees the calls cancelled, as when a client process dies). Afterwards
the server's asyncio tasks, its stream-cap counters and its upload memory budget are back at
their baseline, and no upload importer object stays alive, round after round.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import grpc
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import export_pb2_grpc as eg
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mg
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import optimization_pb2_grpc as og
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from stratopt.data.importers import BarStreamImporter
from stratopt.server.app import Gauges, Server
from tests.integration.faults.support import (
    Metadata,
    dataset,
    eventually,
    fault_settings,
    login,
    paper_run,
    start,
)

ROUNDS = 3
STREAMS_PER_ROUND = 3  # WatchJob, StreamSignals, DownloadExportFile (ImportBars is no stream)


def importers_alive() -> int:
    return sum(isinstance(o, BarStreamImporter) for o in gc.get_objects())


async def steady(server: Server) -> Gauges:
    """The gauges once they stop moving (tasks of finished calls take a moment to end)."""
    last = server.gauges()

    async def unchanged() -> Gauges | None:
        nonlocal last
        await asyncio.sleep(0.2)
        now = server.gauges()
        same = now == last
        last = now
        return now if same else None

    return await eventually(unchanged, "the server to settle")


async def setup(ch: grpc.aio.Channel, md: Metadata) -> tuple[str, str, str]:
    """A queued job, a running paper strategy and an export file: (job, strategy, export)."""
    ds = await dataset(ch, md, bars=2_000)
    job = await og.OptimizationServiceStub(ch).StartOptimization(
        opb.StartOptimizationRequest(
            spec=opb.OptimizationSpec(strategy_type="sma_crossover", dataset_id=ds, trials=20)
        ),
        metadata=md,
    )  # no workers in this server: it stays queued, and its watchers stay open
    strategy_id = await paper_run(ch, md, ds, bars_per_second=20)
    export = await eg.ExportServiceStub(ch).ExportPineScript(
        epb.ExportPineScriptRequest(strategy_type="sma_crossover"), metadata=md
    )
    return job.job.id, strategy_id, export.file.id


async def one_round(
    server: Server, addr: str, md: Metadata, job_id: str, strategy_id: str, export_id: str
) -> None:
    ch = grpc.aio.insecure_channel(addr)
    watch = og.OptimizationServiceStub(ch).WatchJob(opb.WatchJobRequest(job_id=job_id), metadata=md)
    signals = sg.StrategyServiceStub(ch).StreamSignals(
        spb.StreamSignalsRequest(strategy_id=strategy_id), metadata=md
    )
    download = eg.ExportServiceStub(ch).DownloadExportFile(
        epb.DownloadExportFileRequest(export_id=export_id, chunk_size=1), metadata=md
    )
    upload = mg.MarketDataServiceStub(ch).ImportBars(metadata=md)
    await upload.write(
        mpb.ImportBarsRequest(
            header=mpb.ImportHeader(name="gone", symbol="DC", format=mpb.IMPORT_FORMAT_ROWS)
        )
    )
    rows = mpb.BarRows()
    for i in range(5_000):
        b = rows.bars.add(open=10, high=11, low=9, close=10.5, volume=5)
        b.time.seconds = 1_700_000_000 + 60 * i
    await upload.write(mpb.ImportBarsRequest(rows=rows))

    first = await download.read()
    assert isinstance(first, epb.DownloadExportFileResponse) and len(first.data) == 1
    assert first.total_size > 1_000, "the download is far from done when the client goes"
    assert isinstance(await watch.read(), opb.WatchJobResponse)

    async def all_held() -> bool:
        g = server.gauges()
        return g.open_streams == STREAMS_PER_ROUND and g.upload_bytes > 0

    await eventually(all_held, "the server to hold the three streams and the upload")
    # The client goes away without ending its calls.
    await ch.close(grace=None)
    for call in (watch, signals, download):
        assert call.cancelled() or call.done()


async def test_vanishing_clients_leak_no_tasks_slots_or_memory(tmp_path: Path) -> None:
    server, addr = await start(fault_settings(tmp_path))
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            md = await login(ch)
            job_id, strategy_id, export_id = await setup(ch, md)
        baseline = await steady(server)
        assert baseline.open_streams == 0 and baseline.upload_bytes == 0
        for _ in range(ROUNDS):
            await one_round(server, addr, md, job_id, strategy_id, export_id)

            async def back_to_baseline() -> bool:
                # Tasks may dip below the baseline (a periodic task between two runs), never
                # stay above it: a leaked task per call would.
                now = server.gauges()
                return now.tasks <= baseline.tasks and now.open_streams == now.upload_bytes == 0

            await eventually(back_to_baseline, f"gauges back to {baseline}, now {server.gauges()}")
        gc.collect()
        assert importers_alive() == 0, "an abandoned upload's importer is still referenced"
    finally:
        await server.stop(grace=1)
