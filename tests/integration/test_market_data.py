"""MarketDataService on a real server: synthetic data, streamed uploads, bar paging."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from stratopt.v1 import market_data_pb2 as pb
from stratopt.v1 import market_data_pb2_grpc as pbg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.helpers import call_error, violations


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[pbg.MarketDataServiceStub]:
    with live_server.channel() as ch:
        yield pbg.MarketDataServiceStub(ch)


def read_all(
    stub: pbg.MarketDataServiceStub, md: list[tuple[str, str]], **kw: object
) -> list[pb.ReadBarsResponse]:
    return list(stub.ReadBars(pb.ReadBarsRequest(**kw), metadata=md))  # type: ignore[arg-type]


def csv_bytes(n: int = 500, bad_row: int | None = None) -> bytes:
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = 100 + np.cumsum(np.random.default_rng(1).normal(0, 1, n))
    df = pd.DataFrame(
        {
            "timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 1000.0,
        }
    )
    if bad_row is not None:
        df.loc[bad_row - 1, "high"] = df.loc[bad_row - 1, "close"] - 5
    return df.to_csv(index=False).encode()


def test_synthetic_dataset_and_bar_pages(
    stub: pbg.MarketDataServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    ds = stub.GenerateSyntheticDataset(
        pb.GenerateSyntheticDatasetRequest(
            name="synthetic test", symbol="test", timeframe="1h", bar_count=12_345, seed=7
        ),
        metadata=md,
    ).dataset
    assert ds.bar_count == 12_345 and ds.symbol == "TEST" and ds.timeframe == "1h"
    assert ds.source == pb.DATASET_SOURCE_SYNTHETIC and len(ds.checksum) == 64
    same = stub.GenerateSyntheticDataset(
        pb.GenerateSyntheticDatasetRequest(
            name="again", symbol="test", timeframe="1h", bar_count=12_345, seed=7
        ),
        metadata=md,
    ).dataset
    assert same.checksum == ds.checksum, "same seed must give the same bars"

    pages = read_all(stub, md, dataset_id=ds.id, page_size=5_000)
    assert [p.offset for p in pages] == [0, 5_000, 10_000]
    bars = [b for p in pages for b in p.bars]
    assert len(bars) == 12_345 and pages[0].total == 12_345
    times = [b.time.seconds for b in bars]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)

    daily = [b for p in read_all(stub, md, dataset_id=ds.id, timeframe="1d") for b in p.bars]
    assert 500 <= len(daily) <= 516
    assert daily[0].open == bars[0].open
    got = stub.GetDataset(pb.GetDatasetRequest(dataset_id=ds.id), metadata=md).dataset
    assert got == ds
    listed = stub.ListDatasets(pb.ListDatasetsRequest(symbol="TEST"), metadata=md).datasets
    assert ds.id in {d.id for d in listed}


def test_csv_upload_in_odd_chunks(stub: pbg.MarketDataServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    data = csv_bytes()
    chunks = [data[i : i + 777] for i in range(0, len(data), 777)]
    reqs = [
        pb.ImportBarsRequest(
            header=pb.ImportHeader(name="csv up", symbol="AAPL", format=pb.IMPORT_FORMAT_CSV)
        )
    ]
    reqs += [pb.ImportBarsRequest(chunk=c) for c in chunks]
    ds = stub.ImportBars(iter(reqs), metadata=md).dataset
    assert ds.bar_count == 500 and ds.timeframe == "1h" and ds.source == pb.DATASET_SOURCE_IMPORT
    bars = [b for p in read_all(stub, md, dataset_id=ds.id) for b in p.bars]
    first = pd.read_csv(io.BytesIO(data)).iloc[0]
    assert bars[0].open == pytest.approx(first["open"])


def test_row_upload_and_bad_rows_name_the_row(
    stub: pbg.MarketDataServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    header = pb.ImportBarsRequest(
        header=pb.ImportHeader(name="rows", symbol="ES1!", format=pb.IMPORT_FORMAT_ROWS)
    )
    rows = pb.BarRows()
    for i in range(50):
        b = rows.bars.add(open=10 + i, high=11 + i, low=9 + i, close=10.5 + i, volume=5)
        b.time.seconds = 1_700_000_000 + 60 * i
    ds = stub.ImportBars(iter([header, pb.ImportBarsRequest(rows=rows)]), metadata=md).dataset
    assert ds.bar_count == 50 and ds.timeframe == "1m"

    bad = csv_bytes(bad_row=42)
    reqs = [
        pb.ImportBarsRequest(
            header=pb.ImportHeader(name="bad", symbol="X", format=pb.IMPORT_FORMAT_CSV)
        ),
        pb.ImportBarsRequest(chunk=bad),
    ]
    err = call_error(stub.ImportBars, iter(reqs), metadata=md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = violations(err)
    assert any(f.startswith("rows[42]") for f in v), v
    assert "row 42" in (err.details() or "")

    no_header = call_error(stub.ImportBars, iter([pb.ImportBarsRequest(chunk=b"x")]), metadata=md)
    assert no_header.code() == grpc.StatusCode.INVALID_ARGUMENT
    wrong_kind = call_error(
        stub.ImportBars, iter([header, pb.ImportBarsRequest(chunk=b"a,b\n")]), metadata=md
    )
    assert wrong_kind.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = call_error(stub.ImportBars, iter([]), metadata=md)
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_requests_and_ownership(
    stub: pbg.MarketDataServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    err = call_error(
        stub.GenerateSyntheticDataset,
        pb.GenerateSyntheticDatasetRequest(name="", timeframe="3 parsecs", bar_count=5),
        metadata=md,
    )
    assert set(violations(err)) >= {"name", "timeframe", "bar_count"}
    ds = stub.GenerateSyntheticDataset(
        pb.GenerateSyntheticDatasetRequest(name="mine", symbol="M", bar_count=200), metadata=md
    ).dataset
    hidden = call_error(
        stub.GetDataset, pb.GetDatasetRequest(dataset_id=ds.id), metadata=live_server.md("analyst")
    )
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    finer = call_error(lambda: read_all(stub, md, dataset_id=ds.id, timeframe="1m"))
    assert finer.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = call_error(lambda: read_all(stub, md, dataset_id="nope"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    stub.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=ds.id), metadata=md)
    gone = call_error(stub.GetDataset, pb.GetDatasetRequest(dataset_id=ds.id), metadata=md)
    assert gone.code() == grpc.StatusCode.NOT_FOUND


def test_fresh_install_has_sample_datasets(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {"STRATOPT_SAMPLE_DATA": "1"})
    try:
        with srv.channel() as ch:
            stub = pbg.MarketDataServiceStub(ch)
            listed = stub.ListDatasets(pb.ListDatasetsRequest(), metadata=srv.md("viewer")).datasets
            samples = [d for d in listed if d.source == pb.DATASET_SOURCE_SAMPLE]
            assert len(samples) >= 2 and all(d.bar_count > 1000 for d in samples)
            denied = call_error(
                stub.DeleteDataset,
                pb.DeleteDatasetRequest(dataset_id=samples[0].id),
                metadata=srv.md("trader"),
            )
            assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        stop_server(srv)
