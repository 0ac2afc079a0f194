"""`Client`: the blocking Python client of a stratopt server.

One channel, the caller's credential (login session, API key or token) and the generated
stubs as attributes, all behind one interceptor that authenticates, refreshes and retries
(`sync_calls.py`, `retry.py`). On top, helpers for what users do most: run a backtest,
optimize and watch, export Pine Script and reports, upload bars. docs/client.md has the
tour; `AsyncClient` (async_client.py) has the same surface for asyncio.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc

from stratopt.client import builders as b
from stratopt.client import retry as r
from stratopt.client.channels import ChannelOptions, channel_credentials, default_target, options
from stratopt.client.session import Credentials, RefreshCallback
from stratopt.client.sync_calls import SyncAuth, SyncCallInterceptor
from stratopt.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    backtest_pb2,
    backtest_pb2_grpc,
    common_pb2,
    export_pb2,
    export_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    optimization_pb2,
    optimization_pb2_grpc,
    rules_pb2_grpc,
    strategy_pb2,
    strategy_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)

T = TypeVar("T")
Resp = TypeVar("Resp")


class DownloadIncomplete(Exception):
    """A download ended before ``total_size`` bytes arrived, or with a gap."""


class Client:
    """A connection to one stratopt server, with credentials and retries handled.

    Give at most one credential: ``api_key``, a fixed ``access_token``, or the
    ``refresh_token`` of an earlier login (exchanged on the first call); or none and call
    :meth:`login`. ``on_refresh_token`` receives every new refresh token (the server rotates
    it at each refresh), so a long-lived process can store it. ``tls=True`` uses the system
    roots (or ``root_certificates``); a ``grpc.ChannelCredentials`` is used as given.

    The stubs are plain generated stubs: ``client.strategies.GetStrategy(req)``. Unary
    calls are retried per ``retry`` (docs/client.md lists which calls and why).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_refresh_token: RefreshCallback | None = None,
        tls: bool | grpc.ChannelCredentials = False,
        root_certificates: bytes | None = None,
        retry: r.RetryPolicy | None = None,
        channel_options: ChannelOptions = (),
    ) -> None:
        self.target = target or default_target()
        self.retry_policy = retry or r.RetryPolicy()
        creds = channel_credentials(tls, root_certificates)
        opts = options(channel_options)
        self._raw = (
            grpc.secure_channel(self.target, creds, opts)
            if creds is not None
            else grpc.insecure_channel(self.target, opts)
        )
        self.credentials = Credentials(
            api_key=api_key,
            access_token=access_token,
            refresh_token=refresh_token,
            on_refresh_token=on_refresh_token,
        )
        self._session = SyncAuth(self.credentials, self._raw)
        self.interceptor = SyncCallInterceptor(self._session, self.retry_policy)
        self.channel: grpc.Channel = grpc.intercept_channel(self._raw, self.interceptor)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.strategies = strategy_pb2_grpc.StrategyServiceStub(self.channel)
        self.backtests = backtest_pb2_grpc.BacktestServiceStub(self.channel)
        self.optimization = optimization_pb2_grpc.OptimizationServiceStub(self.channel)
        self.market_data = market_data_pb2_grpc.MarketDataServiceStub(self.channel)
        self.exports = export_pb2_grpc.ExportServiceStub(self.channel)
        self.system = system_pb2_grpc.SystemServiceStub(self.channel)
        self.user_definitions = rules_pb2_grpc.UserDefinitionServiceStub(self.channel)

    # -- lifecycle and sessions ----------------------------------------------------------

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stub(self, cls: Callable[[grpc.Channel], T]) -> T:
        """Any generated stub class on this client's channel."""
        return cls(self.channel)

    def login(self, username: str, password: str) -> auth_pb2.User:
        """Logs in; later calls carry the session's access token, refreshed as needed."""
        return self._session.login(username, password).user

    def refresh(self) -> None:
        """Exchanges the refresh token now (normally done for you before expiry)."""
        self._session.refresh()

    def logout(self) -> bool:
        """Revokes the session on the server; False when there was none."""
        return self._session.logout()

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (empty with an API key or a fixed token)."""
        return self.credentials.refresh_token

    # -- generic helpers -------------------------------------------------------------------

    def pages(
        self, method: Callable[..., Any], request: Any, field: str, *, limit: int = 0
    ) -> Iterator[Any]:
        """Every item of a paginated List call, page after page (at most ``limit``)."""
        seen = 0
        while True:
            reply = method(request)
            for item in getattr(reply, field):
                yield item
                seen += 1
                if limit and seen >= limit:
                    return
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    def stream(self, method: Callable[[Any], Iterable[Resp]], request: Any) -> Iterator[Resp]:
        """The messages of a server stream; a failure before the first message (UNAVAILABLE,
        or a refusal with RetryInfo such as the stream cap) is retried per the policy, one
        after it is raised (a generic stream cannot be resumed: see :meth:`watch_job`)."""
        retry = 0
        while True:
            got_one = False
            call: Any = method(request)
            try:
                for item in call:
                    got_one = True
                    yield item
                return
            except grpc.RpcError as e:
                delay = None if got_one else _stream_delay(self.retry_policy, retry, e)
                if delay is None:
                    raise
            finally:
                call.cancel()  # the caller stopped early: end the stream on the server too
            time.sleep(delay)
            retry += 1

    # -- backtests -------------------------------------------------------------------------

    def backtest(
        self,
        dataset_id: str = "",
        *,
        bars_file: str | Path | None = None,
        strategy_type: str = "",
        strategy_id: str = "",
        parameters: Mapping[str, b.ParamValue] | None = None,
        execution: common_pb2.ExecutionOptions | None = None,
        timeframe: str = "",
        dry_run: bool = False,
        trade_limit: int = 0,
    ) -> backtest_pb2.Backtest:
        """Runs one backtest on a stored dataset, or on ``bars_file`` (CSV or Parquet),
        which is uploaded first as a new dataset."""
        if bars_file is not None:
            if dataset_id:
                raise ValueError("give dataset_id or bars_file, not both")
            dataset_id = self.import_dataset(bars_file).id
        req = b.backtest_request(
            dataset_id,
            strategy_type=strategy_type,
            strategy_id=strategy_id,
            parameters=parameters,
            execution=execution,
            timeframe=timeframe,
            dry_run=dry_run,
            trade_limit=trade_limit,
        )
        return self.backtests.RunBacktest(req).backtest

    # -- optimization ------------------------------------------------------------------------

    def start_optimization(
        self,
        spec: optimization_pb2.OptimizationSpec,
        priority: optimization_pb2.JobPriority.ValueType = optimization_pb2.JOB_PRIORITY_NORMAL,
    ) -> optimization_pb2.Job:
        req = optimization_pb2.StartOptimizationRequest(spec=spec, priority=priority)
        return self.optimization.StartOptimization(req).job

    def watch_job(
        self, job_id: str, *, reconnect: bool = True, reconnect_window: float = 120.0
    ) -> JobWatch:
        """The job's events until it ends (see `JobWatch`)."""
        return JobWatch(self, job_id, reconnect=reconnect, reconnect_window=reconnect_window)

    def follow_live(
        self,
        strategy_id: str,
        kind: b.LiveKind = "signals",
        after: int = 0,
        *,
        reconnect: bool = True,
        reconnect_window: float = 120.0,
    ) -> LiveFollow:
        """A paper run's new signals or alerts after sequence `after`, each once, across
        server restarts, until the run ends (see `LiveFollow`)."""
        return LiveFollow(
            self, strategy_id, kind, after, reconnect=reconnect, reconnect_window=reconnect_window
        )

    def follow_notifications(
        self, after: int | None = None, *, reconnect: bool = True, reconnect_window: float = 120.0
    ) -> NotificationFollow:
        """Your notifications after sequence `after`, each once, across server restarts, for
        as long as you iterate (see `NotificationFollow`). None: those written from now on,
        exactly (after the newest stored one, as ListNotifications reports it)."""
        if after is None:
            req = system_pb2.ListNotificationsRequest(page_size=1)
            after = self.system.ListNotifications(req).newest_sequence
        return NotificationFollow(
            self, after, reconnect=reconnect, reconnect_window=reconnect_window
        )

    def optimize_and_watch(
        self,
        spec: optimization_pb2.OptimizationSpec,
        priority: optimization_pb2.JobPriority.ValueType = optimization_pb2.JOB_PRIORITY_NORMAL,
    ) -> JobWatch:
        """Starts a job and watches it: iterate for progress, then ``.result()``."""
        return self.watch_job(self.start_optimization(spec, priority).id)

    # -- exports -------------------------------------------------------------------------------

    def export_pine(
        self,
        *,
        strategy_id: str = "",
        job_id: str = "",
        strategy_type: str = "",
        parameters: Mapping[str, b.ParamValue] | None = None,
        title: str = "",
        include_execution: bool = False,
    ) -> export_pb2.ExportPineScriptResponse:
        """Pine Script v6 of a stored strategy, a job's best trial, or a type + parameters;
        ``.script`` is the text, ``.file`` the stored export."""
        req = b.pine_request(
            strategy_id=strategy_id,
            job_id=job_id,
            strategy_type=strategy_type,
            parameters=parameters,
            title=title,
            include_execution=include_execution,
        )
        return self.exports.ExportPineScript(req)

    def create_report(
        self,
        *,
        backtest_id: str = "",
        job_id: str = "",
        format: export_pb2.ReportFormat.ValueType = export_pb2.REPORT_FORMAT_HTML,
        include_charts: bool = True,
        csv_table: export_pb2.ReportTable.ValueType = export_pb2.REPORT_TABLE_UNSPECIFIED,
    ) -> export_pb2.ExportFile:
        """`csv_table` picks a CSV's rows (REPORT_TABLE_EQUITY: a backtest's every bar)."""
        req = export_pb2.CreateReportRequest(
            backtest_id=backtest_id,
            job_id=job_id,
            format=format,
            include_charts=include_charts,
            csv_table=csv_table,
        )
        return self.exports.CreateReport(req).file

    def download_export(self, export_id: str, path: str | Path | None = None) -> bytes | int:
        """An export's bytes (``path`` None), or its size once written to ``path``.

        The file streams in chunks; on ``path`` it is written beside the target and renamed
        into place when complete, so a failed download leaves no partial file. A broken
        connection restarts the download (it is a read) per the retry policy."""
        req = export_pb2.DownloadExportFileRequest(export_id=export_id)
        if path is None:
            parts: list[bytes] = []
            self._download(req, parts.clear, parts.append)
            return b"".join(parts)
        target = Path(path)
        tmp = b.part_path(target)
        try:
            with tmp.open("wb") as f:

                def restart() -> None:
                    f.seek(0)
                    f.truncate()

                size = self._download(req, restart, f.write)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def _download(
        self,
        req: export_pb2.DownloadExportFileRequest,
        restart: Callable[[], None],
        write: Callable[[bytes], Any],
    ) -> int:
        retry = 0
        while True:
            restart()
            received, total = 0, -1
            try:
                for chunk in self.exports.DownloadExportFile(req):
                    if chunk.offset != received:
                        raise DownloadIncomplete(f"expected offset {received}, got {chunk.offset}")
                    write(chunk.data)
                    received += len(chunk.data)
                    total = chunk.total_size
            except grpc.RpcError as e:
                delay = _stream_delay(self.retry_policy, retry, e)
                if delay is None:
                    raise
                time.sleep(delay)
                retry += 1
                continue
            if total >= 0 and received != total:
                raise DownloadIncomplete(f"got {received} of {total} bytes")
            return received

    # -- market data ---------------------------------------------------------------------------

    def import_dataset(
        self,
        path: str | Path,
        *,
        name: str = "",
        symbol: str = "",
        timeframe: str = "",
        description: str = "",
    ) -> market_data_pb2.Dataset:
        """Uploads a CSV or Parquet file of bars as a new dataset, streamed in 1 MiB chunks.

        Retried only when the server refused it up front (RESOURCE_EXHAUSTED with
        RetryInfo: rate limit, upload memory): after UNAVAILABLE the dataset may already
        exist, and a second upload would make a duplicate."""
        p = b.existing_file(path)
        header = b.import_header(
            p, name=name, symbol=symbol, timeframe=timeframe, description=description
        )
        retry = 0
        while True:
            try:
                return self.market_data.ImportBars(b.import_requests(p, header)).dataset
            except grpc.RpcError as e:
                hint = r.error_retry_delay(e)
                delay = (
                    r.next_delay(self.retry_policy, retry, "ImportBars", e.code(), hint, None)
                    if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    else None
                )
                if delay is None:
                    raise
                time.sleep(delay)
                retry += 1


def _stream_delay(policy: r.RetryPolicy, retry: int, e: grpc.RpcError) -> float | None:
    """Every stratopt server stream only reads, so it counts as idempotent."""
    code = e.code() if hasattr(e, "code") else None
    return r.next_delay(policy, retry, "Stream", code, r.error_retry_delay(e), None)


class _Resubscribing(abc.ABC):
    """The loop every long-lived stream of the client shares (`JobWatch`, `LiveFollow`,
    `NotificationFollow`): read a subscription, and when it breaks (UNAVAILABLE) or ends
    while there is more to come, subscribe again with backoff, for up to
    ``reconnect_window`` seconds without progress (`retry.Reconnect`). Other errors are
    raised. Subclasses say how to subscribe, what a reply yields (and whether it is
    progress), and when the stream is over."""

    def __init__(self, client: Client, *, reconnect: bool, reconnect_window: float) -> None:
        self.client = client
        self.reconnect = reconnect
        self.reconnect_window = reconnect_window
        self._reconnect = r.Reconnect(client.retry_policy, reconnect_window)
        self._call: Any = None
        self._closed = False

    @property
    def reconnects(self) -> int:
        """How many times it subscribed again."""
        return self._reconnect.count

    @abc.abstractmethod
    def _subscribe(self) -> Any:
        """A new stream call, resuming where the last one left off."""

    @abc.abstractmethod
    def _accept(self, reply: Any) -> Any | None:
        """What to yield for `reply` (None: nothing); marks progress."""

    def _ended(self) -> bool:
        """Whether everything has come (no more subscribing)."""
        return False

    def _still_open(self) -> bool:
        """Whether a stream that ended normally should be subscribed again."""
        return True

    def __iter__(self) -> Iterator[Any]:
        policy = self.client.retry_policy
        while not self._ended() and not self._closed:
            self._call = self._subscribe()
            error = None
            try:
                for reply in self._call:
                    event = self._accept(reply)
                    if event is not None:
                        yield event
                    if self._ended():
                        return
            except grpc.RpcError as e:
                if self._closed:
                    return
                if not self.reconnect or _stream_delay(policy, 0, e) is None:
                    raise
                error = e
            except GeneratorExit:
                self._call.cancel()  # the caller stopped iterating: end the stream
                raise
            else:
                if not self.reconnect or not self._still_open():
                    return
            delay = self._reconnect.delay(error)
            if delay is None:
                return
            time.sleep(delay)

    def close(self) -> None:
        """Stops reading (from another thread too); what it reads about goes on."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class JobWatch(_Resubscribing):
    """A job's progress: iterate for `WatchJobResponse` events until the job ends.

    The first event is always a SNAPSHOT of the job. If the stream breaks (UNAVAILABLE: a
    server restart, a network cut) or ends before the job did, the watch subscribes again
    with backoff, for up to ``reconnect_window`` seconds without progress, and the server
    starts again from a fresh SNAPSHOT, so no state is missed (trial events in the gap are
    summed up by the snapshot). A subscription that brings nothing past its SNAPSHOT does
    not restart that window, so a server that keeps ending streams is not polled forever.
    Other errors (NOT_FOUND, PERMISSION_DENIED) are raised as ``grpc.RpcError``. ``.job``
    is the latest state seen, ``.result()`` waits for the end and returns the optimization
    result.
    """

    def __init__(
        self, client: Client, job_id: str, *, reconnect: bool = True,
        reconnect_window: float = 120.0,
    ) -> None:  # fmt: skip
        super().__init__(client, reconnect=reconnect, reconnect_window=reconnect_window)
        self.job_id = job_id
        self.job: optimization_pb2.Job | None = None
        self._seen = 0  # events of the current subscription

    @property
    def done(self) -> bool:
        return self.job is not None and self.job.state in b.TERMINAL_STATES

    def _subscribe(self) -> Any:
        self._seen = 0
        return self.client.optimization.WatchJob(
            optimization_pb2.WatchJobRequest(job_id=self.job_id)
        )

    def _accept(self, reply: optimization_pb2.WatchJobResponse) -> Any:
        if self._seen:  # past the SNAPSHOT: the job is making progress again
            self._reconnect.progress()
        self._seen += 1
        self.job = reply.job
        return reply

    def _ended(self) -> bool:
        return self.done

    def __iter__(self) -> Iterator[optimization_pb2.WatchJobResponse]:
        return super().__iter__()

    def wait(self) -> optimization_pb2.Job:
        """Consumes the events until the job ends; returns its final state."""
        for _ in self:
            pass
        if self.job is None:
            raise RuntimeError(f"job {self.job_id}: the watch ended without any event")
        return self.job

    def result(self) -> optimization_pb2.GetOptimizationResultResponse:
        """The job's result (best trial, Pareto front, importances, validation), once the
        job has ended; watches until then."""
        if not self.done:
            self.wait()
        req = optimization_pb2.GetOptimizationResultRequest(job_id=self.job_id)
        return self.client.optimization.GetOptimizationResult(req)


class _SequenceFollow(_Resubscribing):
    """What `LiveFollow` and `NotificationFollow` add: a sequence-numbered stream read in
    order and each once (`builders.SequenceCursor`), subscribed again after the last
    sequence yielded."""

    def __init__(
        self, client: Client, cursor: b.SequenceCursor, *, reconnect: bool,
        reconnect_window: float,
    ) -> None:  # fmt: skip
        super().__init__(client, reconnect=reconnect, reconnect_window=reconnect_window)
        self.cursor = cursor

    @property
    def after(self) -> int:
        """The last sequence seen."""
        return self.cursor.after

    @property
    def dropped(self) -> int:
        """Events the server left out because this reader was too slow."""
        return self.cursor.dropped

    def _accept(self, reply: Any) -> Any | None:
        self._reconnect.progress()
        return self.cursor.accept(reply)


class LiveFollow(_SequenceFollow):
    """The signals or alerts of a paper-trading run: iterate for `Signal`/`Alert` messages,
    in sequence order and each once, until the run ends.

    It starts after sequence ``after`` (0: from the next one). If the stream breaks
    (UNAVAILABLE: a server restart, a network cut) or ends while the run still runs (a
    server draining its streams), it subscribes again after the last sequence it yielded,
    with backoff, for up to ``reconnect_window`` seconds of the server being away: what was
    recorded meanwhile comes then, and a repeat is skipped. Other errors (NOT_FOUND,
    FAILED_PRECONDITION for a run that is not running) are raised. ``.after`` is the last
    sequence seen; ``.dropped`` counts events the server left out because this reader was
    too slow (they are in the recorded lists). ``close()`` stops following, not the run.
    """

    def __init__(
        self, client: Client, strategy_id: str, kind: b.LiveKind, after: int = 0, *,
        reconnect: bool = True, reconnect_window: float = 120.0,
    ) -> None:  # fmt: skip
        self.strategy_id = strategy_id
        self.live = b.LiveCursor(kind, after)
        super().__init__(client, self.live, reconnect=reconnect, reconnect_window=reconnect_window)

    def _subscribe(self) -> Any:
        return self.live.subscribe(self.client.strategies, self.strategy_id)

    def _still_open(self) -> bool:
        """Whether the run still runs; a server that does not answer yet counts as yes."""
        req = strategy_pb2.GetPerformanceRequest(strategy_id=self.strategy_id)
        try:
            return b.is_running(self.client.strategies.GetPerformance(req).performance)
        except grpc.RpcError as e:
            if _stream_delay(self.client.retry_policy, 0, e) is None:
                raise
            return True


class NotificationFollow(_SequenceFollow):
    """The caller's notifications after sequence ``after``, in order and each once, for as
    long as the caller iterates (notifications never end), across server restarts as
    `LiveFollow` does. `Client.follow_notifications` starts it where a listing ends."""

    def __init__(
        self, client: Client, after: int, *, reconnect: bool = True,
        reconnect_window: float = 120.0,
    ) -> None:  # fmt: skip
        self.notifications = b.NotificationCursor(after)
        super().__init__(
            client, self.notifications, reconnect=reconnect, reconnect_window=reconnect_window
        )

    def _subscribe(self) -> Any:
        return self.notifications.subscribe(self.client.system)
