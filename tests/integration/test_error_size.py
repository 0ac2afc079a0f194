"""Errors never echo a whole hostile input (issue 14, finding 3).

A default client refuses trailing metadata beyond 16 KB (and warns from 8 KB): a status that
echoes a 20 KB id arrives as RESOURCE_EXHAUSTED instead of what the server meant. So every
message, violation and log line is bounded, and every request field has a deliberate size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from stratopt.v1 import auth_pb2, auth_pb2_grpc
from stratopt.v1 import optimization_pb2 as opt_pb
from stratopt.v1 import optimization_pb2_grpc as opt_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations

HUGE = "z" * 20_000
TRAILER_BUDGET = 8 * 1024  # grpc's soft metadata limit: well inside the hard 16 KB one
MESSAGE_BUDGET = 1024
LOG_LINE_BUDGET = 16 * 1024


@pytest.fixture(scope="module")
def ch(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as channel:
        yield channel


def trailer_bytes(err: grpc.RpcError) -> int:
    md = err.trailing_metadata() or ()  # type: ignore[attr-defined]
    return sum(len(k) + len(v) for k, v in md)


def bounded(err: grpc.RpcError, *codes: grpc.StatusCode) -> None:
    assert err.code() in codes, (err.code(), err.details()[:300])
    assert len(err.details()) <= MESSAGE_BUDGET, len(err.details())
    assert trailer_bytes(err) <= TRAILER_BUDGET, trailer_bytes(err)


def test_a_huge_id_is_not_echoed_whole(ch: grpc.Channel, live_server: LiveServer) -> None:
    strategies = s_grpc.StrategyServiceStub(ch)
    md = live_server.md("trader")
    err = call_error(strategies.GetStrategy, s_pb.GetStrategyRequest(strategy_id=HUGE), metadata=md)
    bounded(err, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    # At the id limit: NOT_FOUND as before.
    err = call_error(
        strategies.GetStrategy, s_pb.GetStrategyRequest(strategy_id="q" * 64), metadata=md
    )
    bounded(err, grpc.StatusCode.NOT_FOUND)
    jobs = opt_grpc.OptimizationServiceStub(ch)
    err = call_error(jobs.GetJob, opt_pb.GetJobRequest(job_id=HUGE), metadata=md)
    bounded(err, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


def test_ten_thousand_bad_constraints_give_a_small_status(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    jobs = opt_grpc.OptimizationServiceStub(ch)
    spec = opt_pb.OptimizationSpec(
        strategy_type="sma_crossover",
        dataset_id="nope",
        trials=10,
        # About 3 MB: under the 4 MiB a unary request may take (api/limits.py), so the
        # field checks see it.
        constraints=[opt_pb.MetricConstraint(metric=f"bad{i}" + "m" * 300) for i in range(10_000)],
    )
    err = call_error(
        jobs.StartOptimization,
        opt_pb.StartOptimizationRequest(spec=spec),
        metadata=live_server.md("trader"),
    )
    bounded(err, grpc.StatusCode.INVALID_ARGUMENT)
    v = violations(err)
    assert 0 < len(v) <= 25
    assert all(len(f) <= 200 and len(d) <= 400 for f, d in v.items())


def test_a_huge_alert_metric_is_refused_and_not_echoed(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    strategies = s_grpc.StrategyServiceStub(ch)
    rule = s_pb.AlertRule(metric="w" * 1_000_000, op=">", threshold=1.0)
    err = call_error(
        strategies.CreateStrategy,
        s_pb.CreateStrategyRequest(
            strategy=s_pb.Strategy(
                name="huge-rule", strategy_type="sma_crossover", alert_rules=[rule]
            )
        ),
        metadata=live_server.md("trader"),
    )
    bounded(err, grpc.StatusCode.INVALID_ARGUMENT)


def test_huge_strings_everywhere_stay_out_of_logs_and_audit(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(ch)
    md = live_server.md("admin")
    for call in (
        lambda: auth.GetUser(auth_pb2.GetUserRequest(user_id=HUGE), metadata=md),
        lambda: auth.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(key_id=HUGE), metadata=md),
        lambda: auth.Login(auth_pb2.LoginRequest(username=HUGE, password=HUGE)),
        lambda: auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(display_name=HUGE), metadata=md),
    ):
        err = call_error(call)
        bounded(
            err,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.UNAUTHENTICATED,
        )
    long_lines = [
        line[:200] for line in live_server.logs().splitlines() if len(line) > LOG_LINE_BUDGET
    ]
    assert not long_lines
    events = auth.ListAuditEvents(auth_pb2.ListAuditEventsRequest(page_size=50), metadata=md)
    for e in events.audit_events:
        assert len(json.dumps([e.detail, e.resource_id])) <= 2_000
