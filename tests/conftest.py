"""Shared fixtures: a real `stratopt serve` subprocess on a free port with a real SQLite file.

Tests talk to it over the network exactly as users do. Tokens are obtained by logging in as
the demo users that development mode seeds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-secret-" + "x" * 40
DEMO_PASSWORDS = {
    "admin": "blue-harbor-lantern-1",
    "trader": "green-meadow-compass-2",
    "analyst": "amber-river-journal-3",
    "viewer": "silver-canyon-window-4",
}


TEST_SECURITY_ENV = {
    # Cheap password hashing (4 MiB, ~10 ms) so seeding and logins stay fast; production
    # keeps the default of 17.
    "STRATOPT_SCRYPT_LOG2_N": "12",
    # Every test calls from 127.0.0.1: keep all refusals in the audit trail.
    "STRATOPT_AUDIT_REFUSALS_PER_MINUTE": "1000000",
    # Test suites fire calls far faster than a person; the limits themselves are tested
    # in tests/integration/security with their own tiny settings.
    **{
        f"STRATOPT_RATE_LIMIT_{c}": "10000/s burst 10000"
        for c in (
            "GENERAL",
            "BACKTEST",
            "OPTIMIZATION",
            "EXPORT",
            "DATA",
            "AUTH",
            "AUTH_PER_IP",
            "AUTH_PER_USER",
        )
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TOKEN_REUSE_S = 600.0
"""Well inside the server's default 15-minute access token lifetime."""


@dataclass
class LiveServer:
    addr: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.addr)

    def token(self, username: str) -> str:
        """An access token for a demo user, cached per server for TOKEN_REUSE_S: a module's
        server outlives the 15-minute access token on a slow CI machine."""
        cached = self._tokens.get(username)
        if cached is None or time.monotonic() - cached[1] > TOKEN_REUSE_S:
            token = login(self.addr, username, DEMO_PASSWORDS[username])
            self._tokens[username] = cached = (token, time.monotonic())
        return cached[0]

    def md(self, username: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token(username)}")]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def login(addr: str, username: str, password: str) -> str:
    from stratopt.v1 import auth_pb2, auth_pb2_grpc

    with grpc.insecure_channel(addr) as ch:
        stub = auth_pb2_grpc.AuthServiceStub(ch)
        reply = stub.Login(auth_pb2.LoginRequest(username=username, password=password))
        return str(reply.access_token)


_SERVERS: dict[str, LiveServer] = {}


def start_server(
    tmp: Path, extra_env: dict[str, str] | None = None, *, dev: bool = True, addr: str = ""
) -> LiveServer:
    """A `stratopt serve` subprocess on `tmp`; on `addr` (a restart where clients wait) or
    a free port."""
    addr = addr or f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "STRATOPT_GRPC_ADDR": addr,
        "STRATOPT_DATA_DIR": str(tmp),
        "STRATOPT_JWT_SECRET": JWT_SECRET,
        "STRATOPT_LOG_LEVEL": "INFO",
        "STRATOPT_SAMPLE_DATA": "0",
        "STRATOPT_PRECOMPILE": "0",
        **TEST_SECURITY_ENV,
        **(extra_env or {}),
    }
    log_path = tmp / "server.log"
    args = [sys.executable, "-m", "stratopt.client.cli", "serve"] + (["--dev"] if dev else [])
    proc = subprocess.Popen(
        args, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT
    )
    srv = LiveServer(addr, tmp, proc, log_path, env)
    _SERVERS[addr] = srv
    wait_serving(srv)
    return srv


def wait_serving(srv: LiveServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{srv.logs()}")
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not serving after {timeout}s:\n{srv.logs()}")


def stop_server(srv: LiveServer) -> None:
    if srv.proc.poll() is None:
        srv.proc.terminate()
        try:
            srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
    _SERVERS.pop(srv.addr, None)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole session; tests must not depend on each other's data."""
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    stop_server(srv)


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of its own, for tests that restart it or need an empty database."""
    srv = start_server(tmp_path)
    yield srv
    stop_server(srv)
