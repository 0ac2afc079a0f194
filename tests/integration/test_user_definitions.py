"""UserDefinitionService on a real server: users' strategy types and indicators in the rule
language, their access rules, bad text, and a user type used everywhere a built-in goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from stratopt.v1 import backtest_pb2 as bt_pb
from stratopt.v1 import backtest_pb2_grpc as bt_grpc
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import export_pb2 as ex_pb
from stratopt.v1 import export_pb2_grpc as ex_grpc
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as o_pb
from stratopt.v1 import optimization_pb2_grpc as o_grpc
from stratopt.v1 import rules_pb2 as pb
from stratopt.v1 import rules_pb2_grpc as pbg
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from stratopt.data.bars import Bars
from stratopt.engine import ExecutionOptions, backtest
from stratopt.engine.simulator import trades_from_buffer
from stratopt.optimize.user_types import compile_type
from stratopt.strategies.user_types import TypeSource
from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations
from tests.integration.jobs.helpers import make_dataset, start, wait_done
from tests.integration.live.api_support import Api
from tests.unit.export.test_pine_pynecore import compare, inexpressible, run_pyne, transpile

STRATEGY = pb.USER_DEFINITION_KIND_STRATEGY
INDICATOR = pb.USER_DEFINITION_KIND_INDICATOR

BLEND = """\
input src: series
input n: int
return (sma(src, n) + ema(src, n)) / 2
"""

CROSS = """\
param fast: int = 8 in [3, 20] "the blended average's length"
param slow: int = 30 in [21, 80]
constraint fast < slow
f = blend(close, fast)
s = sma(close, slow)
long_entry: crossover(f, s)
long_exit: crossunder(f, s)
short_entry: crossunder(f, s)
short_exit: crossover(f, s)
"""

CROSS_EMA = CROSS.replace("blend(close, fast)", "ema(close, fast)")
POSITION = re.compile(r"^\d+:\d+: \S")


@pytest.fixture(scope="module")
def ch(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as channel:
        yield channel


def defs(ch: grpc.Channel) -> pbg.UserDefinitionServiceStub:
    return pbg.UserDefinitionServiceStub(ch)


def create(
    ch: grpc.Channel, md: list[tuple[str, str]], kind: int, name: str, source: str
) -> pb.UserDefinition:
    d = pb.UserDefinition(kind=kind, name=name, source=source)  # type: ignore[arg-type]
    return (
        defs(ch)
        .CreateUserDefinition(pb.CreateUserDefinitionRequest(definition=d), metadata=md)
        .definition
    )


@pytest.fixture(scope="module")
def cross(ch: grpc.Channel, live_server: LiveServer) -> pb.UserDefinition:
    """The trader's indicator `blend` and strategy type `blend_cross` that calls it."""
    md = live_server.md("trader")
    create(ch, md, INDICATOR, "blend", BLEND)
    return create(ch, md, STRATEGY, "blend_cross", CROSS)


# -- the resource ---------------------------------------------------------------------------


def test_create_get_list_update_with_etag(ch: grpc.Channel, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    stub = defs(ch)
    made = stub.CreateUserDefinition(
        pb.CreateUserDefinitionRequest(
            definition=pb.UserDefinition(kind=STRATEGY, name="crud_one", source=CROSS_EMA)
        ),
        metadata=md,
    )
    d, compiled = made.definition, made.strategy_type
    assert d.id and d.strategy_type == f"user_{d.id}" and d.version == 1 and d.etag == "v1"
    assert d.owner_username == "trader" and list(d.indicators) == []
    # The compiled type reads like a built-in's in GetStrategyType.
    assert compiled.name == d.strategy_type and compiled.display_name == "crud_one"
    assert [p.name for p in compiled.parameters] == ["fast", "slow"]
    assert list(d.parameters) == list(compiled.parameters)
    fast = compiled.parameters[0]
    assert (fast.kind, fast.min, fast.max, fast.default_value.int_value) == (
        c.PARAMETER_KIND_INT, 3.0, 20.0, 8
    )  # fmt: skip
    assert fast.description == "the blended average's length"
    assert [(x.left, x.op, x.right) for x in compiled.constraints] == [("fast", "<", "slow")]
    got = stub.GetUserDefinition(pb.GetUserDefinitionRequest(definition_id=d.id), metadata=md)
    assert got.definition == d and got.strategy_type == compiled
    by_name = s_grpc.StrategyServiceStub(ch).GetStrategyType(
        s_pb.GetStrategyTypeRequest(name=d.strategy_type), metadata=md
    )
    assert by_name.strategy_type == compiled
    listed = stub.ListUserDefinitions(
        pb.ListUserDefinitionsRequest(kind=STRATEGY, page_size=200), metadata=md
    ).definitions
    assert d.id in [x.id for x in listed] and all(x.kind == STRATEGY for x in listed)
    # Update: a new source recompiles; the old etag is refused afterwards.
    new = pb.UserDefinition(id=d.id, source=CROSS_EMA.replace("= 8 in", "= 9 in"), etag="v1")
    up = stub.UpdateUserDefinition(
        pb.UpdateUserDefinitionRequest(
            definition=new, update_mask=field_mask_pb2.FieldMask(paths=["source"])
        ),
        metadata=md,
    )
    assert up.definition.version == 2
    assert up.strategy_type.parameters[0].default_value.int_value == 9
    err = call_error(
        stub.UpdateUserDefinition,
        pb.UpdateUserDefinitionRequest(
            definition=pb.UserDefinition(id=d.id, description="x", etag="v1"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=md,
    )
    assert err.code() == grpc.StatusCode.ABORTED
    err = call_error(
        stub.UpdateUserDefinition,
        pb.UpdateUserDefinitionRequest(
            definition=pb.UserDefinition(id=d.id, kind=INDICATOR),
            update_mask=field_mask_pb2.FieldMask(paths=["kind"]),
        ),
        metadata=md,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Names are unique per owner and kind.
    err = call_error(create, ch, md, STRATEGY, "crud_one", CROSS_EMA)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    stub.DeleteUserDefinition(pb.DeleteUserDefinitionRequest(definition_id=d.id), metadata=md)
    err = call_error(
        stub.GetUserDefinition, pb.GetUserDefinitionRequest(definition_id=d.id), metadata=md
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_validate_returns_problems_or_the_parameter_space(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    md = live_server.md("trader")
    ok = defs(ch).ValidateUserDefinition(
        pb.ValidateUserDefinitionRequest(kind=STRATEGY, source=CROSS), metadata=md
    )
    assert ok.valid and not ok.problems and list(ok.indicators) == ["blend"]
    assert [p.name for p in ok.parameters] == ["fast", "slow"]
    assert [(x.left, x.op, x.right) for x in ok.constraints] == [("fast", "<", "slow")]
    bad = defs(ch).ValidateUserDefinition(
        pb.ValidateUserDefinitionRequest(
            kind=STRATEGY,
            source="param n: int = 5 in [1, 9]\nlong_entry: close > nosuch(close, n)\n",
        ),
        metadata=md,
    )
    assert not bad.valid and not bad.parameters
    assert bad.problems[0].line == 2 and bad.problems[0].column > 1
    assert "nosuch" in bad.problems[0].message
    # Nothing was saved by validating.
    names = [
        d.name
        for d in defs(ch)
        .ListUserDefinitions(pb.ListUserDefinitionsRequest(page_size=200), metadata=md)
        .definitions
    ]
    assert names.count("blend_cross") == 1


HOSTILE = {
    "syntax": "long_entry: close >\n",
    "unknown name": "long_entry: frobnicate(close, 3) > 1\n",
    "deep nesting": "long_entry: " + "(" * 500 + "close" + ")" * 500 + " > 1\n",
    "long chain": "long_entry: close" + " + close" * 5000 + " > 1\n",
    "huge lookback": "long_entry: close[100000000] > close\n",
    "huge window": "long_entry: sma(close, 99999999) > close\n",
    "too long": "# " + "x" * 100_000 + "\nlong_entry: close > open\n",
    "control bytes": "long_entry: close \x00> open\n",
    "python": "__import__('os').system('true')\n",
    "bad default": "param n: int = 50 in [1, 9]\nlong_entry: close > sma(close, n)\n",
    "no rules": "x = close\n",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_malformed_definitions_are_invalid_argument_with_a_position(
    ch: grpc.Channel, live_server: LiveServer, case: str
) -> None:
    md = live_server.md("trader")
    err = call_error(create, ch, md, STRATEGY, f"bad_{case.replace(' ', '_')}", HOSTILE[case])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (case, err.details())
    found = violations(err)
    assert set(found) == {"definition.source"}, found
    assert POSITION.match(found["definition.source"]), found


def test_bad_fields_are_reported_together(ch: grpc.Channel, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    err = call_error(create, ch, md, 0, "Not Snake", "")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(err)) == {"definition.kind", "definition.name", "definition.source"}
    # An indicator named like a built-in could never be called.
    err = call_error(create, ch, md, INDICATOR, "sma", BLEND)
    assert "built-in" in violations(err)["definition.name"]


# -- access ---------------------------------------------------------------------------------


def test_roles_and_ownership(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    stub = defs(ch)
    for who in ("viewer", "analyst"):
        err = call_error(create, ch, live_server.md(who), STRATEGY, "mine", CROSS)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, who
    analyst = live_server.md("analyst")
    get = pb.GetUserDefinitionRequest(definition_id=cross.id)
    missing = call_error(
        stub.GetUserDefinition,
        pb.GetUserDefinitionRequest(definition_id="f" * 32),
        metadata=analyst,
    )
    other = call_error(stub.GetUserDefinition, get, metadata=analyst)
    assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND
    assert other.details().replace(cross.id, "f" * 32) == missing.details()
    listed = stub.ListUserDefinitions(pb.ListUserDefinitionsRequest(), metadata=analyst)
    assert cross.id not in [d.id for d in listed.definitions]
    # Another user's type is unknown to them everywhere a type name goes.
    bt = bt_grpc.BacktestServiceStub(ch)
    err = call_error(
        bt.RunBacktest,
        bt_pb.RunBacktestRequest(strategy_type=cross.strategy_type, dataset_id="x"),
        metadata=analyst,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = call_error(
        s_grpc.StrategyServiceStub(ch).GetStrategyType,
        s_pb.GetStrategyTypeRequest(name=cross.strategy_type),
        metadata=analyst,
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    # The admin sees it.
    assert stub.GetUserDefinition(get, metadata=live_server.md("admin")).definition.id == cross.id


def test_sharing_lets_another_user_read_and_use_but_not_change(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    stub = defs(ch)
    trader, analyst = live_server.md("trader"), live_server.md("analyst")
    shared = stub.ShareUserDefinition(
        pb.ShareUserDefinitionRequest(definition_id=cross.id, username="analyst"), metadata=trader
    ).definition
    assert list(shared.shared_with) == ["analyst"]
    seen = stub.GetUserDefinition(
        pb.GetUserDefinitionRequest(definition_id=cross.id), metadata=analyst
    ).definition
    assert seen.source == CROSS and list(seen.shared_with) == []  # grantees don't see the list
    # An analyst may not edit anything (role); the trader's share gives read and use only.
    err = call_error(
        stub.UpdateUserDefinition,
        pb.UpdateUserDefinitionRequest(definition=pb.UserDefinition(id=cross.id, description="x")),
        metadata=analyst,
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    stub.UnshareUserDefinition(
        pb.UnshareUserDefinitionRequest(definition_id=cross.id, username="analyst"), metadata=trader
    )
    err = call_error(
        stub.GetUserDefinition,
        pb.GetUserDefinitionRequest(definition_id=cross.id),
        metadata=analyst,
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = call_error(
        stub.UnshareUserDefinition,
        pb.UnshareUserDefinitionRequest(definition_id=cross.id, username="analyst"),
        metadata=trader,
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


# -- a user type wherever a built-in goes ---------------------------------------------------


def test_strategies_validate_parameters_against_the_user_type(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    md = live_server.md("trader")
    stub = s_grpc.StrategyServiceStub(ch)
    bad = s_pb.Strategy(
        name="bad user params",
        strategy_type=cross.strategy_type,
        parameters={"fast": c.ParameterValue(int_value=50), "nope": c.ParameterValue(int_value=1)},
    )
    err = call_error(stub.CreateStrategy, s_pb.CreateStrategyRequest(strategy=bad), metadata=md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(err)) == {"strategy.parameters.fast", "strategy.parameters.nope"}
    good = stub.CreateStrategy(
        s_pb.CreateStrategyRequest(
            strategy=s_pb.Strategy(
                name="user typed",
                strategy_type=cross.strategy_type,
                parameters={"fast": c.ParameterValue(int_value=5)},
            )
        ),
        metadata=md,
    ).strategy
    assert good.parameters["fast"].int_value == 5 and good.parameters["slow"].int_value == 30
    err = call_error(
        stub.UpdateStrategy,
        s_pb.UpdateStrategyRequest(
            strategy=s_pb.Strategy(id=good.id, parameters={"slow": c.ParameterValue(int_value=4)}),
            update_mask=field_mask_pb2.FieldMask(paths=["parameters"]),
        ),
        metadata=md,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A type in use cannot be deleted.
    err = call_error(
        defs(ch).DeleteUserDefinition,
        pb.DeleteUserDefinitionRequest(definition_id=cross.id),
        metadata=md,
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    stub.DeleteStrategy(s_pb.DeleteStrategyRequest(strategy_id=good.id), metadata=md)


def test_backtest_by_type_name_and_pine_export(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    md = live_server.md("trader")
    ds = make_dataset(ch, md, bars=800, seed=21)
    r = bt_grpc.BacktestServiceStub(ch).RunBacktest(
        bt_pb.RunBacktestRequest(strategy_type=cross.strategy_type, dataset_id=ds), metadata=md
    )
    assert r.backtest.strategy_type == cross.strategy_type and r.backtest.trade_count > 2
    script = (
        ex_grpc.ExportServiceStub(ch)
        .ExportPineScript(
            ex_pb.ExportPineScriptRequest(strategy_type=cross.strategy_type), metadata=md
        )
        .script
    )
    assert "//@version=6" in script and 'strategy("blend_cross"' in script


@pytest.mark.skipif(
    find_spec("pynecore") is None or find_spec("pine2pyne") is None,
    reason="needs the dev extras pynesys-pynecore and opencode-pine2pyne",
)
def test_a_user_type_is_optimized_by_a_job_and_its_pine_trades_like_the_backtest(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition, tmp_path: Path
) -> None:
    """The issue's proof: a user type, optimized through a real job in the server, exported
    to Pine from the job, makes the same trades in PyneCore as the engine's backtest of the
    best parameters on the same bars (the cross-check of tests/unit/export)."""
    md = live_server.md("trader")
    market = md_grpc.MarketDataServiceStub(ch)
    ds = market.GenerateSyntheticDataset(
        md_pb.GenerateSyntheticDatasetRequest(
            name="user type pine", symbol="UTP", timeframe="1d", bar_count=700, seed=17
        ),
        metadata=md,
    ).dataset.id
    opt = o_grpc.OptimizationServiceStub(ch)
    job = start(
        opt,
        md,
        strategy_type=cross.strategy_type,
        dataset_id=ds,
        trials=16,
        execution=c.ExecutionOptions(
            initial_cash=10_000, commission=0.001, direction=c.TRADE_DIRECTION_BOTH
        ),
    )
    done = wait_done(opt, md, job.id, timeout=240)
    assert done.state == o_pb.JOB_STATE_SUCCEEDED, done.error
    assert done.trials_completed == 16
    best = {k: v.int_value for k, v in done.best_parameters.items()}
    assert set(best) == {"fast", "slow"} and best["fast"] < best["slow"]
    script = (
        ex_grpc.ExportServiceStub(ch)
        .ExportPineScript(
            ex_pb.ExportPineScriptRequest(job_id=job.id, include_execution=True), metadata=md
        )
        .script
    )
    # The same bars, the same definition compiled here, the engine's trades.
    rows = [
        b
        for page in market.ReadBars(md_pb.ReadBarsRequest(dataset_id=ds), metadata=md)
        for b in page.bars
    ]
    bars = Bars(
        ts=np.array([b.time.ToNanoseconds() for b in rows], dtype=np.int64),
        open=np.array([b.open for b in rows]),
        high=np.array([b.high for b in rows]),
        low=np.array([b.low for b in rows]),
        close=np.array([b.close for b in rows]),
        volume=np.array([b.volume for b in rows]),
    )
    stype = compile_type(
        TypeSource(
            name=cross.strategy_type,
            source=CROSS,
            indicators={"blend": BLEND},
            display_name="blend_cross",
        )
    )
    options = ExecutionOptions(initial_cash=10_000, commission=0.001, direction="both")
    trades = trades_from_buffer(backtest(bars, stype, best, options).trade_rows)
    assert len(trades) >= 2 and not inexpressible(bars, trades, options)
    path = tmp_path / "export_user_type.py"
    path.write_text(transpile(script))
    problems = compare(bars, run_pyne(path, bars), trades, options)
    assert not problems, "; ".join(problems)


def test_a_stored_strategy_of_a_user_type_runs_live_as_it_backtests(
    live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    """StartStrategy on a replay of a dataset: the run compiles the definition it carries and
    trades as RunBacktest does on the same bars (entries and exits at the same times)."""
    api = Api.open(live_server)
    try:
        ds = api.dataset("user type live", bars=400, seed=23)
        sid = api.strategy("user type live", cross.strategy_type)
        api.start(sid, dataset_id=ds, bars_per_second=0)
        perf = api.wait_stopped(sid)
        assert perf.run_state == s_pb.RUN_STATE_STOPPED and perf.bars_processed == 400
        bt = api.backtests.RunBacktest(
            bt_pb.RunBacktestRequest(
                strategy_id=sid, dataset_id=ds, dry_run=True, trade_limit=1000
            ),
            metadata=live_server.md("trader"),
        ).backtest
        closed = [t for t in bt.trades if t.exit_reason != c.EXIT_REASON_END_OF_DATA]
        fills = api.fills(sid)
        exits = fills[1::2]
        assert len(closed) >= 2 and len(exits) == len(closed)
        assert [f.time.ToNanoseconds() for f in fills[0::2][: len(closed)]] == [
            t.entry_time.ToNanoseconds() for t in closed
        ]
        assert [f.time.ToNanoseconds() for f in exits] == [
            t.exit_time.ToNanoseconds() for t in closed
        ]
    finally:
        api.close()


def test_an_ensemble_may_have_a_user_typed_member(
    ch: grpc.Channel, live_server: LiveServer, cross: pb.UserDefinition
) -> None:
    md = live_server.md("trader")
    stub = s_grpc.StrategyServiceStub(ch)
    members = [
        stub.CreateStrategy(
            s_pb.CreateStrategyRequest(strategy=s_pb.Strategy(name=n, strategy_type=t)),
            metadata=md,
        ).strategy.id
        for n, t in (("ens user member", cross.strategy_type), ("ens sma member", "sma_crossover"))
    ]
    ens = stub.CreateEnsemble(
        s_pb.CreateEnsembleRequest(
            name="ens with a user type",
            members=[s_pb.EnsembleMember(strategy_id=m, weight=1.0) for m in members],
            method=s_pb.ENSEMBLE_METHOD_WEIGHTED_VOTE,
        ),
        metadata=md,
    ).strategy
    ds = make_dataset(ch, md, bars=500, seed=29)
    r = bt_grpc.BacktestServiceStub(ch).RunBacktest(
        bt_pb.RunBacktestRequest(strategy_id=ens.id, dataset_id=ds, dry_run=True), metadata=md
    )
    assert r.backtest.bar_count == 500 and r.backtest.trade_count > 0


def test_an_updated_definition_applies_to_its_strategies(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    """Strategies use their type's current definition; stored parameters that the new
    space refuses are reported (never INTERNAL) until the strategy is updated."""
    md = live_server.md("trader")
    d = create(ch, md, STRATEGY, "evolving", CROSS_EMA)
    strategies = s_grpc.StrategyServiceStub(ch)
    sid = strategies.CreateStrategy(
        s_pb.CreateStrategyRequest(
            strategy=s_pb.Strategy(name="evolving one", strategy_type=d.strategy_type)
        ),
        metadata=md,
    ).strategy.id
    renamed = CROSS_EMA.replace("fast", "quick")
    defs(ch).UpdateUserDefinition(
        pb.UpdateUserDefinitionRequest(
            definition=pb.UserDefinition(id=d.id, source=renamed),
            update_mask=field_mask_pb2.FieldMask(paths=["source"]),
        ),
        metadata=md,
    )
    ds = make_dataset(ch, md, bars=300, seed=31)
    backtests = bt_grpc.BacktestServiceStub(ch)
    run = bt_pb.RunBacktestRequest(strategy_id=sid, dataset_id=ds, dry_run=True)
    err = call_error(backtests.RunBacktest, run, metadata=md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "fast" in err.details()
    err = call_error(
        strategies.StartStrategy,
        s_pb.StartStrategyRequest(strategy_id=sid, dataset_id=ds, bars_per_second=0),
        metadata=md,
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "fast" in err.details()
    strategies.UpdateStrategy(
        s_pb.UpdateStrategyRequest(
            strategy=s_pb.Strategy(id=sid, parameters={"quick": c.ParameterValue(int_value=6)}),
            update_mask=field_mask_pb2.FieldMask(paths=["parameters"]),
        ),
        metadata=md,
    )
    assert backtests.RunBacktest(run, metadata=md).backtest.parameters["quick"].int_value == 6
