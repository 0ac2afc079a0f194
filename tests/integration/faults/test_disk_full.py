"""A full disk under exports, imports and the database: the call answers RESOURCE_EXHAUSTED
(reason STORAGE_FULL, with a retry hint), no partial file or row is left behind, and the
same calls work once space is freed, without a restart.

The disk is really full: the folders are small tmpfs mounts filled to the last byte, so the
server's writes fail with ENOSPC (SQLite: "database or disk is full") exactly as on a full
volume. Mounting needs root (or CAP_SYS_ADMIN); CI runs as root.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import export_pb2_grpc as eg
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from stratopt.server.app import Server
from tests.integration.faults.support import (
    fault_settings,
    login,
    reason,
    retry_delay,
    rpc_error,
    start,
)
from tests.tools import unavailable


@contextmanager
def tiny_filesystem(path: Path, size: str = "1m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Writes a filler file until the filesystem refuses another byte."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                if f.write(chunk) == 0:
                    break
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
    with pytest.raises(OSError) as no_room:
        (folder / "probe").write_bytes(b"x" * 4096)
    assert no_room.value.errno == errno.ENOSPC
    (folder / "probe").unlink(missing_ok=True)
    return filler


def upload(name: str, bars: int = 200) -> Iterator[mpb.ImportBarsRequest]:
    yield mpb.ImportBarsRequest(
        header=mpb.ImportHeader(name=name, symbol="FULL", format=mpb.IMPORT_FORMAT_ROWS)
    )
    rows = mpb.BarRows()
    for i in range(bars):
        b = rows.bars.add(open=10 + i, high=11 + i, low=9 + i, close=10.5 + i, volume=5)
        b.time.seconds = 1_700_000_000 + 60 * i
    yield mpb.ImportBarsRequest(rows=rows)


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def assert_storage_full(err: grpc.aio.AioRpcError) -> None:
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    assert reason(err) == "STORAGE_FULL"
    assert "disk full" in (err.details() or "")
    assert retry_delay(err) >= 1.0


async def test_export_and_import_on_a_full_disk(tmp_path: Path) -> None:
    exports_dir, datasets_dir = tmp_path / "exports", tmp_path / "datasets"
    with tiny_filesystem(exports_dir), tiny_filesystem(datasets_dir):
        server, addr = await start(fault_settings(tmp_path))
        try:
            await _script(server, addr, exports_dir, datasets_dir)
        finally:
            await server.stop(grace=1)


async def _script(server: Server, addr: str, exports_dir: Path, datasets_dir: Path) -> None:
    async with grpc.aio.insecure_channel(addr) as ch:
        md = await login(ch)
        exports, data = eg.ExportServiceStub(ch), mg.MarketDataServiceStub(ch)
        pine = epb.ExportPineScriptRequest(strategy_type="sma_crossover")

        export_filler, data_filler = fill(exports_dir), fill(datasets_dir)

        assert_storage_full(await rpc_error(exports.ExportPineScript(pine, metadata=md)))
        assert files_in(exports_dir) == ["filler"], "no partial export file"
        listed = await exports.ListExportFiles(epb.ListExportFilesRequest(), metadata=md)
        assert list(listed.files) == [], "no export row without its file"

        assert_storage_full(await rpc_error(data.ImportBars(upload("full"), metadata=md)))
        assert files_in(datasets_dir) == ["filler"], "no partial dataset file"
        sets = await data.ListDatasets(mpb.ListDatasetsRequest(), metadata=md)
        assert list(sets.datasets) == [], "no dataset row without its file"
        assert server.gauges().upload_bytes == 0, "the failed upload gave its memory back"

        # Space is freed: the same calls work, without a restart.
        export_filler.unlink()
        data_filler.unlink()
        made = await exports.ExportPineScript(pine, metadata=md)
        assert files_in(exports_dir) == [made.file.id]
        assert made.file.size_bytes == (exports_dir / made.file.id).stat().st_size
        ds = (await data.ImportBars(upload("room again"), metadata=md)).dataset
        assert ds.bar_count == 200
        assert len(files_in(datasets_dir)) == 1


async def test_database_on_a_full_disk(tmp_path: Path) -> None:
    """The whole data folder (SQLite file and its WAL) on a full filesystem."""
    data_dir = tmp_path / "data"
    with tiny_filesystem(data_dir, "16m"):
        server, addr = await start(fault_settings(data_dir))
        try:
            async with grpc.aio.insecure_channel(addr) as ch:
                md = await login(ch)
                stub = sg.StrategyServiceStub(ch)

                def create() -> spb.CreateStrategyRequest:
                    name = f"full-{uuid.uuid4().hex[:8]}"
                    return spb.CreateStrategyRequest(
                        strategy=spb.Strategy(name=name, strategy_type="sma_crossover")
                    )

                await stub.CreateStrategy(create(), metadata=md)
                filler = fill(data_dir)
                for _ in range(3):  # every attempt is refused cleanly, none half-written
                    assert_storage_full(await rpc_error(stub.CreateStrategy(create(), metadata=md)))
                listed = await stub.ListStrategies(spb.ListStrategiesRequest(), metadata=md)
                assert len(listed.strategies) == 1
                filler.unlink()
                await stub.CreateStrategy(create(), metadata=md)
                listed = await stub.ListStrategies(spb.ListStrategiesRequest(), metadata=md)
                assert len(listed.strategies) == 2
        finally:
            await server.stop(grace=1)
