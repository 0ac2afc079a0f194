"""Server assembly: database, domain services, servicers, interceptors, health, reflection.

`Server` is what `stratopt serve` runs and what integration tests start on a free port; both
go through the same code so the tests exercise the real wiring.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from stratopt import __version__
from stratopt.api.auth_servicer import AuthServicer
from stratopt.api.backtest_servicer import BacktestServicer
from stratopt.api.errors_interceptor import ErrorInterceptor
from stratopt.api.export_servicer import ExportServicer
from stratopt.api.interceptor_chain import CachedChain
from stratopt.api.limits import RequestLimitsInterceptor
from stratopt.api.market_data_servicer import MarketDataServicer
from stratopt.api.metrics_interceptor import MetricsInterceptor
from stratopt.api.optimization_servicer import OptimizationServicer
from stratopt.api.release_interceptor import ReleaseInterceptor
from stratopt.api.strategy_servicer import StrategyServicer
from stratopt.api.system_servicer import SystemServicer
from stratopt.api.unimplemented import fill_unimplemented
from stratopt.api.user_definition_servicer import UserDefinitionServicer
from stratopt.data.importers import MemoryBudget
from stratopt.security.tokens import TokenService
from stratopt.server import bootstrap, datadir
from stratopt.server.generic_handlers import GenericOnly
from stratopt.server.job_notices import JobEndNotices
from stratopt.server.jobs_assembly import OptimizationRuntime, build_optimization
from stratopt.server.live_assembly import LiveRuntime, build_live
from stratopt.server.metrics import ServerMetrics
from stratopt.server.security_assembly import STREAM_HEARTBEAT_S, SecurityServices
from stratopt.server.settings import Settings
from stratopt.services.backtests import BacktestCatalog
from stratopt.services.compare import StrategyComparison
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.exports import ExportCatalog
from stratopt.services.overview import SystemOverview
from stratopt.services.sharing import StrategySharing
from stratopt.services.strategies import StrategyCatalog
from stratopt.services.user_definitions import UserDefinitions
from stratopt.store import migrate, outages
from stratopt.store.db import Database
from stratopt.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    backtest_pb2,
    backtest_pb2_grpc,
    export_pb2,
    export_pb2_grpc,
    market_data_pb2,
    market_data_pb2_grpc,
    optimization_pb2,
    optimization_pb2_grpc,
    rules_pb2,
    rules_pb2_grpc,
    strategy_pb2,
    strategy_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)

log = logging.getLogger("stratopt.server.app")


def _service(pb_module: ModuleType) -> ServiceDescriptor:
    (service,) = pb_module.DESCRIPTOR.services_by_name.values()  # one service per .proto
    return service


SERVICES: dict[str, tuple[ServiceDescriptor, ModuleType]] = {
    _service(pb_module).full_name: (_service(pb_module), grpc_module)
    for pb_module, grpc_module in (
        (auth_pb2, auth_pb2_grpc),
        (market_data_pb2, market_data_pb2_grpc),
        (strategy_pb2, strategy_pb2_grpc),
        (backtest_pb2, backtest_pb2_grpc),
        (optimization_pb2, optimization_pb2_grpc),
        (export_pb2, export_pb2_grpc),
        (system_pb2, system_pb2_grpc),
        (rules_pb2, rules_pb2_grpc),
    )
}
"""Every service this server answers, by full name, with its generated grpc module.
Registration, reflection and health all follow this one table."""
ENGINE_HEALTH = "stratopt.engine"
"""Health service name that turns SERVING once the numba kernels are compiled or loaded."""


@dataclass
class Runtime:
    """The process-wide services the servicers share."""

    settings: Settings
    db: Database
    tokens: TokenService
    catalog: StrategyCatalog
    datasets: DatasetCatalog
    backtests: BacktestCatalog
    exports: ExportCatalog
    started_at: float = field(default_factory=time.time)
    engine_ready: bool = False
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    security: SecurityServices | None = None
    optimization: OptimizationRuntime | None = None
    live: LiveRuntime | None = None
    job_notices: JobEndNotices | None = None
    upload_budget: MemoryBudget | None = None


@dataclass(frozen=True)
class Gauges:
    """What a call may hold while it runs and must give back when it ends, however it ends
    (the fault suite compares these before and after clients vanish mid-call)."""

    tasks: int
    """asyncio tasks alive in the server's event loop."""
    open_streams: int
    """Server streams counted by the stream cap, every user together."""
    upload_bytes: int
    """Bytes that uploads in progress hold in the upload memory budget."""


def servicers(rt: Runtime) -> list[Any]:
    """One servicer for each of `SERVICES`."""
    assert rt.security is not None and rt.optimization is not None and rt.live is not None
    upload_budget = rt.upload_budget = MemoryBudget(rt.settings.upload_memory_mb * 1024 * 1024)
    return [
        AuthServicer(rt.security.accounts),
        MarketDataServicer(
            rt.datasets,
            rt.live.service,
            upload_budget,
        ),
        StrategyServicer(  # type: ignore[abstract]
            rt.catalog,
            StrategySharing(rt.db),
            rt.live.service,
            compare=StrategyComparison(rt.db, rt.backtests),
            definitions=UserDefinitions(rt.db),
        ),
        BacktestServicer(rt.backtests),
        OptimizationServicer(rt.optimization.jobs),
        ExportServicer(rt.exports),
        SystemServicer(
            SystemOverview(
                rt.db, rt.started_at, lambda: rt.engine_ready, streams=rt.security.streams
            ),
            rt.live.notifications,
        ),
        UserDefinitionServicer(UserDefinitions(rt.db)),
    ]


class Server:
    """One server process. `reuse_port` lets sibling processes share the listen port (SO_REUSEPORT,
    `stratopt serve --processes N`); `extra_addrs` are further listen addresses (each process's
    own port, for the gateway's load balancing)."""

    def __init__(
        self, settings: Settings, *, reuse_port: bool = False, extra_addrs: Sequence[str] = ()
    ) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.extra_addrs = tuple(extra_addrs)
        self.grpc: grpc.aio.Server | None = None
        self.runtime: Runtime | None = None
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._monitor: asyncio.Task[None] | None = None
        self.metrics = ServerMetrics()
        self.metrics_port = 0

    async def start(self) -> int:
        s = self.settings
        datadir.make_private(s.data_dir)
        db = Database(s.resolved_database_url)
        await migrate.upgrade(db)
        tokens = TokenService(bootstrap.token_config(s))
        self.runtime = rt = Runtime(
            settings=s,
            db=db,
            tokens=tokens,
            catalog=StrategyCatalog(db),
            datasets=(datasets := DatasetCatalog(db, s.data_dir / "datasets")),
            backtests=(backtests := BacktestCatalog(db, datasets, s.data_dir / "backtests")),
            exports=ExportCatalog(
                db,
                s.data_dir / "exports",
                backtests,
                default_ttl=timedelta(hours=s.export_ttl_hours),
            ),
        )
        rt.optimization = build_optimization(db, datasets, s.workers)
        rt.exports.best_params = rt.optimization.jobs.best_parameters
        rt.exports.jobs = rt.optimization.jobs
        rt.live = build_live(
            db,
            datasets,
            allow_private_webhooks=s.dev,
            queue_size=s.live_queue_size,
            # Stable across restarts of this server, distinct between replicas.
            runner=s.instance_id or f"{socket.gethostname()}:{s.data_dir.resolve()}",
        )
        rt.job_notices = JobEndNotices(rt.live.notifier)
        rt.optimization.bus.listen(rt.job_notices)
        rt.optimization.bus.listen(self.metrics.on_job_event)
        rt.exports.notify = rt.live.notifier.notify
        if s.sample_data:
            await rt.datasets.ensure_samples()
        await bootstrap.ensure_users(rt.db, s)
        rt.security = security = SecurityServices.build(s, db, tokens)
        rt.background.append(asyncio.create_task(security.housekeeping()))
        rt.background.append(
            asyncio.create_task(security.stream_cap.heartbeat_forever(STREAM_HEARTBEAT_S))
        )
        rt.background.append(asyncio.create_task(rt.exports.sweep_forever(s.export_sweep_seconds)))

        server = grpc.aio.server(
            # Field bounds last: a request too large to serve is still authenticated,
            # authorized and counted first, like any other call.
            # Composed once per method, not on every call (api/interceptor_chain.py).
            interceptors=[
                CachedChain(
                    [
                        # Outside everything: an aborted call drops its request at once (a
                        # refused 50 MB request otherwise stayed in memory until a full
                        # garbage collection).
                        ReleaseInterceptor(),
                        # Then the request id that every later log line carries, and the
                        # status code as the client sees it.
                        MetricsInterceptor(self.metrics.rpc),
                        ErrorInterceptor(outages.translate),
                        *security.interceptors(refused=self.metrics.rpc.refused),
                        RequestLimitsInterceptor(),
                    ]
                )
            ],
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # Off unless asked: a second server on a busy port must fail, not share it.
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
            ],
        )
        # Every service as a generic handler only (server/generic_handlers.py).
        services: Any = GenericOnly(server)
        self._add_servicers(services, rt)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, services)
        # The asyncio servicer by name: enable_server_reflection picks it only for a
        # grpc.aio.Server, which the adapter is not.
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            reflection.aio.ReflectionServicer(
                [*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME]
            ),
            services,
        )
        self.port = server.add_insecure_port(s.grpc_addr)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {s.grpc_addr}")
        for addr in self.extra_addrs:
            if server.add_insecure_port(addr) == 0:
                raise RuntimeError(f"cannot listen on {addr}")
        await server.start()
        self.grpc = server
        await self._set_health(True)
        self._monitor = asyncio.create_task(self._watch_database())
        rt.background.append(asyncio.create_task(self._warm_engine()))
        await rt.optimization.start()
        await rt.live.start()
        if s.metrics_addr:
            self.metrics_port = self.metrics.serve(s.metrics_addr)
            rt.background.append(asyncio.create_task(self.metrics.refresh_forever(db)))
        log.info(
            "listening",
            extra={
                "addr": s.grpc_addr,
                "port": self.port,
                "version": __version__,
                "database": db.backend,
            },
        )
        return self.port

    @staticmethod
    def _add_servicers(server: Any, rt: Runtime) -> None:
        """Registers a servicer for every service; RPCs a servicer does not implement yet
        answer UNIMPLEMENTED, naming the RPC."""
        built = servicers(rt)
        for service, grpc_module in SERVICES.values():
            base = getattr(grpc_module, f"{service.name}Servicer")
            (servicer,) = [s for s in built if isinstance(s, base)]
            add = getattr(grpc_module, f"add_{service.name}Servicer_to_server")
            add(fill_unimplemented(servicer, service), server)

    async def _set_health(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set("", status)
        for name in SERVICES:
            await self.health.set(name, status)

    async def _warm_engine(self) -> None:
        assert self.runtime is not None
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        await self.health.set(ENGINE_HEALTH, not_serving)
        if self.settings.precompile:
            from stratopt.server.warmup import warm_up

            await asyncio.to_thread(warm_up)
        self.runtime.engine_ready = True
        await self.health.set(ENGINE_HEALTH, health_pb2.HealthCheckResponse.SERVING)

    async def _watch_database(self) -> None:
        assert self.runtime is not None
        serving = True
        while True:
            await asyncio.sleep(self.settings.health_interval_seconds)
            ok = await self.runtime.db.ping()
            if ok != serving:
                serving = ok
                await self._set_health(ok)
                log.warning("database %s", "reachable again" if ok else "unreachable")

    def gauges(self) -> Gauges:
        """A snapshot of what running calls hold; call it on the server's event loop."""
        rt = self.runtime
        assert rt is not None and rt.security is not None and rt.upload_budget is not None
        return Gauges(
            tasks=len(asyncio.all_tasks()),
            open_streams=rt.security.streams.total_in_use(),
            upload_bytes=rt.upload_budget.used,
        )

    async def stop(self, grace: float = 5.0) -> None:
        if self._monitor:
            self._monitor.cancel()
        if self.grpc is not None:
            await self.health.enter_graceful_shutdown()
            await self._end_open_streams()
            await self.grpc.stop(grace)
        if self.runtime is not None:
            for t in self.runtime.background:
                t.cancel()
            if self.runtime.job_notices is not None:
                await self.runtime.job_notices.drain()
            if self.runtime.live is not None:
                await self.runtime.live.stop()
            if self.runtime.optimization is not None:
                await self.runtime.optimization.stop()
            await self.runtime.db.dispose()
        self.metrics.stop()
        log.info("stopped")

    async def _end_open_streams(self) -> None:
        """Live runs' streams, job watches and notification streams never end by themselves
        and would hold the whole grace (5 s of every restart): end them before draining the
        other calls. Live runs stop first (they resume at the next start). Their clients
        subscribe again on the next server: after the last sequence they saw, or from a
        fresh job snapshot."""
        rt = self.runtime
        if rt is None:
            return
        if rt.live is not None:
            await rt.live.end_streams()
        if rt.optimization is not None:
            await rt.optimization.end_watches()

    async def wait(self) -> None:
        assert self.grpc is not None
        await self.grpc.wait_for_termination()


async def serve(
    settings: Settings, *, reuse_port: bool = False, extra_addrs: Sequence[str] = ()
) -> None:
    """Runs until SIGTERM/SIGINT, then drains in-flight calls for up to 5 s.

    With ``settings.processes > 1`` it supervises that many server processes instead
    (server/processes.py), which call this with `reuse_port` and their own address (and
    keep ``settings.processes``, so they know they share the database with siblings)."""
    from stratopt.server.gateway import start_gateway

    if settings.processes < 1:
        raise bootstrap.BootstrapError(f"processes must be at least 1, not {settings.processes}")
    if settings.processes > 1 and not reuse_port:  # the supervisor, not one of its processes
        from stratopt.server.processes import serve_processes

        await serve_processes(settings)
        return

    server = Server(settings, reuse_port=reuse_port, extra_addrs=extra_addrs)
    await server.start()
    gateway = await start_gateway(settings, server.port) if settings.gateway else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # What exists now (modules, servicers, caches) lives as long as the process: take it out
    # of the garbage collector's full passes, which the allocations of running strategies
    # trigger every few seconds. Each pass scanned all of it and held the event loop for
    # 100-160 ms (every stream and bar of the server waited); now ~10 ms (bench_live.py).
    gc.freeze()
    await stop.wait()
    log.info("shutting down")
    if gateway is not None:
        await asyncio.to_thread(gateway.stop)
    await server.stop()
