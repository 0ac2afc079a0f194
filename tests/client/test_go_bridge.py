"""The Go exchange bridge (examples/go/cmd/bridge) pushing a CSV into a live server's feed.

The bridge runs as a user would run it (`go run ./cmd/bridge`); the server side is then
checked over gRPC: the feed's counters, and a strategy started on the feed beforehand that
traded every accepted bar.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mpbg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from tests.conftest import LiveServer

from .runner import EXAMPLES, run_ok

GO = EXAMPLES / "go"

pytestmark = pytest.mark.client

START = datetime(2024, 5, 1, tzinfo=UTC)


def closes(n: int) -> list[float]:
    """Down, up, down again: a 2/5 SMA crossover trades it more than once."""
    out, price = [], 100.0
    for i in range(n):
        price += -1.0 if i < n // 3 or i >= 2 * n // 3 else 1.5
        out.append(price)
    return out


def csv_line(i: int, close: float, *, high: float | None = None) -> str:
    ts = (START + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    h = close + 0.5 if high is None else high
    return f"{ts},{close},{h},{close - 0.5},{close},{100 + i}"


@pytest.fixture(scope="module")
def channel(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as ch:
        yield ch


def bridge(token_env: dict[str, str], *args: str) -> str:
    return run_ok(["go", "run", "./cmd/bridge", *args], cwd=GO, env=token_env).stdout


def test_bridge_go_tests_pass(token_env: dict[str, str]) -> None:
    out = run_ok(["go", "test", "-count=1", "-v", "./cmd/bridge/"], cwd=GO, env=token_env).stdout
    assert "--- SKIP" not in out, out
    for name in (
        "TestPushReportsEachBadBarAndKeepsTheRest",
        "TestRunReusesAFeedAndTracesRejectionsToCSVLines",
        "TestReadCSVParsesBarsAndSkipsLinesThatAreNoBars",
    ):
        assert f"--- PASS: {name}" in out, out


def test_bridge_pushes_a_csv_that_a_running_strategy_trades(
    token_env: dict[str, str], live_server: LiveServer, channel: grpc.Channel, tmp_path: Path
) -> None:
    md = live_server.md("trader")
    feeds = mpbg.MarketDataServiceStub(channel)
    strategies = spbg.StrategyServiceStub(channel)
    symbol = f"BR{uuid.uuid4().hex[:8].upper()}"
    prices = closes(45)

    # 1. The bridge creates the feed with a first upload: 5 good bars.
    first = tmp_path / "first.csv"
    first.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "\n".join(csv_line(i, p) for i, p in enumerate(prices[:5]))
        + "\n"
    )
    out = bridge(token_env, "-csv", str(first), "-symbol", symbol, "-timeframe", "1m")
    found = re.search(r"^created push feed (\w+) ", out, re.MULTILINE)
    assert found, out
    feed_id = found.group(1)
    assert "pushed 5 bars in 1 messages: accepted 5, rejected 0" in out, out

    # 2. A strategy starts on the feed, warmed up with the 5 bars already there.
    strategy = strategies.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(
                name=f"bridge-{symbol}",
                strategy_type="sma_crossover",
                parameters={
                    "fast": c.ParameterValue(int_value=2),
                    "slow": c.ParameterValue(int_value=5),
                },
            )
        ),
        metadata=md,
    ).strategy
    strategies.StartStrategy(
        spb.StartStrategyRequest(strategy_id=strategy.id, feed_id=feed_id, warmup_bars=5),
        metadata=md,
    )
    try:
        # 3. The bridge reuses the feed for the rest: 40 good bars, 3 the feed refuses (out of
        #    order, NaN, high below low) and one line that is no bar at all.
        lines = [csv_line(i, p) for i, p in enumerate(prices) if i >= 5]
        lines.insert(10, csv_line(3, 97.0))  # line 11: before the last accepted bar
        lines.insert(20, "2024-05-01T01:00:00Z,100,NaN,99,100,1")  # line 21: NaN
        lines.insert(30, csv_line(61, 99.0, high=90.0))  # line 31: high below low
        lines.insert(35, "2024-05-01T99:00:00Z,1,2,0.5,1,1")
        rest = tmp_path / "rest.csv"
        rest.write_text("\n".join(lines) + "\n")
        out = bridge(
            token_env, "-csv", str(rest), "-symbol", symbol, "-feed", feed_id, "-batch", "8"
        )
        assert f"using push feed {feed_id} " in out, out
        assert "read " in out and "43 bars, 1 lines skipped" in out, out
        assert "line 36 skipped: timestamp" in out, out
        assert "pushed 43 bars in 6 messages: accepted 40, rejected 3" in out, out
        rejected = re.findall(r"^  line (\d+) rejected: (\S+) (\S+): (.*)$", out, re.MULTILINE)
        assert [(int(line), sym) for line, sym, _, _ in rejected] == [
            (11, symbol),
            (21, symbol),
            (31, symbol),
        ], out
        reasons = [reason for *_, reason in rejected]
        assert "strictly increasing" in reasons[0]
        assert "high is NaN" in reasons[1]
        assert "below low" in reasons[2]

        # 4. The server side: the feed's counters, and the strategy traded every bar.
        feed = feeds.GetFeed(mpb.GetFeedRequest(feed_id=feed_id), metadata=md).feed
        assert (feed.bars_accepted, feed.bars_rejected) == (45, 3)
        assert list(feed.symbols) == [symbol] and feed.running_strategy_count == 1
        assert feed.last_bar_time.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=44)
        perf = strategies.GetPerformance(
            spb.GetPerformanceRequest(strategy_id=strategy.id), metadata=md
        ).performance
        assert perf.bars_processed == 40
        assert perf.last_bar_time.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=44)
        fills = strategies.ListFills(
            spb.ListFillsRequest(strategy_id=strategy.id), metadata=md
        ).fills
        signals = strategies.ListSignals(
            spb.ListSignalsRequest(strategy_id=strategy.id), metadata=md
        ).signals
        assert signals and fills, "the crossover never traded the pushed bars"
        assert [s.sequence for s in signals] == list(range(1, len(signals) + 1))
        assert perf.metrics.num_trades >= 1
    finally:
        strategies.StopStrategy(
            spb.StopStrategyRequest(strategy_id=strategy.id, close_position=True), metadata=md
        )
        feeds.DeleteFeed(mpb.DeleteFeedRequest(feed_id=feed_id), metadata=md)
        strategies.DeleteStrategy(spb.DeleteStrategyRequest(strategy_id=strategy.id), metadata=md)
