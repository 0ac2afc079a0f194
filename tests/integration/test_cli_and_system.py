"""The `stratopt backtest` command and SystemService.GetOverview / engine health."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from stratopt.v1 import system_pb2 as pb
from stratopt.v1 import system_pb2_grpc as pbg

from stratopt.data.synthetic import generate_bars
from tests.conftest import LiveServer, start_server, stop_server


def test_cli_backtest_json_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    generate_bars(5_000, seed=2).to_frame().to_csv(path)
    cmd = [
        sys.executable,
        "-m",
        "stratopt.client.cli",
        "backtest",
        "--data",
        str(path),
        "--strategy",
        "sma_crossover",
        "-p",
        "fast=10",
        "-p",
        "slow=50",
        "--commission",
        "0.001",
    ]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["parameters"] == {"fast": 10, "slow": 50} and report["bars"] == 5_000
    assert report["metrics"]["num_trades"] > 0
    bad = subprocess.run(
        [*cmd[:-4], "-p", "fast=80", "-p", "slow=50"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "must be < slow" in bad.stderr
    unknown = subprocess.run([*cmd[:7], "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown strategy" in unknown.stderr


def test_overview(live_server: LiveServer) -> None:
    with live_server.channel() as ch:
        r = pbg.SystemServiceStub(ch).GetOverview(
            pb.GetOverviewRequest(), metadata=live_server.md("trader")
        )
    assert r.version and r.database_backend == "sqlite" and r.uptime.seconds >= 0


def test_engine_health_turns_serving_after_precompile(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {"STRATOPT_PRECOMPILE": "1"})
    try:
        with srv.channel() as ch:
            health = health_pb2_grpc.HealthStub(ch)
            deadline = time.monotonic() + 120
            while True:
                st = health.Check(health_pb2.HealthCheckRequest(service="stratopt.engine")).status
                if st == health_pb2.HealthCheckResponse.SERVING:
                    break
                assert time.monotonic() < deadline, "engine never became ready"
                time.sleep(0.2)
            overview = pbg.SystemServiceStub(ch).GetOverview(
                pb.GetOverviewRequest(), metadata=srv.md("viewer")
            )
            assert overview.engine_ready
    finally:
        stop_server(srv)
