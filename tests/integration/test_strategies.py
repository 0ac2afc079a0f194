"""StrategyService against a real server and SQLite file: CRUD, validation, paging, history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[pbg.StrategyServiceStub]:
    with live_server.channel() as ch:
        yield pbg.StrategyServiceStub(ch)


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def iv(x: int) -> c.ParameterValue:
    return c.ParameterValue(int_value=x)


def create(stub: pbg.StrategyServiceStub, md: list[tuple[str, str]], **kw: object) -> pb.Strategy:
    fields = {"name": unique(), "strategy_type": "sma_crossover", **kw}
    return stub.CreateStrategy(
        pb.CreateStrategyRequest(strategy=pb.Strategy(**fields)), metadata=md
    ).strategy  # type: ignore[arg-type]


def test_strategy_types_describe_parameter_spaces(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    types = stub.ListStrategyTypes(
        pb.ListStrategyTypesRequest(), metadata=live_server.md("viewer")
    ).strategy_types
    assert len(types) >= 12
    categories = {t.category for t in types}
    assert len(categories) >= 5
    sma = next(t for t in types if t.name == "sma_crossover")
    names = [p.name for p in sma.parameters]
    assert {"fast", "slow"} <= set(names)
    assert any(
        con.left == "fast" and con.op == "<" and con.right == "slow" for con in sma.constraints
    )
    got = stub.GetStrategyType(
        pb.GetStrategyTypeRequest(name="sma_crossover"), metadata=live_server.md("viewer")
    )
    assert got.strategy_type == sma
    err = call_error(
        stub.GetStrategyType,
        pb.GetStrategyTypeRequest(name="nope"),
        metadata=live_server.md("viewer"),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_create_get_update_delete_with_history(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    s = create(
        stub,
        md,
        symbols=["btcusdt", "eth-usd"],
        timeframe="1H",
        tags=["Trend", "crypto"],
        parameters={"fast": iv(12)},
    )
    assert s.id and s.version == 1 and s.owner_username == "trader"
    assert list(s.symbols) == ["BTCUSDT", "ETH-USD"]
    assert list(s.tags) == ["crypto", "trend"] and s.timeframe == "1h"
    assert (
        s.parameters["fast"].int_value == 12 and s.parameters["slow"].int_value > 12
    )  # default filled
    assert (
        s.status == pb.STRATEGY_STATUS_DRAFT and s.category == c.STRATEGY_CATEGORY_TREND_FOLLOWING
    )

    got = stub.GetStrategy(pb.GetStrategyRequest(strategy_id=s.id), metadata=md).strategy
    assert got == s

    upd = stub.UpdateStrategy(
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(
                id=s.id, description="golden", parameters={"fast": iv(20)}, etag=s.etag
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "parameters"]),
        ),
        metadata=md,
    ).strategy
    assert (
        upd.version == 2 and upd.description == "golden" and upd.parameters["fast"].int_value == 20
    )
    assert upd.name == s.name and list(upd.symbols) == list(s.symbols)  # untouched fields kept

    stale = call_error(
        stub.UpdateStrategy,
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id=s.id, description="x", etag=s.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=md,
    )
    assert stale.code() == grpc.StatusCode.ABORTED

    stub.DeleteStrategy(pb.DeleteStrategyRequest(strategy_id=s.id), metadata=md)
    gone = call_error(stub.GetStrategy, pb.GetStrategyRequest(strategy_id=s.id), metadata=md)
    assert gone.code() == grpc.StatusCode.NOT_FOUND

    events = stub.ListStrategyHistory(
        pb.ListStrategyHistoryRequest(strategy_id=s.id), metadata=md
    ).events
    assert [e.action for e in events] == [
        pb.HISTORY_ACTION_DELETED,
        pb.HISTORY_ACTION_UPDATED,
        pb.HISTORY_ACTION_CREATED,
    ]
    assert sorted(events[1].changed_fields) == ["description", "parameters"]
    assert events[1].snapshot.description == "golden" and events[0].actor_username == "trader"


def test_every_field_is_validated(stub: pbg.StrategyServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    bad = pb.Strategy(
        name="",
        strategy_type="sma_crossover",
        parameters={"fast": iv(100), "slow": iv(50), "bogus": iv(1)},
        symbols=["not a symbol"],
        timeframe="7 days",
        tags=["has space"],
        execution=c.ExecutionOptions(position_size=2.0, commission=-0.1),
    )
    err = call_error(stub.CreateStrategy, pb.CreateStrategyRequest(strategy=bad), metadata=md)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = violations(err)
    for f in (
        "strategy.name",
        "strategy.parameters.bogus",
        "strategy.parameters.fast",
        "strategy.symbols[0]",
        "strategy.timeframe",
        "strategy.tags[0]",
        "strategy.execution.position_size",
        "strategy.execution.commission",
    ):
        assert f in v, (f, v)

    unknown_type = call_error(
        stub.CreateStrategy,
        pb.CreateStrategyRequest(strategy=pb.Strategy(name=unique(), strategy_type="martingale")),
        metadata=md,
    )
    assert "strategy.strategy_type" in violations(unknown_type)
    missing = call_error(stub.CreateStrategy, pb.CreateStrategyRequest(), metadata=md)
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_enum = call_error(stub.ListStrategies, pb.ListStrategiesRequest(status=99), metadata=md)  # type: ignore[arg-type]
    assert bad_enum.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_names_unique_per_owner_case_insensitively(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    name = unique("Dup")
    create(stub, live_server.md("trader"), name=name)
    err = call_error(
        stub.CreateStrategy,
        pb.CreateStrategyRequest(
            strategy=pb.Strategy(name=name.upper(), strategy_type="ema_crossover")
        ),
        metadata=live_server.md("trader"),
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    other = create(stub, live_server.md("admin"), name=name)  # another owner may use it
    assert other.owner_username == "admin"


def test_other_users_strategies_are_invisible(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    s = create(stub, live_server.md("trader"))
    err = call_error(
        stub.GetStrategy,
        pb.GetStrategyRequest(strategy_id=s.id),
        metadata=live_server.md("analyst"),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    listed = stub.ListStrategies(
        pb.ListStrategiesRequest(page_size=200), metadata=live_server.md("analyst")
    )
    assert s.id not in {x.id for x in listed.strategies}
    admin = stub.GetStrategy(
        pb.GetStrategyRequest(strategy_id=s.id), metadata=live_server.md("admin")
    )
    assert admin.strategy.id == s.id


def test_paging_stays_correct_while_rows_are_added(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    tag = unique("page")
    made = {create(stub, md, tags=[tag]).id for _ in range(7)}
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListStrategies(
            pb.ListStrategiesRequest(page_size=3, page_token=token, tags=[tag]), metadata=md
        )
        assert page.total_size >= 7
        seen += [x.id for x in page.strategies]
        # Rows added mid-listing sort before the cursor (newest first) and must not shift pages.
        create(stub, md, tags=[tag])
        token = page.next_page_token
        if not token:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen)), "a row was returned twice"

    bad = call_error(
        stub.ListStrategies, pb.ListStrategiesRequest(page_token="garbage!"), metadata=md
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    first = stub.ListStrategies(pb.ListStrategiesRequest(page_size=1, tags=[tag]), metadata=md)
    replay = call_error(
        stub.ListStrategies,
        pb.ListStrategiesRequest(page_size=1, page_token=first.next_page_token, query="other"),
        metadata=md,
    )
    assert replay.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_filters_search_and_order(stub: pbg.StrategyServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    tag = unique("flt")
    create(stub, md, name=f"{tag}-b", tags=[tag], description="Bollinger fade")
    create(stub, md, name=f"{tag}-a", tags=[tag, "extra"], strategy_type="rsi_reversion")
    create(stub, md, name=f"{tag}-c", tags=[tag], status=pb.STRATEGY_STATUS_ACTIVE)
    by_name = stub.ListStrategies(
        pb.ListStrategiesRequest(tags=[tag], order_by="name"), metadata=md
    )
    assert [s.name for s in by_name.strategies] == [f"{tag}-a", f"{tag}-b", f"{tag}-c"]
    both_tags = stub.ListStrategies(pb.ListStrategiesRequest(tags=[tag, "extra"]), metadata=md)
    assert [s.name for s in both_tags.strategies] == [f"{tag}-a"]
    mr = stub.ListStrategies(
        pb.ListStrategiesRequest(tags=[tag], category=c.STRATEGY_CATEGORY_MEAN_REVERSION),
        metadata=md,
    )
    assert [s.name for s in mr.strategies] == [f"{tag}-a"]
    active = stub.ListStrategies(
        pb.ListStrategiesRequest(tags=[tag], status=pb.STRATEGY_STATUS_ACTIVE), metadata=md
    )
    assert [s.name for s in active.strategies] == [f"{tag}-c"]
    found = stub.ListStrategies(
        pb.ListStrategiesRequest(query="BOLLINGER FADE", tags=[tag]), metadata=md
    )
    assert [s.name for s in found.strategies] == [f"{tag}-b"]
    err = call_error(
        stub.ListStrategies, pb.ListStrategiesRequest(order_by="owner desc"), metadata=md
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_update_rules(stub: pbg.StrategyServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    s = create(stub, md)
    immutable = call_error(
        stub.UpdateStrategy,
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id=s.id, strategy_type="ema_crossover"),
            update_mask=field_mask_pb2.FieldMask(paths=["strategy_type"]),
        ),
        metadata=md,
    )
    assert immutable.code() == grpc.StatusCode.INVALID_ARGUMENT
    broken = call_error(
        stub.UpdateStrategy,
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id=s.id, parameters={"fast": iv(300)}),
            update_mask=field_mask_pb2.FieldMask(paths=["parameters"]),
        ),
        metadata=md,
    )
    assert "strategy.parameters.fast" in violations(broken)
    missing = call_error(
        stub.UpdateStrategy,
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id="0" * 32, description="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=md,
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_execution_options_bounds_and_presence(
    stub: pbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    mask = field_mask_pb2.FieldMask
    bad = call_error(
        stub.CreateStrategy,
        pb.CreateStrategyRequest(
            strategy=pb.Strategy(
                name=unique(),
                strategy_type="sma_crossover",
                execution=c.ExecutionOptions(commission=0.2, stop_loss=0.995, slippage=0.5),
            )
        ),
        metadata=md,
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = violations(bad)
    assert v["strategy.execution.commission"] == "must be in [0, 0.1]"
    assert v["strategy.execution.stop_loss"] == "must be in [0, 0.99]"
    assert v["strategy.execution.slippage"] == "must be in [0, 0.1]"

    # A strategy shows what its owner set, and nothing else.
    s = create(stub, md, execution=c.ExecutionOptions(commission=0.001, stop_loss=0.05))
    assert list(s.execution.set_fields.paths) == ["commission", "stop_loss"]
    assert s.execution.direction == c.TRADE_DIRECTION_UNSPECIFIED
    # Replacing the execution stores an explicit zero as given.
    zero = c.ExecutionOptions(commission=0.0, set_fields=mask(paths=["commission"]))
    upd = stub.UpdateStrategy(
        pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id=s.id, execution=zero), update_mask=mask(paths=["execution"])
        ),
        metadata=md,
    ).strategy
    assert list(upd.execution.set_fields.paths) == ["commission"] and upd.version == 2
    out_of_range = pb.Strategy(id=s.id, description="d", execution=c.ExecutionOptions(slippage=1))
    err = call_error(
        stub.UpdateStrategy,
        pb.UpdateStrategyRequest(strategy=out_of_range, update_mask=mask(paths=["execution"])),
        metadata=md,
    )
    assert "strategy.execution.slippage" in violations(err)
    # Fields outside the update mask are not read, so their problems do not count.
    ok = stub.UpdateStrategy(
        pb.UpdateStrategyRequest(strategy=out_of_range, update_mask=mask(paths=["description"])),
        metadata=md,
    ).strategy
    assert ok.description == "d" and list(ok.execution.set_fields.paths) == ["commission"]

    # An explicit zero also wins over a template's value.
    from_template = stub.CreateStrategy(
        pb.CreateStrategyRequest(
            strategy=pb.Strategy(name=unique("ema"), execution=zero), template_id="fast-ema-cross"
        ),
        metadata=md,
    ).strategy
    assert from_template.execution.commission == 0.0
    assert from_template.execution.direction == c.TRADE_DIRECTION_BOTH
    assert set(from_template.execution.set_fields.paths) == {"commission", "direction"}


def test_templates_and_categories(stub: pbg.StrategyServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    templates = stub.ListStrategyTemplates(pb.ListStrategyTemplatesRequest(), metadata=md).templates
    golden = next(t for t in templates if t.id == "golden-cross")
    s = stub.CreateStrategy(
        pb.CreateStrategyRequest(
            strategy=pb.Strategy(name=unique("gc")), template_id="golden-cross"
        ),
        metadata=md,
    ).strategy
    assert s.strategy_type == golden.strategy_type
    assert s.parameters["slow"].int_value == golden.parameters["slow"].int_value
    cats = stub.ListCategories(pb.ListCategoriesRequest(), metadata=md).categories
    trend = next(x for x in cats if x.category == c.STRATEGY_CATEGORY_TREND_FOLLOWING)
    assert trend.strategy_type_count >= 2 and trend.strategy_count >= 1


def test_create_ensemble(stub: pbg.StrategyServiceStub, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    a, b = create(stub, md), create(stub, md, strategy_type="rsi_reversion")
    members = [pb.EnsembleMember(strategy_id=a.id, weight=2), pb.EnsembleMember(strategy_id=b.id)]
    ens = stub.CreateEnsemble(
        pb.CreateEnsembleRequest(
            name=unique("ens"), members=members, method=pb.ENSEMBLE_METHOD_MAJORITY
        ),
        metadata=md,
    ).strategy
    assert ens.strategy_type == "ensemble" and ens.category == c.STRATEGY_CATEGORY_ENSEMBLE
    assert [(m.strategy_id, m.weight) for m in ens.ensemble_members] == [(a.id, 2.0), (b.id, 1.0)]
    assert ens.ensemble_method == pb.ENSEMBLE_METHOD_MAJORITY
    one = call_error(
        stub.CreateEnsemble,
        pb.CreateEnsembleRequest(name=unique("ens"), members=members[:1]),
        metadata=md,
    )
    assert "members" in violations(one)
    hidden = create(stub, live_server.md("admin"))
    foreign = call_error(
        stub.CreateEnsemble,
        pb.CreateEnsembleRequest(
            name=unique("ens"), members=[members[0], pb.EnsembleMember(strategy_id=hidden.id)]
        ),
        metadata=md,
    )
    assert "members[1].strategy_id" in violations(foreign)
