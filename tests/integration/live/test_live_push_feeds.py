"""Push feeds over the API: several strategies share one feed; each bad bar is refused alone.

A client (an exchange bridge) streams bars for two symbols through the client-streaming
PushBars. Good bars are mixed with bad ones (out of order, NaN, high below low, an unknown
symbol, no time): the response counts both and names each rejected bar's problem and its
index in the upload; every good bar is persisted (GetFeed.bars_accepted) and traded by
every strategy on its symbol (GetPerformance.bars_processed). A twin feed that received
only the good bars gives strategies identical fills and equity, so the bad bars affected
nothing. warmup_bars on a push feed warms the indicators with the bars pushed before.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import strategy_pb2 as spb

from stratopt.api.convert import ns_to_pb, pb_to_ns
from tests.conftest import start_server, stop_server
from tests.integration.helpers import violations
from tests.integration.live.api_support import Api, eventually, iv, refused

T0 = 1_700_000_000 * 10**9
MINUTE = 60 * 10**9
SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST = {"fast": iv(3), "slow": iv(8)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    srv = start_server(Path(tmp_path_factory.mktemp("live-push")))
    a = Api.open(srv)
    yield a
    a.close()
    stop_server(srv)


def walk(symbol: str, n: int, start: int = 0, seed: int = 1) -> list[mpb.FeedBar]:
    """n good 1m bars of a random walk, from minute `start`."""
    rng = random.Random(f"{symbol}-{seed}")
    price = 100.0 if symbol == "BTCUSDT" else 50.0
    for _ in range(start):
        price *= math.exp(rng.gauss(0, 0.004))
    out = []
    for i in range(start, start + n):
        o = price
        price *= math.exp(rng.gauss(0, 0.004))
        hi, lo = max(o, price) * 1.001, min(o, price) * 0.999
        out.append(
            mpb.FeedBar(
                symbol=symbol,
                bar=c.Bar(
                    time=ns_to_pb(T0 + i * MINUTE), open=o, high=hi, low=lo, close=price,
                    volume=1.0 + i % 7,
                ),
            )
        )  # fmt: skip
    return out


def interleave(*series: list[mpb.FeedBar]) -> list[mpb.FeedBar]:
    merged = [b for s in series for b in s]
    merged.sort(key=lambda b: (pb_to_ns(b.bar.time), b.symbol))
    return merged


def push(api: Api, feed_id: str, bars: list[mpb.FeedBar], batch: int = 37) -> mpb.PushBarsResponse:
    def messages() -> Iterator[mpb.PushBarsRequest]:
        for k in range(0, len(bars), batch):
            # The feed id is required in the first message only.
            yield mpb.PushBarsRequest(feed_id=feed_id if k == 0 else "", bars=bars[k : k + batch])

    resp: mpb.PushBarsResponse = api.data.PushBars(messages(), metadata=api.srv.md("trader"))
    return resp


def new_feed(api: Api) -> mpb.Feed:
    feed: mpb.Feed = api.data.CreateFeed(
        mpb.CreateFeedRequest(
            feed=mpb.Feed(
                kind=mpb.FEED_KIND_PUSH, symbols=["btcusdt", "ETHUSDT"], timeframe="1m",
                display_name="bridge",
            )
        ),
        metadata=api.srv.md("trader"),
    ).feed  # fmt: skip
    assert feed.kind == mpb.FEED_KIND_PUSH and sorted(feed.symbols) == list(SYMBOLS)
    return feed


def copy(b: mpb.FeedBar, **changes: object) -> mpb.FeedBar:
    out = mpb.FeedBar()
    out.CopyFrom(b)
    for k, v in changes.items():
        if k == "symbol":
            out.symbol = str(v)
        elif k == "no_time":
            out.bar.ClearField("time")
        elif k == "time_of":
            out.bar.time.CopyFrom(v.bar.time)  # type: ignore[attr-defined]
        else:
            setattr(out.bar, k, v)
    return out


def test_push_feed_shared_by_strategies_with_bad_bars_refused_alone(api: Api) -> None:
    feed, twin = new_feed(api), new_feed(api)
    btc, eth = walk("BTCUSDT", 240), walk("ETHUSDT", 240)
    good = interleave(btc, eth)

    # The bad bars, each inserted after a good one; (index in upload, words in the reason).
    upload: list[mpb.FeedBar] = []
    expected: list[tuple[int, str, str]] = []
    bad_after = {
        30: (copy(btc[5], close=float("nan")), "BTCUSDT", "NaN"),
        61: (copy(eth[10], high=1.0, low=2.0), "ETHUSDT", "below low"),
        95: (copy(btc[20], symbol="DOGEUSDT"), "DOGEUSDT", "unknown symbol"),
        139: (copy(eth[69]), "ETHUSDT", "repeats"),  # good[139] is eth[69]
        200: (copy(btc[30], no_time=True), "BTCUSDT", "time is missing"),
        201: (copy(btc[10]), "BTCUSDT", "earlier than"),
        350: (copy(btc[170], open=-5.0), "BTCUSDT", "must be > 0"),
    }
    for i, b in enumerate(good):
        upload.append(b)
        if i in bad_after:
            bad, symbol, words = bad_after[i]
            expected.append((len(upload), symbol, words))
            upload.append(bad)
    assert good[139] == eth[69] and good[201] == eth[100]

    ids = {
        "btc-a": api.strategy("push-btc-a", parameters=FAST),
        "btc-b": api.strategy("push-btc-b", "ema_crossover"),
        "eth": api.strategy("push-eth", parameters=FAST),
        "twin-btc-a": api.strategy("push-twin-btc-a", parameters=FAST),
        "twin-btc-b": api.strategy("push-twin-btc-b", "ema_crossover"),
        "twin-eth": api.strategy("push-twin-eth", parameters=FAST),
    }
    both = c.ExecutionOptions(direction=c.TRADE_DIRECTION_BOTH, commission=0.001)
    for name, sid in ids.items():
        on = twin.id if name.startswith("twin") else feed.id
        symbol = "ETHUSDT" if name.endswith("eth") else "btcusdt"
        api.start(sid, feed_id=on, symbol=symbol, execution=both)
    # A feed with two symbols needs the symbol named.
    extra = api.strategy("push-no-symbol")
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(strategy_id=extra, feed_id=feed.id),
        metadata=api.srv.md("trader"),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "symbol" in violations(e)
    got = api.data.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=api.srv.md("trader")).feed
    assert got.running_strategy_count == 3

    resp = push(api, feed.id, upload)
    assert resp.accepted == len(good)
    assert resp.rejected == len(expected) == len(resp.rejections)
    for rejection, (index, symbol, words) in zip(resp.rejections, expected, strict=True):
        assert rejection.index == index, (rejection, index)
        assert rejection.symbol == symbol
        assert words in rejection.reason, (rejection.reason, words)
    twin_resp = push(api, twin.id, good, batch=100)
    assert (twin_resp.accepted, twin_resp.rejected) == (len(good), 0)

    # Every good bar is stored and traded by each strategy on its symbol.
    md = api.srv.md("trader")
    stored = api.data.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=md).feed
    assert (stored.bars_accepted, stored.bars_rejected) == (len(good), len(expected))
    assert pb_to_ns(stored.last_bar_time) == pb_to_ns(good[-1].bar.time)
    for name, sid in ids.items():
        perf = api.performance(sid)
        assert perf.run_state == spb.RUN_STATE_RUNNING
        assert perf.bars_processed == 240, name
        assert pb_to_ns(perf.last_bar_time) == T0 + 239 * MINUTE
        assert perf.symbol == ("ETHUSDT" if name.endswith("eth") else "BTCUSDT")
    # ... exactly as on the feed that never saw a bad bar.
    for name in ("btc-a", "btc-b", "eth"):
        sid, twin_sid = ids[name], ids[f"twin-{name}"]
        fills, twin_fills = api.fills(sid), api.fills(twin_sid)
        assert len(fills) > 4, name
        strip = [
            (f.time, f.side, f.quantity, f.price, f.fee, f.reason, f.realized_pnl) for f in fills
        ]
        twin_strip = [
            (f.time, f.side, f.quantity, f.price, f.fee, f.reason, f.realized_pnl)
            for f in twin_fills
        ]
        assert strip == twin_strip, name
        mine, theirs = api.performance(sid), api.performance(twin_sid)
        assert (mine.equity, mine.position_quantity, mine.realized_pnl) == (
            theirs.equity, theirs.position_quantity, theirs.realized_pnl,
        )  # fmt: skip
        sigs = [(s.time, s.action, s.price, s.target) for s in api.signals(sid)]
        assert sigs == [(s.time, s.action, s.price, s.target) for s in api.signals(twin_sid)]

    # A second upload carries on; a bar the feed already has is refused, not re-traded.
    more = interleave(walk("BTCUSDT", 20, start=240), walk("ETHUSDT", 20, start=240))
    resp = push(api, feed.id, [btc[-1], *more])
    assert (resp.accepted, resp.rejected) == (40, 1)
    assert resp.rejections[0].index == 0 and "repeats" in resp.rejections[0].reason
    assert api.performance(ids["btc-a"]).bars_processed == 260
    assert api.performance(ids["eth"]).bars_processed == 260
    for sid in ids.values():
        api.stop(sid)


def test_warmup_on_a_push_feed_uses_the_bars_pushed_before(api: Api) -> None:
    feed = new_feed(api)
    md = api.srv.md("trader")
    btc = walk("BTCUSDT", 400, seed=7)
    both = c.ExecutionOptions(direction=c.TRADE_DIRECTION_BOTH)
    watcher = api.strategy("warm-watcher", parameters=FAST, execution=both)
    api.start(watcher, feed_id=feed.id, symbol="BTCUSDT")
    assert push(api, feed.id, btc[:300]).accepted == 300

    # Asking for more than was pushed is refused with the count there is.
    warm = api.strategy("warm", parameters=FAST, execution=both)
    cold = api.strategy("cold", parameters=FAST, execution=both)
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(
            strategy_id=warm, feed_id=feed.id, symbol="BTCUSDT", warmup_bars=301
        ),
        metadata=md,
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "warmup_bars" in violations(e)
    assert "300" in violations(e)["warmup_bars"]
    api.start(warm, feed_id=feed.id, symbol="BTCUSDT", warmup_bars=50)
    api.start(cold, feed_id=feed.id, symbol="BTCUSDT")
    assert push(api, feed.id, btc[300:]).accepted == 100

    assert api.performance(warm).bars_processed == 100  # warm-up bars are not traded
    assert api.performance(cold).bars_processed == 100
    assert api.performance(watcher).bars_processed == 400
    start = T0 + 300 * MINUTE

    def later(sid: str) -> list[tuple[int, int, float, str]]:
        return [
            (pb_to_ns(s.time), s.target, s.price, s.reason)
            for s in api.signals(sid)
            if pb_to_ns(s.time) >= start
        ]

    # Warmed up, it acts on the first new bar exactly as the strategy that saw everything
    # (a cold start first goes from flat, "+0 -> ..."); its first fill takes the watcher's
    # side at the first open.
    assert later(warm) == later(watcher) and later(warm)
    assert later(cold) != later(watcher) and "+0 ->" in later(cold)[0][3]
    warm_fills = api.fills(warm)
    assert pb_to_ns(warm_fills[0].time) == start
    watcher_side = [f.side for f in api.fills(watcher) if pb_to_ns(f.time) < start][-1]
    assert warm_fills[0].side == watcher_side
    for sid in (watcher, warm, cold):
        api.stop(sid)


def test_a_push_feed_remembers_its_last_bars_when_a_strategy_starts(api: Api) -> None:
    """Bars pushed while nothing ran still order what comes next, for the run and the feed."""
    feed = new_feed(api)
    btc = walk("BTCUSDT", 30, seed=3)
    assert push(api, feed.id, btc[:20]).accepted == 20
    sid = api.strategy("remember", parameters=FAST)
    api.start(sid, feed_id=feed.id, symbol="BTCUSDT")
    idle = api.performance(sid)  # the bars before it are not its own: none traded yet
    assert (idle.bars_processed, idle.equity, idle.position) == (0, 10_000.0, 0)
    assert not idle.HasField("last_bar_time") and not idle.HasField("time")
    resp = push(api, feed.id, [btc[5], btc[19], btc[20]])
    assert (resp.accepted, resp.rejected) == (1, 2)
    assert [r.index for r in resp.rejections] == [0, 1]
    assert "earlier than" in resp.rejections[0].reason and "repeats" in resp.rejections[1].reason
    perf = api.performance(sid)
    assert perf.bars_processed == 1 and pb_to_ns(perf.last_bar_time) == T0 + 20 * MINUTE
    api.stop(sid)


def test_strategies_join_a_running_replay_feed(api: Api) -> None:
    """A replay feed shared by strategies started at different times: a late one warmed up
    on the bars the replay has passed trades the bars after it joined exactly as the one
    that saw them all (no bar lost or repeated between its warm-up and its first bar)."""
    md = api.srv.md("trader")
    ds = api.dataset("shared-replay", bars=1500, seed=21)
    feed = api.data.CreateFeed(
        mpb.CreateFeedRequest(
            # 10 s in all: the late start must land mid-replay on a busy CI machine too
            # (past the last bar, a start replays the feed again from its first bar).
            feed=mpb.Feed(kind=mpb.FEED_KIND_REPLAY, dataset_id=ds, bars_per_second=150)
        ),
        metadata=md,
    ).feed
    both = c.ExecutionOptions(direction=c.TRADE_DIRECTION_BOTH)
    # A 2-bar rate of change: its target at a bar depends on exactly the bars before it.
    roc2 = {"period": iv(2), "threshold": c.ParameterValue(double_value=0.0)}
    first = api.strategy("replay-first", "roc_momentum", parameters=roc2, execution=both)
    late = api.strategy("replay-late", "roc_momentum", parameters=roc2, execution=both)
    # No bar before the feed's start to warm up on yet.
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(strategy_id=late, feed_id=feed.id, warmup_bars=1),
        metadata=md,
    )
    assert "warmup_bars" in violations(e)
    api.start(first, feed_id=feed.id)
    eventually(lambda: api.performance(first).bars_processed >= 200, what="200 bars")
    api.start(late, feed_id=feed.id, warmup_bars=50)
    running = api.data.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=md).feed
    assert running.running_strategy_count == 2
    a, b = api.wait_stopped(first), api.wait_stopped(late)
    assert a.bars_processed == 1500 and b.run_state == spb.RUN_STATE_STOPPED
    assert 200 <= 1500 - b.bars_processed < 1500
    joined = pb_to_ns(a.last_bar_time) - (b.bars_processed - 1) * 3600 * 10**9
    assert pb_to_ns(b.last_bar_time) == pb_to_ns(a.last_bar_time)

    def since(sid: str) -> list[tuple[int, int, float, str]]:
        return [
            (pb_to_ns(s.time), s.target, s.price, s.reason)
            for s in api.signals(sid)
            if pb_to_ns(s.time) >= joined
        ]

    assert since(late) == since(first) and len(since(late)) > 10
    # Its first fill is the target of the bar before it joined, taken at the first open.
    late_fills = api.fills(late)
    assert pb_to_ns(late_fills[0].time) == joined
    before = [s for s in api.signals(first) if pb_to_ns(s.time) < joined][-1]
    assert late_fills[0].side == (
        spb.SIGNAL_ACTION_BUY if before.target > 0 else spb.SIGNAL_ACTION_SELL
    )
    assert api.data.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=md).feed.finished


def test_concurrent_uploads_trade_every_bar_they_accept(api: Api) -> None:
    """Two bridges pushing one symbol at once: every bar the feed accepts is stored and
    traded, in time order (the ones that come too late are refused, not lost)."""
    feed = new_feed(api)
    sid = api.strategy("two-bridges", parameters=FAST)
    api.start(sid, feed_id=feed.id, symbol="BTCUSDT")
    btc = walk("BTCUSDT", 400, seed=11)
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda part: push(api, feed.id, part, batch=4), [btc[0::2], btc[1::2]])
        )
    accepted = sum(r.accepted for r in results)
    assert sum(r.accepted + r.rejected for r in results) == 400 and accepted > 0
    stored = api.data.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=api.srv.md("trader"))
    assert stored.feed.bars_accepted == accepted
    assert api.performance(sid).bars_processed == accepted
    api.stop(sid)
