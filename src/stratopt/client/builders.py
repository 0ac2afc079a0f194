"""Requests the client helpers send, built the same way for the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from stratopt.v1 import (
    backtest_pb2,
    common_pb2,
    export_pb2,
    market_data_pb2,
    optimization_pb2,
    strategy_pb2,
    system_pb2,
)

ParamValue = int | float | str | bool
UPLOAD_CHUNK = 1 << 20
"""Bytes per ImportBars message: well under the 4 MiB gRPC message limit."""

TERMINAL_STATES = frozenset(
    {
        optimization_pb2.JOB_STATE_SUCCEEDED,
        optimization_pb2.JOB_STATE_FAILED,
        optimization_pb2.JOB_STATE_CANCELLED,
    }
)


def param_value(value: ParamValue) -> common_pb2.ParameterValue:
    """A Python value as a ParameterValue (bool is an int: 0 or 1)."""
    if isinstance(value, bool | int):
        return common_pb2.ParameterValue(int_value=int(value))
    if isinstance(value, float):
        return common_pb2.ParameterValue(double_value=value)
    return common_pb2.ParameterValue(string_value=value)


def param_values(params: Mapping[str, ParamValue] | None) -> dict[str, common_pb2.ParameterValue]:
    return {k: param_value(v) for k, v in (params or {}).items()}


def backtest_request(
    dataset_id: str,
    *,
    strategy_type: str = "",
    strategy_id: str = "",
    parameters: Mapping[str, ParamValue] | None = None,
    execution: common_pb2.ExecutionOptions | None = None,
    timeframe: str = "",
    dry_run: bool = False,
    trade_limit: int = 0,
) -> backtest_pb2.RunBacktestRequest:
    if bool(strategy_type) == bool(strategy_id):
        raise ValueError("give strategy_type (with parameters) or strategy_id")
    req = backtest_pb2.RunBacktestRequest(
        dataset_id=dataset_id,
        strategy_type=strategy_type,
        strategy_id=strategy_id,
        parameters=param_values(parameters),
        timeframe=timeframe,
        dry_run=dry_run,
        trade_limit=trade_limit,
    )
    if execution is not None:
        req.execution.CopyFrom(execution)
    return req


def pine_request(
    *,
    strategy_id: str = "",
    job_id: str = "",
    strategy_type: str = "",
    parameters: Mapping[str, ParamValue] | None = None,
    title: str = "",
    include_execution: bool = False,
) -> export_pb2.ExportPineScriptRequest:
    if sum(map(bool, (strategy_id, job_id, strategy_type))) != 1:
        raise ValueError("give one of strategy_id, job_id or strategy_type")
    return export_pb2.ExportPineScriptRequest(
        strategy_id=strategy_id,
        job_id=job_id,
        strategy_type=strategy_type,
        parameters=param_values(parameters),
        title=title,
        include_execution=include_execution,
    )


def import_header(
    path: Path,
    *,
    name: str = "",
    symbol: str = "",
    timeframe: str = "",
    description: str = "",
) -> market_data_pb2.ImportHeader:
    """Defaults from the file name: ``btcusdt_1h.csv`` -> name ``btcusdt_1h``, symbol
    ``BTCUSDT``; Parquet by extension, else CSV."""
    parquet = path.suffix.lower() in (".parquet", ".pq")
    return market_data_pb2.ImportHeader(
        name=name or path.stem,
        symbol=symbol or path.stem.split("_")[0].upper(),
        timeframe=timeframe,
        description=description,
        format=market_data_pb2.IMPORT_FORMAT_PARQUET
        if parquet
        else market_data_pb2.IMPORT_FORMAT_CSV,
    )


def import_requests(
    path: Path, header: market_data_pb2.ImportHeader, chunk: int = UPLOAD_CHUNK
) -> Iterator[market_data_pb2.ImportBarsRequest]:
    """The header, then the file in chunks, read as sent (never whole in memory)."""
    yield market_data_pb2.ImportBarsRequest(header=header)
    with path.open("rb") as f:
        while data := f.read(chunk):
            yield market_data_pb2.ImportBarsRequest(chunk=data)


def existing_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    return p


def part_path(path: Path) -> Path:
    """Where a download is written before it is complete (then renamed into place)."""
    return path.with_name(f".{path.name}.part")


LiveKind = Literal["signals", "alerts"]
LIVE_STREAMS: Mapping[str, tuple[str, Any, str]] = {
    "signals": ("StreamSignals", strategy_pb2.StreamSignalsRequest, "signal"),
    "alerts": ("StreamAlerts", strategy_pb2.StreamAlertsRequest, "alert"),
}
"""A paper run's resumable streams: the stub method, its request, the event's field."""


def live_kind(kind: str) -> LiveKind:
    """`kind` if a paper run streams it (signals, alerts), else ValueError."""
    if kind not in LIVE_STREAMS:
        raise ValueError(f"kind must be one of {sorted(LIVE_STREAMS)}, not {kind!r}")
    return kind  # type: ignore[return-value]


class SequenceCursor:
    """Where a follow of a sequence-numbered stream is, for the sync and async follows
    alike: the last sequence yielded (`after`, which a new subscription starts after) and
    the events the server dropped for this reader (`dropped`, summed over subscriptions;
    each subscription's own count starts at 0, so call `begin` before each)."""

    def __init__(self, field: str, after: int) -> None:
        self.after = after
        self.dropped = 0
        self._dropped_here = 0
        self._field = field

    def begin(self) -> None:
        self._dropped_here = 0

    def accept(self, reply: Any) -> Any | None:
        """The reply's event if it is new; None for one sent again after a restart."""
        self.dropped += max(0, reply.dropped - self._dropped_here)
        self._dropped_here = max(self._dropped_here, reply.dropped)
        event = getattr(reply, self._field)
        if event.sequence <= self.after:
            return None
        self.after = event.sequence
        return event


class LiveCursor(SequenceCursor):
    """A paper run's signals or alerts (`LIVE_STREAMS`)."""

    def __init__(self, kind: str, after: int) -> None:
        self.kind = live_kind(kind)
        super().__init__(LIVE_STREAMS[self.kind][2], after)

    def subscribe(self, stub: Any, strategy_id: str) -> Any:
        """The stream call, after the last sequence yielded."""
        name, request, _ = LIVE_STREAMS[self.kind]
        self.begin()
        return getattr(stub, name)(request(strategy_id=strategy_id, after_sequence=self.after))


class NotificationCursor(SequenceCursor):
    """The caller's notifications. `after` is always a position, 0 included: the first
    notification a user gets, written while the stream opens, still comes."""

    def __init__(self, after: int) -> None:
        super().__init__("notification", after)

    def subscribe(self, stub: Any) -> Any:
        self.begin()
        return stub.StreamNotifications(
            system_pb2.StreamNotificationsRequest(after_sequence=self.after, include_stored=True)
        )


def is_running(performance: strategy_pb2.PerformanceSnapshot) -> bool:
    return performance.run_state == strategy_pb2.RUN_STATE_RUNNING
