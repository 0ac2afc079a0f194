"""Export files expire (issue 11, item 5): gone from List, Get and Download at their expiry,
and swept from the disk together with their rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from stratopt.v1 import export_pb2 as pb
from stratopt.v1 import export_pb2_grpc as pbg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.helpers import call_error, violations


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(
        tmp_path_factory.mktemp("expiry"),
        {"STRATOPT_EXPORT_TTL_HOURS": "2", "STRATOPT_EXPORT_SWEEP_SECONDS": "0.2"},
    )
    try:
        yield srv
    finally:
        stop_server(srv)


def pine(
    stub: pbg.ExportServiceStub, md: list[tuple[str, str]], ttl: timedelta | None = None
) -> pb.ExportPineScriptResponse:
    req = pb.ExportPineScriptRequest(strategy_type="sma_crossover")
    if ttl is not None:
        req.ttl.FromTimedelta(ttl)
    return stub.ExportPineScript(req, metadata=md)


def listed(stub: pbg.ExportServiceStub, md: list[tuple[str, str]]) -> set[str]:
    return {f.id for f in stub.ListExportFiles(pb.ListExportFilesRequest(), metadata=md).files}


def test_the_default_ttl_comes_from_the_setting(server: LiveServer) -> None:
    with server.channel() as ch:
        f = pine(pbg.ExportServiceStub(ch), server.md("trader")).file
    lifetime = f.expire_time.ToDatetime() - f.create_time.ToDatetime()
    assert abs(lifetime - timedelta(hours=2)) < timedelta(seconds=5)


def test_an_expired_file_is_gone_from_list_get_download_and_disk(server: LiveServer) -> None:
    exports_dir = Path(server.env["STRATOPT_DATA_DIR"]) / "exports"
    md = server.md("trader")
    with server.channel() as ch:
        stub = pbg.ExportServiceStub(ch)
        short = pine(stub, md, timedelta(seconds=1)).file
        kept = pine(stub, md).file
        assert (exports_dir / short.id).exists()
        assert {short.id, kept.id} <= listed(stub, md)
        time.sleep(1.2)
        # Gone for readers at its expiry, whether or not the sweeper has run.
        assert short.id not in listed(stub, md) and kept.id in listed(stub, md)
        for call in (
            lambda: stub.GetExportFile(pb.GetExportFileRequest(export_id=short.id), metadata=md),
            lambda: list(
                stub.DownloadExportFile(
                    pb.DownloadExportFileRequest(export_id=short.id), metadata=md
                )
            ),
        ):
            assert call_error(call).code() == grpc.StatusCode.NOT_FOUND
        deadline = time.monotonic() + 10
        while (exports_dir / short.id).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (exports_dir / short.id).exists()
        assert (exports_dir / kept.id).exists()
        # Still listed, downloaded and deleted on request as before.
        body = b"".join(
            p.data
            for p in stub.DownloadExportFile(
                pb.DownloadExportFileRequest(export_id=kept.id), metadata=md
            )
        )
        assert b"//@version=6" in body
        stub.DeleteExportFile(pb.DeleteExportFileRequest(export_id=kept.id), metadata=md)
        assert not (exports_dir / kept.id).exists()


@pytest.mark.parametrize(
    "ttl",
    [
        duration_pb2.Duration(seconds=0),
        duration_pb2.Duration(seconds=-5),
        duration_pb2.Duration(seconds=91 * 86400),
        duration_pb2.Duration(seconds=2**40),
        duration_pb2.Duration(seconds=1, nanos=-1),
    ],
)
def test_a_ttl_out_of_range_is_invalid(server: LiveServer, ttl: duration_pb2.Duration) -> None:
    with server.channel() as ch:
        stub = pbg.ExportServiceStub(ch)
        req = pb.ExportPineScriptRequest(strategy_type="sma_crossover")
        req.ttl.CopyFrom(ttl)
        err = call_error(stub.ExportPineScript, req, metadata=server.md("trader"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ttl" in violations(err)
