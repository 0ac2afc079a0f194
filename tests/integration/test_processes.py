"""`stratopt serve --processes 2 --gateway`: two real server processes behind one port.

Direct gRPC connections are spread by the kernel (SO_REUSEPORT); Envoy balances requests
over each process's own port. Tokens, jobs and watching work whichever process answers,
a process that dies is started again, and SIGTERM stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import LiveServer, free_port, start_server, stop_server
from tests.integration.jobs.helpers import make_dataset, start, watch_all

pytestmark = pytest.mark.slow


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    gateway = f"127.0.0.1:{free_port()}"
    srv = start_server(
        tmp_path,
        {"STRATOPT_PROCESSES": "2", "STRATOPT_GATEWAY": "1", "STRATOPT_GATEWAY_ADDR": gateway},
    )
    try:
        # `start_server` returns once the first process serves; the supervisor says when all
        # of them (and the gateway) do.
        wait_for(lambda: any(ready(line) for line in srv.logs().splitlines()))
        yield srv, gateway
    finally:
        stop_server(srv)


def ready(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return bool(
        record.get("processes") == 2 and record.get("msg") == "all server processes serving"
    )


def server_processes(srv: LiveServer) -> list[psutil.Process]:
    """The supervisor's server children (not Envoy, not multiprocessing's helpers)."""
    found = []
    for p in psutil.Process(srv.proc.pid).children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "multiprocessing.spawn" in " ".join(
                p.cmdline()
            ):
                found.append(p)
        except psutil.Error:
            pass  # it just ended
    return found


def established(proc: psutil.Process) -> set[int]:
    """Local ports of the process's established TCP connections."""
    return {c.laddr.port for c in proc.net_connections("tcp") if c.status == "ESTABLISHED"}


def wait_for(check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_two_processes_share_the_port_the_gateway_and_the_work(
    server: tuple[LiveServer, str],
) -> None:
    srv, gateway = server
    port = int(srv.addr.rsplit(":", 1)[1])
    children = server_processes(srv)
    assert len(children) == 2

    # Sixteen separate connections: the kernel spreads them over both processes, and one
    # login's token is accepted by either.
    md = srv.md("trader")
    channels = [
        grpc.insecure_channel(srv.addr, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(16)
    ]
    try:
        for ch in channels:
            reply = s_grpc.StrategyServiceStub(ch).ListStrategyTypes(
                s_pb.ListStrategyTypesRequest(), metadata=md, timeout=10
            )
            assert reply.strategy_types
        assert all(port in established(p) for p in children)
    finally:
        for ch in channels:
            ch.close()

    # Through Envoy: requests go to each process's own port (least request: with none in
    # flight, a random one of two; 24 calls miss a process with odds of 2^-24).
    own_ports_before = [established(p) - {port} for p in children]
    for _ in range(24):
        request = urllib.request.Request(f"http://{gateway}/v1/strategyTypes", headers=dict(md))
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["strategyTypes"]
    for proc, before in zip(children, own_ports_before, strict=True):
        assert established(proc) - {port} - before, "a process got no gateway traffic"

    # A job submitted on one connection, watched on another, run by either process's worker.
    with srv.channel() as ch:
        stub = pbg.OptimizationServiceStub(ch)
        job = start(stub, md, dataset_id=make_dataset(ch, md, bars=1_000), trials=30)
    with grpc.insecure_channel(srv.addr, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        events = watch_all(pbg.OptimizationServiceStub(ch), md, job.id, timeout=60)
    assert events[-1].job.state == pb.JOB_STATE_SUCCEEDED

    # A process that dies is replaced; the port keeps serving meanwhile.
    os.kill(children[0].pid, signal.SIGKILL)
    wait_for(
        lambda: (
            len(server_processes(srv)) == 2
            and children[0].pid not in {p.pid for p in server_processes(srv)}
        )
    )
    with srv.channel() as ch:
        assert (
            s_grpc.StrategyServiceStub(ch)
            .ListStrategyTypes(s_pb.ListStrategyTypesRequest(), metadata=md, timeout=30)
            .strategy_types
        )

    # SIGTERM to the supervisor stops every process.
    survivors = server_processes(srv)
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    _, alive = psutil.wait_procs(survivors, timeout=10)
    assert not alive
