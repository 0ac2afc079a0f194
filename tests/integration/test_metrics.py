"""Prometheus metrics and request ids of a real server process (STRATOPT_METRICS_ADDR)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from stratopt.v1 import backtest_pb2 as bpb
from stratopt.v1 import optimization_pb2_grpc as opg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import system_pb2 as ypb

from tests.conftest import LiveServer, free_port, start_server, stop_server
from tests.integration.helpers import call_error
from tests.integration.jobs.helpers import make_dataset, start, wait_done
from tests.integration.live.api_support import Api

STRATEGY = "stratopt.v1.StrategyService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=5) as r:
            assert r.headers["content-type"].startswith("text/plain")
            text = r.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, frozenset(labels.items())), 0.0)

    def wait_for(
        self, name: str, check: Callable[[float], bool], timeout: float = 20, **labels: str
    ) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.value(name, **labels)
            if check(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Metrics]]:
    port = free_port()
    env = {
        "STRATOPT_METRICS_ADDR": f"127.0.0.1:{port}",
        "STRATOPT_RATE_LIMIT_BACKTEST": "2/1m burst 2",
        "STRATOPT_MAX_STREAMS_PER_USER": "1",
    }
    srv = start_server(tmp_path_factory.mktemp("metrics"), env)
    yield srv, Metrics(port)
    stop_server(srv)


def test_calls_by_method_and_code_with_latency(server: tuple[LiveServer, Metrics]) -> None:
    srv, metrics = server
    api = Api.open(srv)
    try:
        for _ in range(3):
            api.strategies.ListStrategyTypes(
                spb.ListStrategyTypesRequest(), metadata=srv.md("trader")
            )
        missing = call_error(
            api.strategies.GetStrategy,
            spb.GetStrategyRequest(strategy_id="no-such-id"),
            metadata=srv.md("trader"),
        )
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        anonymous = call_error(api.strategies.ListStrategies, spb.ListStrategiesRequest())
        assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        api.close()
    requests = "stratopt_rpc_requests_total"
    assert metrics.value(requests, service=STRATEGY, method="ListStrategyTypes", code="OK") == 3
    assert metrics.value(requests, service=STRATEGY, method="GetStrategy", code="NOT_FOUND") == 1
    assert (
        metrics.value(requests, service=STRATEGY, method="ListStrategies", code="UNAUTHENTICATED")
        == 1
    )
    samples = metrics.scrape()
    latency = {"service": STRATEGY, "method": "ListStrategyTypes"}
    assert samples[("stratopt_rpc_duration_seconds_count", frozenset(latency.items()))] == 3
    assert samples[("stratopt_rpc_duration_seconds_sum", frozenset(latency.items()))] > 0
    buckets = {
        dict(labels)["le"]: v
        for (name, labels), v in samples.items()
        if name == "stratopt_rpc_duration_seconds_bucket" and set(latency.items()) <= labels
    }
    assert buckets["+Inf"] == 3 and buckets["0.001"] <= buckets["1.0"] <= 3
    # The process itself, for memory figures.
    assert samples[("process_resident_memory_bytes", frozenset())] > 10_000_000


def test_backtests_and_rate_limit_refusals(server: tuple[LiveServer, Metrics]) -> None:
    srv, metrics = server
    api = Api.open(srv)
    codes = []
    try:
        for _ in range(3):
            request = bpb.RunBacktestRequest(strategy_type="sma_crossover", dataset_id="nope")
            err = call_error(api.backtests.RunBacktest, request, metadata=srv.md("trader"))
            codes.append(err.code())
    finally:
        api.close()
    assert codes == [grpc.StatusCode.NOT_FOUND] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert metrics.value("stratopt_backtests_total", code="NOT_FOUND") == 2
    assert metrics.value("stratopt_backtests_total", code="RESOURCE_EXHAUSTED") == 1
    assert metrics.value("stratopt_rate_limit_refusals_total", category="backtest") == 1


def test_open_streams_are_counted_while_open(server: tuple[LiveServer, Metrics]) -> None:
    srv, metrics = server
    labels = {"service": "stratopt.v1.SystemService", "method": "StreamNotifications"}
    api = Api.open(srv)
    stream = api.system.StreamNotifications(
        ypb.StreamNotificationsRequest(), metadata=srv.md("trader")
    )
    reader = threading.Thread(target=lambda: list(_until_cancelled(stream)), daemon=True)
    reader.start()
    try:
        gauge = "stratopt_rpc_active_streams"
        assert metrics.wait_for(gauge, lambda v: v == 1, **labels) == 1
        # A second stream of the same user is over the cap of 1.
        second = api.system.StreamNotifications(
            ypb.StreamNotificationsRequest(), metadata=srv.md("trader")
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(second)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert metrics.value("stratopt_rate_limit_refusals_total", category="streams") == 1
        assert metrics.value(gauge, **labels) == 1
        stream.cancel()
        assert metrics.wait_for(gauge, lambda v: v == 0, **labels) == 0
        requests = "stratopt_rpc_requests_total"
        assert metrics.wait_for(requests, lambda v: v == 1, **labels, code="CANCELLED") == 1
    finally:
        stream.cancel()
        reader.join(5)
        api.close()


def _until_cancelled(stream: Iterator[object]) -> Iterator[object]:
    try:
        yield from stream
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.CANCELLED


def test_trials_jobs_and_paper_runs(server: tuple[LiveServer, Metrics]) -> None:
    srv, metrics = server
    md = srv.md("trader")
    api = Api.open(srv)
    try:
        jobs = opg.OptimizationServiceStub(api.channel)
        dataset = make_dataset(api.channel, md, bars=2_000)
        job = start(jobs, md, dataset_id=dataset, trials=12, seed=1)
        assert wait_done(jobs, md, job.id).trials_completed == 12
        assert metrics.value("stratopt_optimization_trials_total") == 12
        # A slow replay stays running until stopped.
        sid = api.strategy("metrics-paper")
        api.start(sid, dataset_id=api.dataset("metrics-paper"), bars_per_second=1)
        try:
            # The database gauges are refreshed every few seconds.
            running = metrics.wait_for("stratopt_paper_runs_running", lambda v: v == 1)
            assert running == 1
            succeeded = metrics.value("stratopt_optimization_jobs", state="succeeded")
            assert succeeded == 1
            assert metrics.value("stratopt_optimization_jobs", state="queued") == 0
        finally:
            api.stop(sid)
        assert metrics.wait_for("stratopt_paper_runs_running", lambda v: v == 0) == 0
    finally:
        api.close()


def test_request_id_in_metadata_and_logs(server: tuple[LiveServer, Metrics]) -> None:
    srv, _ = server
    api = Api.open(srv)
    try:
        request = spb.ListStrategyTypesRequest()
        md = [*srv.md("trader"), ("x-request-id", "req-metrics-0001")]
        _, call = api.strategies.ListStrategyTypes.with_call(request, metadata=md)
        assert ("x-request-id", "req-metrics-0001") in call.trailing_metadata()
        # gRPC clients read trailers: no separate send of initial metadata for a unary call.
        assert not call.initial_metadata()
        # None offered, or one that is not a plain token: the server makes one.
        _, call = api.strategies.ListStrategyTypes.with_call(request, metadata=srv.md("trader"))
        made = dict(call.trailing_metadata())["x-request-id"]
        assert len(made) == 32 and int(made, 16) >= 0
        for bad in ("not a token", "x" * 129, "<script>"):
            offered = [*srv.md("trader"), ("x-request-id", bad)]
            _, call = api.strategies.ListStrategyTypes.with_call(request, metadata=offered)
            assert len(dict(call.trailing_metadata())["x-request-id"]) == 32
        # Errors carry it in the trailing metadata too.
        err = call_error(
            api.strategies.GetStrategy,
            spb.GetStrategyRequest(strategy_id="no-such-id"),
            metadata=[*srv.md("trader"), ("x-request-id", "req-metrics-0002")],
        )
        assert ("x-request-id", "req-metrics-0002") in (err.trailing_metadata() or ())  # type: ignore[attr-defined]
        # A call forwarded by Envoy's JSON transcoder (REST clients see only headers) gets
        # the rate-limit headers and the id together in one set of initial metadata.
        transcoded = ("x-envoy-original-path", "/v1/strategies")
        _, call = api.strategies.ListStrategies.with_call(
            spb.ListStrategiesRequest(),
            metadata=[*srv.md("trader"), ("x-request-id", "r-3"), transcoded],
        )
        initial = dict(call.initial_metadata())
        assert initial["x-request-id"] == "r-3" and "x-ratelimit-remaining" in initial
        # And a transcoded call without rate limits still gets its id as a header.
        _, call = api.strategies.ListStrategyTypes.with_call(
            request, metadata=[*srv.md("trader"), ("x-request-id", "r-4"), transcoded]
        )
        assert ("x-request-id", "r-4") in call.initial_metadata()
    finally:
        api.close()
    lines = _log_lines(srv.log_path, "req-metrics-0002", timeout=5)
    rpc_line = next(line for line in lines if line.get("msg") == "rpc")
    assert rpc_line["rpc"] == f"/{STRATEGY}/GetStrategy" and rpc_line["outcome"] == "NOT_FOUND"


def _log_lines(path: Path, request_id: str, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for raw in path.read_text(errors="replace").splitlines():
            if request_id in raw and raw.startswith("{"):
                record = json.loads(raw)
                if record.get("request_id") == request_id:
                    found.append(record)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
