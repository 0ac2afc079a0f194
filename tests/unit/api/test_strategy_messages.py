"""`StrategyMessages`: a view the catalog hands out again is converted once; a new view
object, even an equal one, is converted anew; at most `size` views are held."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from stratopt.api.strategy_convert import StrategyMessages, strategy_to_pb
from stratopt.services.strategies import StrategyView

NOW = datetime(2026, 12, 1, tzinfo=UTC)
VIEW = StrategyView(
    id="s1", owner_id="u1", owner_username="olga", name="first", description="",
    strategy_type="sma_crossover", category="trend", risk_level="medium",
    parameters={"fast": 5}, symbols=["BTC"], timeframe="1h", tags=[], status="draft",
    execution={}, ensemble_members=[], ensemble_method="", alert_rules=[],
    run_state="stopped", version=1, created_at=NOW, updated_at=NOW,
)  # fmt: skip


def test_the_same_view_is_converted_once() -> None:
    messages = StrategyMessages()
    first = messages.of(VIEW)
    assert messages.of(VIEW) is first
    assert first == strategy_to_pb(VIEW)


def test_a_new_view_object_gets_a_new_message() -> None:
    messages = StrategyMessages()
    old = messages.of(VIEW)
    changed = replace(VIEW, name="second", version=2)
    assert (messages.of(changed).name, messages.of(changed).etag) == ("second", "v2")
    assert messages.of(replace(VIEW)) is not old


def test_it_holds_at_most_size_views() -> None:
    messages = StrategyMessages(size=2)
    views = [replace(VIEW, id=f"s{i}") for i in range(3)]
    firsts = [messages.of(v) for v in views]
    assert messages.of(views[2]) is firsts[2]
    assert messages.of(views[0]) is not firsts[0]
