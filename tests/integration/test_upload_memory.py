"""Uploads cannot take the server's memory (issue 14: four parallel 400 MB uploads peaked at
2.95 GB, and 1.9 GB stayed held afterwards).

All uploads in flight share one budget (STRATOPT_UPLOAD_MEMORY_MB): a chunk that does not fit
is refused with RESOURCE_EXHAUSTED and a retry hint, and the refused upload frees what it
held at once. Here four 40 MB uploads meet a 64 MB budget.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from stratopt.v1 import market_data_pb2 as pb
from stratopt.v1 import market_data_pb2_grpc as pbg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.security.support import retry_delay

MB = 1024 * 1024


def csv_bytes(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ts = 1_600_000_000 + np.arange(rows, dtype=np.int64) * 60
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows)))
    table = np.column_stack([ts, close, close * 1.001, close * 0.999, close, np.full(rows, 10.0)])
    out = io.BytesIO()
    out.write(b"ts,open,high,low,close,volume\n")
    np.savetxt(out, table, fmt=["%d", "%.6f", "%.6f", "%.6f", "%.6f", "%.1f"], delimiter=",")
    return out.getvalue()


def requests(name: str, data: bytes) -> Iterator[pb.ImportBarsRequest]:
    yield pb.ImportBarsRequest(
        header=pb.ImportHeader(name=name, symbol="MEM", format=pb.IMPORT_FORMAT_CSV)
    )
    for i in range(0, len(data), MB):
        yield pb.ImportBarsRequest(chunk=data[i : i + MB])


def memory_kb(srv: LiveServer) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


def test_parallel_uploads_share_one_memory_budget(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {"STRATOPT_UPLOAD_MEMORY_MB": "64"})
    try:
        payloads = [csv_bytes(800_000, seed) for seed in range(4)]
        assert all(len(p) > 40 * MB for p in payloads)
        md = srv.md("trader")
        with srv.channel() as ch:
            stub = pbg.MarketDataServiceStub(ch)
            # Warm up (imports, first dataset) so the baseline is the idle server's.
            stub.ImportBars(requests("warm", csv_bytes(1_000, 9)), metadata=md)
            before = memory_kb(srv)

            def upload(i: int) -> object:
                try:
                    return stub.ImportBars(requests(f"big{i}", payloads[i]), metadata=md)
                except grpc.RpcError as e:
                    return e

            rounds = []
            for _ in range(2):
                with ThreadPoolExecutor(4) as pool:
                    results = list(pool.map(upload, range(4)))
                time.sleep(1.0)  # the server trims its heap just after each upload
                rounds.append((results, memory_kb(srv)))
        for results, _ in rounds:
            refused = [r for r in results if isinstance(r, grpc.RpcError)]
            assert refused, "four 40 MB uploads fit a 64 MB budget?"
            assert len(refused) < 4, "at least one upload fits the budget"
            for e in refused:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.details()
                assert retry_delay(e) > 0
        (_, first), (_, second) = rounds
        peak_growth = (second["VmHWM"] - before["VmRSS"]) / 1024
        held = (first["VmRSS"] - before["VmRSS"]) / 1024
        growth = (second["VmRSS"] - first["VmRSS"]) / 1024
        # Unbounded, four 42 MB uploads peaked 446 MB above the idle server and kept 238 MB.
        assert peak_growth < 350, f"peak grew by {peak_growth:.0f} MB"
        assert held < 200, f"{held:.0f} MB still held after the uploads"
        assert growth < 50, f"a second round kept {growth:.0f} MB more"
    finally:
        stop_server(srv)
