"""`AsyncClient`: the asyncio twin of `Client` (sync_client.py), on grpc.aio.

Same constructor, same stubs as attributes (their calls are awaited, their streams are
async iterators), same helpers as coroutines and async iterators. Use it as
``async with AsyncClient(...) as client:`` so the channel is closed on the loop that made it.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio

from stratopt.client import builders as b
from stratopt.client import retry as r
from stratopt.client.async_calls import AsyncAuth, AsyncCallInterceptor
from stratopt.client.channels import ChannelOptions, channel_credentials, default_target, options
from stratopt.client.session import Credentials, RefreshCallback
from stratopt.client.sync_client import DownloadIncomplete
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


class AsyncClient:
    """A grpc.aio connection to one stratopt server, with credentials and retries handled.

    Arguments as for `Client`. Create it inside the event loop that uses it."""

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
        self.credentials = Credentials(
            api_key=api_key,
            access_token=access_token,
            refresh_token=refresh_token,
            on_refresh_token=on_refresh_token,
        )
        # Refreshes go over a channel of their own, without the interceptor (no recursion).
        self._raw = _channel(self.target, creds, opts, [])
        self._session = AsyncAuth(self.credentials, self._raw)
        self.interceptor = AsyncCallInterceptor(self._session, self.retry_policy)
        self.channel = _channel(self.target, creds, opts, self.interceptor.interceptors())
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.strategies = strategy_pb2_grpc.StrategyServiceStub(self.channel)
        self.backtests = backtest_pb2_grpc.BacktestServiceStub(self.channel)
        self.optimization = optimization_pb2_grpc.OptimizationServiceStub(self.channel)
        self.market_data = market_data_pb2_grpc.MarketDataServiceStub(self.channel)
        self.exports = export_pb2_grpc.ExportServiceStub(self.channel)
        self.system = system_pb2_grpc.SystemServiceStub(self.channel)
        self.user_definitions = rules_pb2_grpc.UserDefinitionServiceStub(self.channel)

    # -- lifecycle and sessions ----------------------------------------------------------

    async def close(self) -> None:
        await self.channel.close()
        await self._raw.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stub(self, cls: Callable[[grpc.aio.Channel], T]) -> T:
        return cls(self.channel)

    async def login(self, username: str, password: str) -> auth_pb2.User:
        return (await self._session.login(username, password)).user

    async def refresh(self) -> None:
        await self._session.refresh()

    async def logout(self) -> bool:
        return await self._session.logout()

    @property
    def refresh_token(self) -> str:
        return self.credentials.refresh_token

    # -- generic helpers -------------------------------------------------------------------

    async def pages(
        self, method: Callable[..., Any], request: Any, field: str, *, limit: int = 0
    ) -> AsyncIterator[Any]:
        """Every item of a paginated List call, page after page (at most ``limit``)."""
        seen = 0
        while True:
            reply = await method(request)
            for item in getattr(reply, field):
                yield item
                seen += 1
                if limit and seen >= limit:
                    return
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    async def stream(self, method: Callable[[Any], Any], request: Any) -> AsyncIterator[Any]:
        """As `Client.stream`: retried before the first message, raised after it."""
        retry = 0
        while True:
            got_one = False
            call = method(request)
            try:
                async for item in call:
                    got_one = True
                    yield item
                return
            except grpc.aio.AioRpcError as e:
                delay = None if got_one else _stream_delay(self.retry_policy, retry, e)
                if delay is None:
                    raise
            finally:
                call.cancel()  # the caller stopped early: end the stream on the server too
            await asyncio.sleep(delay)
            retry += 1

    # -- backtests -------------------------------------------------------------------------

    async def backtest(
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
        """As `Client.backtest`."""
        if bars_file is not None:
            if dataset_id:
                raise ValueError("give dataset_id or bars_file, not both")
            dataset_id = (await self.import_dataset(bars_file)).id
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
        return (await self.backtests.RunBacktest(req)).backtest

    # -- optimization ------------------------------------------------------------------------

    async def start_optimization(
        self,
        spec: optimization_pb2.OptimizationSpec,
        priority: optimization_pb2.JobPriority.ValueType = optimization_pb2.JOB_PRIORITY_NORMAL,
    ) -> optimization_pb2.Job:
        req = optimization_pb2.StartOptimizationRequest(spec=spec, priority=priority)
        return (await self.optimization.StartOptimization(req)).job

    def watch_job(
        self, job_id: str, *, reconnect: bool = True, reconnect_window: float = 120.0
    ) -> AsyncJobWatch:
        return AsyncJobWatch(self, job_id, reconnect=reconnect, reconnect_window=reconnect_window)

    def follow_live(
        self,
        strategy_id: str,
        kind: b.LiveKind = "signals",
        after: int = 0,
        *,
        reconnect: bool = True,
        reconnect_window: float = 120.0,
    ) -> AsyncLiveFollow:
        """`Client.follow_live` for asyncio: ``async for event in client.follow_live(id)``."""
        return AsyncLiveFollow(
            self, strategy_id, kind, after, reconnect=reconnect, reconnect_window=reconnect_window
        )

    async def follow_notifications(
        self, after: int | None = None, *, reconnect: bool = True, reconnect_window: float = 120.0
    ) -> AsyncNotificationFollow:
        """`Client.follow_notifications` for asyncio (awaited, then ``async for``)."""
        if after is None:
            req = system_pb2.ListNotificationsRequest(page_size=1)
            after = (await self.system.ListNotifications(req)).newest_sequence
        return AsyncNotificationFollow(
            self, after, reconnect=reconnect, reconnect_window=reconnect_window
        )

    async def optimize_and_watch(
        self,
        spec: optimization_pb2.OptimizationSpec,
        priority: optimization_pb2.JobPriority.ValueType = optimization_pb2.JOB_PRIORITY_NORMAL,
    ) -> AsyncJobWatch:
        """Starts a job; ``async for`` the returned watch, then ``await .result()``."""
        return self.watch_job((await self.start_optimization(spec, priority)).id)

    # -- exports -------------------------------------------------------------------------------

    async def export_pine(
        self,
        *,
        strategy_id: str = "",
        job_id: str = "",
        strategy_type: str = "",
        parameters: Mapping[str, b.ParamValue] | None = None,
        title: str = "",
        include_execution: bool = False,
    ) -> export_pb2.ExportPineScriptResponse:
        req = b.pine_request(
            strategy_id=strategy_id,
            job_id=job_id,
            strategy_type=strategy_type,
            parameters=parameters,
            title=title,
            include_execution=include_execution,
        )
        return await self.exports.ExportPineScript(req)

    async def create_report(
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
        return (await self.exports.CreateReport(req)).file

    async def download_export(self, export_id: str) -> bytes:
        """An export's bytes, streamed in chunks and checked against ``total_size``; a
        broken connection restarts the download per the retry policy."""
        req = export_pb2.DownloadExportFileRequest(export_id=export_id)
        retry = 0
        while True:
            parts: list[bytes] = []
            received, total = 0, -1
            try:
                async for chunk in self.exports.DownloadExportFile(req):
                    if chunk.offset != received:
                        raise DownloadIncomplete(f"expected offset {received}, got {chunk.offset}")
                    parts.append(chunk.data)
                    received += len(chunk.data)
                    total = chunk.total_size
            except grpc.aio.AioRpcError as e:
                delay = _stream_delay(self.retry_policy, retry, e)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                retry += 1
                continue
            if total >= 0 and received != total:
                raise DownloadIncomplete(f"got {received} of {total} bytes")
            return b"".join(parts)

    # -- market data ---------------------------------------------------------------------------

    async def import_dataset(
        self,
        path: str | Path,
        *,
        name: str = "",
        symbol: str = "",
        timeframe: str = "",
        description: str = "",
    ) -> market_data_pb2.Dataset:
        """As `Client.import_dataset`; the file is read off the event loop."""
        p = b.existing_file(path)
        header = b.import_header(
            p, name=name, symbol=symbol, timeframe=timeframe, description=description
        )
        retry = 0
        while True:
            try:
                reply = await self.market_data.ImportBars(_read_off_loop(p, header))
                return reply.dataset
            except grpc.aio.AioRpcError as e:
                hint = r.error_retry_delay(e)
                delay = (
                    r.next_delay(self.retry_policy, retry, "ImportBars", e.code(), hint, None)
                    if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    else None
                )
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                retry += 1


def _channel(
    target: str,
    creds: grpc.ChannelCredentials | None,
    opts: list[tuple[str, Any]],
    interceptors: list[Any],
) -> grpc.aio.Channel:
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, opts, interceptors=interceptors)


async def _read_off_loop(
    path: Path, header: market_data_pb2.ImportHeader
) -> AsyncIterator[market_data_pb2.ImportBarsRequest]:
    """`builders.import_requests`, each chunk read in a worker thread."""
    yield market_data_pb2.ImportBarsRequest(header=header)
    with path.open("rb") as f:
        while data := await asyncio.to_thread(f.read, b.UPLOAD_CHUNK):
            yield market_data_pb2.ImportBarsRequest(chunk=data)


def _stream_delay(policy: r.RetryPolicy, retry: int, e: grpc.aio.AioRpcError) -> float | None:
    return r.next_delay(policy, retry, "Stream", e.code(), r.error_retry_delay(e), None)


class _AsyncResubscribing(abc.ABC):
    """`sync_client._Resubscribing` for asyncio: the loop `AsyncJobWatch`,
    `AsyncLiveFollow` and `AsyncNotificationFollow` share."""

    def __init__(self, client: AsyncClient, *, reconnect: bool, reconnect_window: float) -> None:
        self.client = client
        self.reconnect = reconnect
        self.reconnect_window = reconnect_window
        self._reconnect = r.Reconnect(client.retry_policy, reconnect_window)
        self._call: Any = None
        self._closed = False

    @property
    def reconnects(self) -> int:
        return self._reconnect.count

    @abc.abstractmethod
    def _subscribe(self) -> Any:
        """A new stream call, resuming where the last one left off."""

    @abc.abstractmethod
    def _accept(self, reply: Any) -> Any | None:
        """What to yield for `reply` (None: nothing); marks progress."""

    def _ended(self) -> bool:
        return False

    async def _still_open(self) -> bool:
        return True

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        policy = self.client.retry_policy
        while not self._ended() and not self._closed:
            self._call = self._subscribe()
            error = None
            try:
                async for reply in self._call:
                    event = self._accept(reply)
                    if event is not None:
                        yield event
                    if self._ended():
                        return
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
                if self._closed:
                    return
                if not isinstance(e, grpc.aio.AioRpcError):
                    self._call.cancel()
                    raise
                if not self.reconnect or _stream_delay(policy, 0, e) is None:
                    raise
                error = e
            except GeneratorExit:
                self._call.cancel()  # the caller stopped iterating: end the stream
                raise
            else:
                if not self.reconnect or not await self._still_open():
                    return
            delay = self._reconnect.delay(error)
            if delay is None:
                return
            await asyncio.sleep(delay)

    def close(self) -> None:
        """Stops reading; what it reads about goes on."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class AsyncJobWatch(_AsyncResubscribing):
    """`JobWatch` for asyncio: ``async for event in watch``, then ``await watch.result()``."""

    def __init__(
        self, client: AsyncClient, job_id: str, *, reconnect: bool = True,
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

    def __aiter__(self) -> AsyncIterator[optimization_pb2.WatchJobResponse]:
        return self._events()

    async def wait(self) -> optimization_pb2.Job:
        async for _ in self:
            pass
        if self.job is None:
            raise RuntimeError(f"job {self.job_id}: the watch ended without any event")
        return self.job

    async def result(self) -> optimization_pb2.GetOptimizationResultResponse:
        if not self.done:
            await self.wait()
        req = optimization_pb2.GetOptimizationResultRequest(job_id=self.job_id)
        return await self.client.optimization.GetOptimizationResult(req)


class _AsyncSequenceFollow(_AsyncResubscribing):
    """`sync_client._SequenceFollow` for asyncio."""

    def __init__(
        self, client: AsyncClient, cursor: b.SequenceCursor, *, reconnect: bool,
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
        return self.cursor.dropped

    def _accept(self, reply: Any) -> Any | None:
        self._reconnect.progress()
        return self.cursor.accept(reply)


class AsyncLiveFollow(_AsyncSequenceFollow):
    """`LiveFollow` for asyncio: ``async for event in follow`` (sync_client.LiveFollow)."""

    def __init__(
        self, client: AsyncClient, strategy_id: str, kind: b.LiveKind, after: int = 0, *,
        reconnect: bool = True, reconnect_window: float = 120.0,
    ) -> None:  # fmt: skip
        self.strategy_id = strategy_id
        self.live = b.LiveCursor(kind, after)
        super().__init__(client, self.live, reconnect=reconnect, reconnect_window=reconnect_window)

    def _subscribe(self) -> Any:
        return self.live.subscribe(self.client.strategies, self.strategy_id)

    async def _still_open(self) -> bool:
        req = strategy_pb2.GetPerformanceRequest(strategy_id=self.strategy_id)
        try:
            return b.is_running((await self.client.strategies.GetPerformance(req)).performance)
        except grpc.aio.AioRpcError as e:
            if _stream_delay(self.client.retry_policy, 0, e) is None:
                raise
            return True


class AsyncNotificationFollow(_AsyncSequenceFollow):
    """`NotificationFollow` for asyncio (sync_client.NotificationFollow)."""

    def __init__(
        self, client: AsyncClient, after: int, *, reconnect: bool = True,
        reconnect_window: float = 120.0,
    ) -> None:  # fmt: skip
        self.notifications = b.NotificationCursor(after)
        super().__init__(
            client, self.notifications, reconnect=reconnect, reconnect_window=reconnect_window
        )

    def _subscribe(self) -> Any:
        return self.notifications.subscribe(self.client.system)
