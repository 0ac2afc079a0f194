"""ExportService: Pine Script and reports as stored, downloadable files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.convert import duration_from_pb, params_from_pb, ts_to_pb
from stratopt.errors import InvalidArgument
from stratopt.services.exports import ExportCatalog
from stratopt.services.records import ExportFile
from stratopt.v1 import export_pb2 as pb
from stratopt.v1 import export_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext
KIND_TO_PB = {"pine_script": pb.EXPORT_KIND_PINE_SCRIPT, "report": pb.EXPORT_KIND_REPORT}
KIND_FROM_PB = {v: k for k, v in KIND_TO_PB.items()}
FORMATS = {
    pb.REPORT_FORMAT_JSON: "json",
    pb.REPORT_FORMAT_CSV: "csv",
    pb.REPORT_FORMAT_HTML: "html",
    pb.REPORT_FORMAT_PDF: "pdf",
}
TABLES = {
    pb.REPORT_TABLE_UNSPECIFIED: "",
    pb.REPORT_TABLE_TRADES: "trades",
    pb.REPORT_TABLE_EQUITY: "equity",
    pb.REPORT_TABLE_TRIALS: "trials",
}
MAX_CHUNK = 1024 * 1024


def file_to_pb(row: ExportFile) -> pb.ExportFile:
    return pb.ExportFile(
        id=row.id,
        kind=KIND_TO_PB.get(row.kind, pb.EXPORT_KIND_UNSPECIFIED),
        file_name=row.file_name,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        source=row.source,
        owner_id=row.owner_id,
        create_time=ts_to_pb(row.created_at),
        expire_time=ts_to_pb(row.expires_at),
    )


def _ttl(request: pb.ExportPineScriptRequest | pb.CreateReportRequest) -> timedelta | None:
    """The requested lifetime, or None for the server's default."""
    return duration_from_pb(request.ttl, "ttl") if request.HasField("ttl") else None


class ExportServicer(pbg.ExportServiceServicer):
    def __init__(self, exports: ExportCatalog) -> None:
        self.exports = exports

    async def ExportPineScript(
        self, request: pb.ExportPineScriptRequest, context: Ctx
    ) -> pb.ExportPineScriptResponse:
        script, row = await self.exports.pine(
            current_principal(),
            strategy_id=request.strategy_id.strip(),
            job_id=request.job_id.strip(),
            strategy_type=request.strategy_type.strip(),
            parameters=params_from_pb(request.parameters, "parameters"),
            title=request.title.strip(),
            include_execution=request.include_execution,
            ttl=_ttl(request),
        )
        return pb.ExportPineScriptResponse(script=script, file=file_to_pb(row))

    async def CreateReport(
        self, request: pb.CreateReportRequest, context: Ctx
    ) -> pb.CreateReportResponse:
        if request.format not in FORMATS:
            raise InvalidArgument.field("format", "JSON, CSV, HTML or PDF")
        row = await self.exports.report(
            current_principal(),
            backtest_id=request.backtest_id.strip(),
            job_id=request.job_id.strip(),
            fmt=FORMATS[request.format],
            charts=request.include_charts,
            table=TABLES.get(request.csv_table, "?"),
            ttl=_ttl(request),
        )
        return pb.CreateReportResponse(file=file_to_pb(row))

    async def ListExportFiles(
        self, request: pb.ListExportFilesRequest, context: Ctx
    ) -> pb.ListExportFilesResponse:
        kind = KIND_FROM_PB.get(request.kind, "") if request.kind else ""
        if request.kind and not kind:
            raise InvalidArgument.field("kind", "unknown export kind")
        rows, token = await self.exports.list_page(
            current_principal(), kind, request.page_size, request.page_token
        )
        return pb.ListExportFilesResponse(
            files=[file_to_pb(r) for r in rows], next_page_token=token
        )

    async def GetExportFile(
        self, request: pb.GetExportFileRequest, context: Ctx
    ) -> pb.GetExportFileResponse:
        _require(request.export_id)
        return pb.GetExportFileResponse(
            file=file_to_pb(await self.exports.get(current_principal(), request.export_id))
        )

    async def DownloadExportFile(
        self, request: pb.DownloadExportFileRequest, context: Ctx
    ) -> AsyncIterator[pb.DownloadExportFileResponse]:
        _require(request.export_id)
        if not 0 <= request.chunk_size <= MAX_CHUNK:
            raise InvalidArgument.field("chunk_size", f"0..{MAX_CHUNK}")
        async for data, offset, total in self.exports.chunks(
            current_principal(), request.export_id, request.chunk_size or 64 * 1024
        ):
            yield pb.DownloadExportFileResponse(data=data, offset=offset, total_size=total)

    async def DeleteExportFile(
        self, request: pb.DeleteExportFileRequest, context: Ctx
    ) -> pb.DeleteExportFileResponse:
        _require(request.export_id)
        await self.exports.delete(current_principal(), request.export_id)
        return pb.DeleteExportFileResponse()


def _require(value: str) -> None:
    if not value:
        raise InvalidArgument.field("export_id", "required")
