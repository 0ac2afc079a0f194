"""`stratopt serve --processes N`: several server processes behind one port.

One Python process serves about 1,000-2,500 unary calls/s (its event loop is one core).
To use more cores, this supervisor starts N server processes:

- All of them listen on the configured address with SO_REUSEPORT, so the kernel spreads
  direct gRPC connections across them. Each also listens on a loopback port of its own,
  which the gateway (Envoy) balances per request (least request): a few long-lived HTTP/2
  connections from Envoy would otherwise land on one or two processes only.
- The supervisor migrates the database and creates the first users and the dev JWT secret
  once, then starts every process at the same time. They share the database and the data
  folder like replicas do: each runs its own optimization workers (jobs are claimed
  through the database) and is a distinct runner of paper-trading runs (`instance_id`
  gets a ``#i`` suffix), so a run of a process that dies is taken over by the others like
  a replica's.
- A process that exits is started again. SIGTERM/SIGINT stops the gateway, then every
  process (each drains its calls and hands its jobs back, as a single server does).

Each process keeps ``settings.processes`` (N), so it knows it has siblings: the stream cap
is then shared through leases in the database (server/security_assembly.py). Rate-limit
buckets count per process on SQLite (docs/operations.md); the metrics endpoint of process
i listens on the configured port + i.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stratopt.server import bootstrap, datadir, logs
from stratopt.server.gateway import Gateway, GatewayError, dialable, split_addr
from stratopt.server.settings import Settings
from stratopt.store import migrate
from stratopt.store.db import Database

log = logging.getLogger("stratopt.server.processes")

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
# A process that keeps dying is restarted at most this often.
RESTART_PAUSE_S = 2.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def join_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _shift_port(addr: str, offset: int) -> str:
    if not addr or offset == 0:
        return addr
    host, port = split_addr(addr)
    return join_addr(host, port + offset) if port else addr


def _child_main(settings: Settings, own_addr: str) -> None:
    """The entry point of one server process (spawned: a fresh interpreter)."""
    from stratopt.server import event_loop
    from stratopt.server.app import serve

    logs.setup(settings.log_level, settings.log_json)
    with contextlib.suppress(KeyboardInterrupt):
        server = serve(settings, reuse_port=True, extra_addrs=[own_addr])
        event_loop.run(server, settings.event_loop)


class Supervisor:
    """Starts, restarts and stops the server processes (and the gateway in front of them)."""

    def __init__(self, settings: Settings) -> None:
        host, port = split_addr(settings.grpc_addr)
        self.settings = settings
        self.count = settings.processes
        self.addr = join_addr(host, port or free_port(dialable(host)))
        self.own_addrs = [f"127.0.0.1:{free_port()}" for _ in range(self.count)]
        base_id = settings.instance_id or f"{socket.gethostname()}:{settings.data_dir.resolve()}"
        self.child_settings = [
            replace(
                settings,
                grpc_addr=self.addr,
                gateway=False,
                instance_id=f"{base_id}#{i}",
                metrics_addr=_shift_port(settings.metrics_addr, i),
            )
            for i in range(self.count)
        ]
        self.procs: list[BaseProcess | None] = [None] * self.count
        self.gateway: Gateway | None = None
        self._ctx = multiprocessing.get_context("spawn")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.pid is not None]

    def _spawn(self, i: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=_child_main,
            args=(self.child_settings[i], self.own_addrs[i]),
            name=f"stratopt-serve-{i}",
        )
        proc.start()
        self.procs[i] = proc
        log.info("server process started", extra={"index": i, "pid": proc.pid})
        return proc

    async def _ready(self, i: int) -> None:
        """Waits until process `i` answers health checks on its own port as SERVING."""
        proc = self.procs[i]
        assert proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        # Short reconnect backoff: the port opens a few seconds after the process starts.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 200),
        ]
        async with grpc.aio.insecure_channel(self.own_addrs[i], options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while loop.time() < deadline:
                if not proc.is_alive():
                    raise RuntimeError(f"server process {i} exited with code {proc.exitcode}")
                with contextlib.suppress(grpc.RpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"server process {i} not serving after {START_TIMEOUT_S:g} s")

    async def prepare(self) -> None:
        """What a first start creates, done once before the processes race for it: the data
        folder, the schema, the dev JWT secret, the first users."""
        s = self.settings
        datadir.make_private(s.data_dir)
        bootstrap.token_config(s)
        db = Database(s.resolved_database_url)
        try:
            await migrate.upgrade(db)
            await bootstrap.ensure_users(db, s)
        finally:
            await db.dispose()

    async def start(self) -> None:
        await self.prepare()
        for i in range(self.count):
            self._spawn(i)
        await asyncio.gather(*(self._ready(i) for i in range(self.count)))
        if self.settings.gateway:
            await self._start_gateway()
        log.info(
            "all server processes serving",
            extra={
                "addr": self.addr,
                "processes": self.count,
                "pids": self.pids,
                "gateway": self.gateway.url if self.gateway is not None else None,
            },
        )

    async def _start_gateway(self) -> None:
        s = self.settings
        host, port = split_addr(self.addr)
        gateway = Gateway(
            s.gateway_addr,
            # What /healthz asks: the shared port, answered by whichever process the kernel
            # picks. The API itself goes to every process's own port, least request first.
            join_addr(dialable(host), port),
            s.data_dir / "gateway",
            admin_port=s.gateway_admin_port,
            web_dir=Path(s.web_dir) if s.web_dir else None,
            upstream_addrs=self.own_addrs,
            workers=s.gateway_workers,
        )
        try:
            await asyncio.to_thread(gateway.start)
        except GatewayError as e:
            log.warning("gateway not started, serving gRPC only: %s", e)
            return
        self.gateway = gateway

    async def watch(self, stop: asyncio.Event) -> None:
        """Restarts a process that exited, until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return
            for i, proc in enumerate(self.procs):
                if proc is not None and not proc.is_alive():
                    log.warning(
                        "server process exited; starting it again",
                        extra={"index": i, "pid": proc.pid, "exit_code": proc.exitcode},
                    )
                    await asyncio.sleep(RESTART_PAUSE_S)
                    self._spawn(i)

    async def stop(self) -> None:
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
        for proc in self.procs:
            if proc is not None and proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()  # SIGTERM: each process drains like a single server
        for proc in self.procs:
            if proc is None:
                continue
            await asyncio.to_thread(proc.join, STOP_TIMEOUT_S)
            if proc.is_alive():
                log.warning("server process did not stop; killing it", extra={"pid": proc.pid})
                proc.kill()
                await asyncio.to_thread(proc.join, 5)


async def serve_processes(settings: Settings) -> None:
    """Runs `settings.processes` server processes until SIGTERM/SIGINT."""
    supervisor = Supervisor(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await supervisor.start()
        await supervisor.watch(stop)
        log.info("shutting down")
    finally:
        await supervisor.stop()
    log.info("stopped")
