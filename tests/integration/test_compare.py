"""StrategyService.CompareStrategies on a real server: rankings, stored backtests,
return correlations and the errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from stratopt.v1 import backtest_pb2 as bpb
from stratopt.v1 import backtest_pb2_grpc as bpbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

from stratopt.api.convert import ns_to_pb, pb_to_ns
from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations

Metadata = list[tuple[str, str]]


@dataclass
class Env:
    srv: LiveServer
    strategies: pbg.StrategyServiceStub
    backtests: bpbg.BacktestServiceStub
    dataset_id: str
    other_dataset_id: str
    ids: list[str]
    """sma, ema and an ensemble of the two, all the trader's."""
    md: Metadata


def iv(x: int) -> c.ParameterValue:
    return c.ParameterValue(int_value=x)


@pytest.fixture(scope="module")
def env(live_server: LiveServer) -> Iterator[Env]:
    md = live_server.md("trader")
    with live_server.channel() as ch:
        data = md_grpc.MarketDataServiceStub(ch)
        datasets = [
            data.GenerateSyntheticDataset(
                md_pb.GenerateSyntheticDatasetRequest(
                    name=f"cmp{i}", symbol="CMP", bar_count=3_000, seed=11 + i
                ),
                metadata=md,
            ).dataset.id
            for i in range(2)
        ]
        stub = pbg.StrategyServiceStub(ch)

        def create(name: str, stype: str, **params: int) -> str:
            s = pb.Strategy(
                name=name,
                strategy_type=stype,
                parameters={k: iv(v) for k, v in params.items()},
                execution=c.ExecutionOptions(commission=0.001),
            )
            return str(
                stub.CreateStrategy(pb.CreateStrategyRequest(strategy=s), metadata=md).strategy.id
            )

        sma = create("cmp-sma", "sma_crossover", fast=10, slow=50)
        ema = create("cmp-ema", "ema_crossover")
        ensemble = stub.CreateEnsemble(
            pb.CreateEnsembleRequest(
                name="cmp-ens",
                members=[pb.EnsembleMember(strategy_id=sma), pb.EnsembleMember(strategy_id=ema)],
            ),
            metadata=md,
        ).strategy.id
        yield Env(
            live_server,
            stub,
            bpbg.BacktestServiceStub(ch),
            datasets[0],
            datasets[1],
            [sma, ema, ensemble],
            md,
        )


def full_run(env: Env, strategy_id: str, **kw: object) -> bpb.Backtest:
    """RunBacktest with every equity point (the dataset is smaller than the maximum)."""
    return env.backtests.RunBacktest(
        bpb.RunBacktestRequest(
            strategy_id=strategy_id,
            dataset_id=kw.pop("dataset_id", env.dataset_id),  # type: ignore[arg-type]
            max_equity_points=20_000,
            **kw,  # type: ignore[arg-type]
        ),
        metadata=env.md,
    ).backtest


def returns(bt: bpb.Backtest) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array([pb_to_ns(p.time) for p in bt.equity_curve], dtype=np.int64)
    eq = np.array([p.equity for p in bt.equity_curve])
    return ts, eq


def matrix(resp: pb.CompareStrategiesResponse) -> np.ndarray:
    n = len(resp.rows)
    return np.array(resp.return_correlations).reshape(n, n)


def test_three_strategies_ranked_by_sharpe_match_their_backtests(env: Env) -> None:
    resp = env.strategies.CompareStrategies(
        pb.CompareStrategiesRequest(strategy_ids=env.ids, dataset_id=env.dataset_id),
        metadata=env.md,
    )
    assert resp.rank_by == "sharpe" and resp.dataset_id == env.dataset_id
    assert [r.rank for r in resp.rows] == [1, 2, 3]
    assert {r.strategy_id for r in resp.rows} == set(env.ids)
    assert all(r.backtest_id == "" for r in resp.rows)
    sharpes = [r.metrics.sharpe for r in resp.rows]
    assert sharpes == sorted(sharpes, reverse=True)
    names = {r.strategy_id: r.strategy_name for r in resp.rows}
    assert names == dict(zip(env.ids, ["cmp-sma", "cmp-ema", "cmp-ens"], strict=True))

    # Each row equals RunBacktest of the same strategy (its own options: commission 0.001).
    runs = {sid: full_run(env, sid, dry_run=True) for sid in env.ids}
    for row in resp.rows:
        assert row.metrics == runs[row.strategy_id].metrics
    some = runs[env.ids[0]]
    assert resp.time_range == some.time_range

    # Correlations: symmetric, unit diagonal, numpy's corrcoef of the bar returns.
    m = matrix(resp)
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_array_equal(np.diag(m), 1.0)
    rets = []
    for row in resp.rows:
        _, eq = returns(runs[row.strategy_id])
        rets.append(np.diff(eq) / eq[:-1])
    np.testing.assert_allclose(m, np.corrcoef(np.vstack(rets)), atol=1e-9)
    assert np.abs(m[np.triu_indices(3, 1)]).max() > 0.1  # real, varied curves


def test_rank_by_a_lower_is_better_metric_and_request_execution(env: Env) -> None:
    costly = c.ExecutionOptions(commission=0.01)
    resp = env.strategies.CompareStrategies(
        pb.CompareStrategiesRequest(
            strategy_ids=env.ids[:2],
            dataset_id=env.dataset_id,
            rank_by="max_drawdown",
            execution=costly,
        ),
        metadata=env.md,
    )
    assert resp.rank_by == "max_drawdown"
    dds = [r.metrics.max_drawdown for r in resp.rows]
    assert dds == sorted(dds) and [r.rank for r in resp.rows] == [1, 2]
    for row in resp.rows:  # the request's options over the strategy's own
        want = full_run(env, row.strategy_id, dry_run=True, execution=costly)
        assert row.metrics == want.metrics
        # Each row shows the options it ran with, defaults filled in (issue 12).
        assert row.execution == want.execution
        assert row.execution.commission == 0.01 and row.execution.initial_cash > 0
        assert row.execution.periods_per_year > 0 and len(row.execution.set_fields.paths) >= 10


def test_a_stored_backtest_and_a_strategy_over_the_backtests_period(env: Env) -> None:
    whole = full_run(env, env.ids[0], dry_run=True)
    t0 = pb_to_ns(whole.equity_curve[500].time)
    t1 = pb_to_ns(whole.equity_curve[2_500].time)
    stored = full_run(
        env, env.ids[0], time_range=c.TimeRange(start_time=ns_to_pb(t0), end_time=ns_to_pb(t1))
    )
    assert stored.id and stored.bar_count == 2_000
    resp = env.strategies.CompareStrategies(
        pb.CompareStrategiesRequest(strategy_ids=[env.ids[1]], backtest_ids=[stored.id]),
        metadata=env.md,
    )
    assert resp.dataset_id == env.dataset_id  # taken from the backtest
    assert resp.time_range == stored.time_range
    by_kind = {bool(r.backtest_id): r for r in resp.rows}
    assert by_kind[True].backtest_id == stored.id
    assert by_kind[True].strategy_id == env.ids[0] and by_kind[True].strategy_name == "cmp-sma"
    assert by_kind[True].metrics == stored.metrics
    # The strategy ran over exactly the backtest's bars.
    same_period = full_run(
        env,
        env.ids[1],
        dry_run=True,
        time_range=c.TimeRange(
            start_time=stored.time_range.start_time,
            end_time=ns_to_pb(pb_to_ns(stored.time_range.end_time) + 1),
        ),
    )
    assert same_period.bar_count == stored.bar_count
    assert by_kind[False].metrics == same_period.metrics
    m = matrix(resp)
    order = [returns(stored if r.backtest_id else same_period)[1] for r in resp.rows]
    want = np.corrcoef(np.diff(order[0]) / order[0][:-1], np.diff(order[1]) / order[1][:-1])
    np.testing.assert_allclose(m, want, atol=1e-9)
    np.testing.assert_array_equal(np.diag(m), 1.0)


def status(err: grpc.RpcError) -> grpc.StatusCode:
    return err.code()  # type: ignore[no-any-return]


def test_errors(env: Env, live_server: LiveServer) -> None:
    def compare(md: Metadata | None = None, **kw: object) -> grpc.RpcError:
        return call_error(
            env.strategies.CompareStrategies,
            pb.CompareStrategiesRequest(**kw),  # type: ignore[arg-type]
            metadata=md or env.md,
        )

    one = compare(strategy_ids=env.ids[:1], dataset_id=env.dataset_id)
    assert status(one) == grpc.StatusCode.INVALID_ARGUMENT and "strategy_ids" in violations(one)
    eleven = compare(
        strategy_ids=env.ids, backtest_ids=[f"b{i}" for i in range(8)], dataset_id=env.dataset_id
    )
    assert status(eleven) == grpc.StatusCode.INVALID_ARGUMENT
    assert "2 to 10" in violations(eleven)["strategy_ids"]
    metric = compare(strategy_ids=env.ids[:2], dataset_id=env.dataset_id, rank_by="alpha")
    assert status(metric) == grpc.StatusCode.INVALID_ARGUMENT and "rank_by" in violations(metric)
    no_data = compare(strategy_ids=env.ids[:2])
    assert status(no_data) == grpc.StatusCode.INVALID_ARGUMENT
    assert "dataset_id" in violations(no_data)

    missing = compare(strategy_ids=[env.ids[0], "0" * 32], dataset_id=env.dataset_id)
    assert status(missing) == grpc.StatusCode.NOT_FOUND
    missing_bt = compare(strategy_ids=env.ids[:1], backtest_ids=["0" * 32])
    assert status(missing_bt) == grpc.StatusCode.NOT_FOUND

    theirs = env.strategies.CreateStrategy(
        pb.CreateStrategyRequest(
            strategy=pb.Strategy(name="cmp-admin", strategy_type="supertrend")
        ),
        metadata=live_server.md("admin"),
    ).strategy.id
    foreign = compare(strategy_ids=[env.ids[0], theirs], dataset_id=env.dataset_id)
    assert status(foreign) == grpc.StatusCode.NOT_FOUND
    # Another user's stored backtest is as missing as one that does not exist.
    mine = full_run(env, env.ids[0])
    other = compare(md=live_server.md("analyst"), strategy_ids=[theirs], backtest_ids=[mine.id])
    assert status(other) == grpc.StatusCode.NOT_FOUND

    elsewhere = full_run(env, env.ids[0], dataset_id=env.other_dataset_id)
    mixed = compare(backtest_ids=[mine.id, elsewhere.id])
    assert status(mixed) == grpc.StatusCode.INVALID_ARGUMENT
    assert "different datasets" in violations(mixed)["backtest_ids"]
    wrong = compare(
        backtest_ids=[mine.id], strategy_ids=[env.ids[1]], dataset_id=env.other_dataset_id
    )
    assert status(wrong) == grpc.StatusCode.INVALID_ARGUMENT and "dataset_id" in violations(wrong)
