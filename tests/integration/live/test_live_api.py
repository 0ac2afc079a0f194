"""Paper trading over the API: who may do what, what bad requests get, and StopStrategy.

One server for the module. Access follows the strategy rules: the owner starts and stops;
a user the strategy is shared with READ-only reads and streams it but may not start or
stop it; a user without a share sees nothing (NOT_FOUND, never PERMISSION_DENIED, which
would confirm the id exists); an EXECUTE share lets another trader run it. Feeds are
their owner's alone.

Every refusal is INVALID_ARGUMENT (with the offending field named in a BadRequest),
NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION or RESOURCE_EXHAUSTED, never INTERNAL
or UNKNOWN, and the server keeps working after each one: a strategy running through the
whole barrage still trades every bar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import system_pb2 as ypb

from stratopt.api.convert import ns_to_pb
from tests.conftest import start_server, stop_server
from tests.integration.helpers import violations
from tests.integration.live.api_support import Api, eventually, iv, refused, stream_error
from tests.integration.security.support import login, new_user

PE, NF = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND
IA, FP = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION
FAST = {"fast": iv(3), "slow": iv(8)}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    srv = start_server(Path(tmp_path_factory.mktemp("live-api")))
    a = Api.open(srv)
    yield a
    a.close()
    stop_server(srv)


@pytest.fixture(scope="module")
def dataset(api: Api) -> str:
    return api.dataset("api", bars=3000, seed=5)


@pytest.fixture(scope="module")
def trader2(api: Api) -> list[tuple[str, str]]:
    """A second trader (the demo users have one), as call metadata."""
    username, password, _ = new_user(api.srv, c.ROLE_TRADER, "trader2")
    token = login(api.srv, username, password).access_token
    api.srv._tokens[username] = (token, time.monotonic())
    return [("authorization", f"Bearer {token}"), ("x-username", username)]


def username_of(md: list[tuple[str, str]]) -> str:
    return dict(md)["x-username"]


def auth_only(md: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [kv for kv in md if kv[0] == "authorization"]


# -- access ------------------------------------------------------------------------------


def share(api: Api, strategy_id: str, username: str, *access: int) -> None:
    api.strategies.ShareStrategy(
        spb.ShareStrategyRequest(strategy_id=strategy_id, username=username, access=access),
        metadata=api.srv.md("trader"),
    )


def test_owner_starts_and_stops_and_a_read_share_only_watches(api: Api, dataset: str) -> None:
    sid = api.strategy("acc-owner", parameters=FAST)
    share(api, sid, "viewer", spb.STRATEGY_ACCESS_READ)
    viewer = api.srv.md("viewer")
    api.start(sid, dataset_id=dataset, bars_per_second=200)
    try:
        signals = api.strategies.StreamSignals(
            spb.StreamSignalsRequest(strategy_id=sid, after_sequence=0), metadata=viewer
        )
        first = next(iter(signals))
        signals.cancel()
        assert first.signal.sequence >= 1 and first.signal.strategy_id == sid
        eventually(lambda: api.signals(sid, who="viewer"), what="signals listed for the viewer")
        assert api.performance(sid, who="viewer").run_state == spb.RUN_STATE_RUNNING
        alerts = api.strategies.StreamAlerts(
            spb.StreamAlertsRequest(strategy_id=sid, after_sequence=0), metadata=viewer
        )
        alerts.cancel()
        snaps = api.strategies.StreamPerformance(
            spb.StreamPerformanceRequest(strategy_id=sid), metadata=viewer
        )
        assert next(iter(snaps)).performance.strategy_id == sid
        snaps.cancel()
        # Watching is not running it.
        e = refused(
            api.strategies.StopStrategy, spb.StopStrategyRequest(strategy_id=sid), metadata=viewer
        )
        assert e.code() == PE
        assert api.performance(sid).run_state == spb.RUN_STATE_RUNNING
    finally:
        api.stop(sid)
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(strategy_id=sid, dataset_id=dataset),
        metadata=viewer,
    )
    assert e.code() == PE
    assert api.performance(sid).run_state == spb.RUN_STATE_STOPPED
    # The owner may start it again (a new run continues the numbering).
    before = api.signals(sid)
    api.start(sid, dataset_id=dataset, bars_per_second=0)
    after = api.wait_stopped(sid)
    assert after.bars_processed == 3000
    signals_now = api.signals(sid)
    assert signals_now[: len(before)] == before
    assert [s.sequence for s in signals_now] == list(range(1, len(signals_now) + 1))


def test_a_trader_with_a_read_share_may_not_run_it(
    api: Api, dataset: str, trader2: list[tuple[str, str]]
) -> None:
    sid = api.strategy("acc-read-trader", parameters=FAST)
    share(api, sid, username_of(trader2), spb.STRATEGY_ACCESS_READ)
    md = auth_only(trader2)
    own_ds = api.data.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="t2-read", bar_count=200, seed=1), metadata=md
    ).dataset.id
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(strategy_id=sid, dataset_id=own_ds),
        metadata=md,
    )
    assert e.code() == PE, e.details()
    api.start(sid, dataset_id=dataset, bars_per_second=50)
    try:
        e = refused(
            api.strategies.StopStrategy, spb.StopStrategyRequest(strategy_id=sid), metadata=md
        )
        assert e.code() == PE
        assert api.performance(sid, who="trader").run_state == spb.RUN_STATE_RUNNING
        got = api.strategies.GetPerformance(spb.GetPerformanceRequest(strategy_id=sid), metadata=md)
        assert got.performance.run_state == spb.RUN_STATE_RUNNING
    finally:
        api.stop(sid)


def test_without_a_share_everything_is_not_found(
    api: Api, dataset: str, trader2: list[tuple[str, str]]
) -> None:
    sid = api.strategy("acc-private", parameters=FAST)
    md = auth_only(trader2)
    S = api.strategies
    api.start(sid, dataset_id=dataset, bars_per_second=50)
    try:
        eventually(lambda: api.signals(sid), what="a signal")
        calls = [
            (S.StartStrategy, spb.StartStrategyRequest(strategy_id=sid, dataset_id=dataset)),
            (S.StopStrategy, spb.StopStrategyRequest(strategy_id=sid, close_position=True)),
            (S.GetPerformance, spb.GetPerformanceRequest(strategy_id=sid)),
            (S.ListSignals, spb.ListSignalsRequest(strategy_id=sid)),
            (S.ListFills, spb.ListFillsRequest(strategy_id=sid)),
        ]
        for fn, req in calls:
            assert refused(fn, req, metadata=md).code() == NF, fn
        streams = [
            S.StreamSignals(spb.StreamSignalsRequest(strategy_id=sid), metadata=md),
            S.StreamSignals(
                spb.StreamSignalsRequest(strategy_id=sid, after_sequence=1), metadata=md
            ),
            S.StreamAlerts(spb.StreamAlertsRequest(strategy_id=sid), metadata=md),
            S.StreamPerformance(spb.StreamPerformanceRequest(strategy_id=sid), metadata=md),
        ]
        for stream in streams:
            assert stream_error(stream).code() == NF
        assert api.performance(sid).run_state == spb.RUN_STATE_RUNNING
    finally:
        api.stop(sid)


def test_an_execute_share_lets_another_trader_run_it(
    api: Api, trader2: list[tuple[str, str]]
) -> None:
    sid = api.strategy("acc-exec", parameters=FAST)
    share(api, sid, username_of(trader2), spb.STRATEGY_ACCESS_EXECUTE)
    md = auth_only(trader2)
    own_ds = api.data.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="t2-exec", bar_count=5000, seed=2), metadata=md
    ).dataset.id
    started = api.strategies.StartStrategy(
        spb.StartStrategyRequest(strategy_id=sid, dataset_id=own_ds, bars_per_second=100),
        metadata=md,
    ).strategy
    assert started.id == sid and started.run_state == spb.RUN_STATE_RUNNING
    # The owner sees it running, and either may stop it.
    assert api.performance(sid).run_state == spb.RUN_STATE_RUNNING
    stopped = api.strategies.StopStrategy(
        spb.StopStrategyRequest(strategy_id=sid), metadata=md
    ).strategy
    assert stopped.run_state == spb.RUN_STATE_STOPPED
    assert api.performance(sid).run_state == spb.RUN_STATE_STOPPED


def test_feeds_are_their_owners(api: Api, trader2: list[tuple[str, str]]) -> None:
    md = api.srv.md("trader")
    feed = api.data.CreateFeed(
        mpb.CreateFeedRequest(
            feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["BTCUSDT"], timeframe="1m")
        ),
        metadata=md,
    ).feed
    other = auth_only(trader2)
    D = api.data
    assert refused(D.GetFeed, mpb.GetFeedRequest(feed_id=feed.id), metadata=other).code() == NF
    assert (
        refused(D.DeleteFeed, mpb.DeleteFeedRequest(feed_id=feed.id), metadata=other).code() == NF
    )
    push = iter([mpb.PushBarsRequest(feed_id=feed.id, bars=[bar("BTCUSDT", 0)])])
    assert refused(D.PushBars, push, metadata=other).code() == NF
    own = api.strategies.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name="t2-on-feed", strategy_type="sma_crossover")
        ),
        metadata=other,
    ).strategy.id
    e = refused(
        api.strategies.StartStrategy,
        spb.StartStrategyRequest(strategy_id=own, feed_id=feed.id),
        metadata=other,
    )
    assert e.code() == NF
    listed = D.ListFeeds(mpb.ListFeedsRequest(), metadata=other).feeds
    assert feed.id not in {f.id for f in listed}
    # Nothing of that reached the feed.
    got = D.GetFeed(mpb.GetFeedRequest(feed_id=feed.id), metadata=md).feed
    assert (got.bars_accepted, got.bars_rejected) == (0, 0)
    D.DeleteFeed(mpb.DeleteFeedRequest(feed_id=feed.id), metadata=md)


# -- bad requests ------------------------------------------------------------------------

T0 = 1_700_000_000 * 10**9
MINUTE = 60 * 10**9


def bar(symbol: str, i: int, close: float = 100.0, **kw: float) -> mpb.FeedBar:
    b = c.Bar(
        time=ns_to_pb(T0 + i * MINUTE), open=close, high=close + 1, low=close - 1, close=close,
        volume=10,
    )  # fmt: skip
    for k, v in kw.items():
        setattr(b, k, v)
    return mpb.FeedBar(symbol=symbol, bar=b)


def invalid(err: grpc.RpcError, field: str) -> str:
    assert err.code() == IA, f"{err.code()} {err.details()}"
    v = violations(err)
    assert field in v, (field, v)
    return v[field]


def test_bad_start_and_stop_requests(api: Api, dataset: str) -> None:
    S, md = api.strategies, api.srv.md("trader")
    sid = api.strategy("bad-start", parameters=FAST)

    def start(**kw: object) -> grpc.RpcError:
        return refused(S.StartStrategy, spb.StartStrategyRequest(**kw), metadata=md)

    invalid(start(dataset_id=dataset), "strategy_id")
    invalid(start(strategy_id=sid), "dataset_id")
    feed = api.data.CreateFeed(
        mpb.CreateFeedRequest(feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["X"])), metadata=md
    ).feed
    invalid(start(strategy_id=sid, dataset_id=dataset, feed_id=feed.id), "dataset_id")
    invalid(start(strategy_id=sid, dataset_id=dataset, bars_per_second=-1), "bars_per_second")
    invalid(
        start(strategy_id=sid, dataset_id=dataset, bars_per_second=float("nan")), "bars_per_second"
    )
    invalid(start(strategy_id=sid, dataset_id=dataset, warmup_bars=-1), "warmup_bars")
    invalid(start(strategy_id=sid, dataset_id=dataset, warmup_bars=10**9), "warmup_bars")
    after_end = timestamp_pb2.Timestamp(seconds=4_000_000_000)
    invalid(start(strategy_id=sid, dataset_id=dataset, start_time=after_end), "start_time")
    invalid(start(strategy_id=sid, feed_id=feed.id, start_time=after_end), "start_time")
    invalid(start(strategy_id=sid, feed_id=feed.id, bars_per_second=5), "bars_per_second")
    # Warm-up bars come before the first traded bar: there are none before the first one.
    e = start(strategy_id=sid, dataset_id=dataset, warmup_bars=1)
    assert "only 0 bars" in invalid(e, "warmup_bars")
    bar_100 = api.data.ReadBars(mpb.ReadBarsRequest(dataset_id=dataset, page_size=101), metadata=md)
    t100 = next(iter(bar_100)).bars[100].time
    bar_100.cancel()
    assert "only 100 bars" in invalid(
        start(strategy_id=sid, dataset_id=dataset, start_time=t100, warmup_bars=101), "warmup_bars"
    )
    invalid(
        start(strategy_id=sid, dataset_id=dataset, execution=c.ExecutionOptions(commission=-1)),
        "execution.commission",
    )
    assert start(strategy_id="no-such-strategy", dataset_id=dataset).code() == NF
    assert start(strategy_id=sid, dataset_id="no-such-dataset").code() == NF
    assert start(strategy_id=sid, feed_id="no-such-feed").code() == NF
    invalid(start(strategy_id=sid, feed_id=feed.id, symbol="ETHUSDT"), "symbol")
    # Never ran: nothing to stop, no performance yet, nothing to stream from.
    assert (
        refused(S.StopStrategy, spb.StopStrategyRequest(strategy_id=sid), metadata=md).code() == FP
    )
    assert (
        refused(S.GetPerformance, spb.GetPerformanceRequest(strategy_id=sid), metadata=md).code()
        == FP
    )
    invalid(refused(S.StopStrategy, spb.StopStrategyRequest(), metadata=md), "strategy_id")
    invalid(refused(S.GetPerformance, spb.GetPerformanceRequest(), metadata=md), "strategy_id")
    assert api.signals(sid) == [] and api.fills(sid) == []

    api.start(sid, dataset_id=dataset, bars_per_second=20)
    try:
        assert start(strategy_id=sid, dataset_id=dataset).code() == FP
        assert start(strategy_id=sid, feed_id=feed.id).code() == FP
    finally:
        api.stop(sid)
    assert (
        refused(S.StopStrategy, spb.StopStrategyRequest(strategy_id=sid), metadata=md).code() == FP
    )

    archived = api.strategy("bad-archived")
    S.UpdateStrategy(
        spb.UpdateStrategyRequest(
            strategy=spb.Strategy(id=archived, status=spb.STRATEGY_STATUS_ARCHIVED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        metadata=md,
    )
    assert start(strategy_id=archived, dataset_id=dataset).code() == FP


def test_concurrent_starts_run_it_once(api: Api, dataset: str) -> None:
    """Eight StartStrategy calls at once: one runs it, the others are refused cleanly."""
    sid = api.strategy("concurrent", parameters=FAST)
    md = api.srv.md("trader")

    def start(_: int) -> grpc.StatusCode:
        try:
            api.strategies.StartStrategy(
                spb.StartStrategyRequest(strategy_id=sid, dataset_id=dataset, bars_per_second=300),
                metadata=md,
            )
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(start, range(8)))
    assert sorted(codes, key=str) == sorted([grpc.StatusCode.OK] + [FP] * 7, key=str), codes
    eventually(lambda: api.performance(sid).bars_processed >= 20, what="the one run trades")
    api.stop(sid)
    perf = api.performance(sid)
    assert perf.run_state == spb.RUN_STATE_STOPPED
    assert (
        api.strategies.GetStrategy(
            spb.GetStrategyRequest(strategy_id=sid), metadata=md
        ).strategy.run_state
        == spb.RUN_STATE_STOPPED
    )
    signals = api.signals(sid)
    assert [s.sequence for s in signals] == list(range(1, len(signals) + 1))
    # And it starts again.
    api.start(sid, dataset_id=dataset, bars_per_second=0)
    assert api.wait_stopped(sid).bars_processed == 3000


def test_bad_stream_requests(api: Api, dataset: str) -> None:
    S, md = api.strategies, api.srv.md("trader")
    sid = api.strategy("bad-streams", parameters=FAST)
    api.start(sid, dataset_id=dataset, bars_per_second=0)
    api.wait_stopped(sid)
    for stream in (
        S.StreamSignals(spb.StreamSignalsRequest(strategy_id=sid, after_sequence=-1), metadata=md),
        S.StreamAlerts(spb.StreamAlertsRequest(strategy_id=sid, after_sequence=-1), metadata=md),
        api.system.StreamNotifications(
            ypb.StreamNotificationsRequest(after_sequence=-1), metadata=md
        ),
    ):
        invalid(stream_error(stream), "after_sequence")
    for stream in (
        S.StreamSignals(spb.StreamSignalsRequest(), metadata=md),
        S.StreamAlerts(spb.StreamAlertsRequest(), metadata=md),
        S.StreamPerformance(spb.StreamPerformanceRequest(), metadata=md),
    ):
        invalid(stream_error(stream), "strategy_id")
    # Running: a resume point after anything it sent would wait for nothing, forever.
    running = api.strategy("bad-streams-running", parameters=FAST)
    api.start(running, dataset_id=dataset, bars_per_second=50)
    try:
        for stream in (
            S.StreamSignals(
                spb.StreamSignalsRequest(strategy_id=running, after_sequence=10**6), metadata=md
            ),
            S.StreamAlerts(
                spb.StreamAlertsRequest(strategy_id=running, after_sequence=10**6), metadata=md
            ),
        ):
            invalid(stream_error(stream), "after_sequence")
    finally:
        api.stop(running)
    # Stopped: "only new ones" would wait forever; a resume point reads what it recorded.
    for stream in (
        S.StreamSignals(spb.StreamSignalsRequest(strategy_id=sid), metadata=md),
        S.StreamAlerts(spb.StreamAlertsRequest(strategy_id=sid), metadata=md),
    ):
        assert stream_error(stream).code() == FP
    recorded = api.signals(sid)
    assert len(recorded) > 5
    resumed = list(
        S.StreamSignals(
            spb.StreamSignalsRequest(strategy_id=sid, after_sequence=3), metadata=md, timeout=10
        )
    )
    assert [r.signal for r in resumed] == recorded[3:]
    alerts = list(
        S.StreamAlerts(
            spb.StreamAlertsRequest(strategy_id=sid, after_sequence=0 + 1), metadata=md, timeout=10
        )
    )
    assert alerts and alerts[-1].alert.kind == "status"
    # interval: 0 is the default (1 s), 61 is out of range; a stopped run gives one snapshot.
    for interval in (0, 1, 60):
        snaps = list(
            S.StreamPerformance(
                spb.StreamPerformanceRequest(strategy_id=sid, interval_seconds=interval),
                metadata=md,
                timeout=10,
            )
        )
        assert len(snaps) == 1 and snaps[0].performance.run_state == spb.RUN_STATE_STOPPED
    for interval in (61, -1):
        stream = S.StreamPerformance(
            spb.StreamPerformanceRequest(strategy_id=sid, interval_seconds=interval), metadata=md
        )
        invalid(stream_error(stream), "interval_seconds")
    never = api.strategy("bad-streams-never")
    e = stream_error(
        S.StreamPerformance(spb.StreamPerformanceRequest(strategy_id=never), metadata=md)
    )
    assert e.code() == FP
    e = stream_error(
        S.StreamSignals(spb.StreamSignalsRequest(strategy_id=never, after_sequence=1), metadata=md)
    )
    assert e.code() in (FP,), e.details()


def test_paging_of_signals_and_fills(api: Api, dataset: str) -> None:
    S, md = api.strategies, api.srv.md("trader")
    a, b = api.strategy("page-a", parameters=FAST), api.strategy("page-b", parameters=FAST)
    for sid in (a, b):
        api.start(sid, dataset_id=dataset, bars_per_second=0)
    for sid in (a, b):
        api.wait_stopped(sid)
    all_fills = api.fills(a)
    all_signals = api.signals(a)
    assert len(all_fills) > 10 and len(all_signals) > 10
    assert api.fills(a, page_size=2) == all_fills
    assert api.signals(a, page_size=2) == all_signals
    first = S.ListFills(spb.ListFillsRequest(strategy_id=a, page_size=2), metadata=md)
    assert len(first.fills) == 2 and first.next_page_token
    invalid(
        refused(
            S.ListFills,
            spb.ListFillsRequest(strategy_id=b, page_size=2, page_token=first.next_page_token),
            metadata=md,
        ),
        "page_token",
    )
    sig = S.ListSignals(spb.ListSignalsRequest(strategy_id=a, page_size=2), metadata=md)
    invalid(
        refused(
            S.ListSignals,
            spb.ListSignalsRequest(strategy_id=b, page_size=2, page_token=sig.next_page_token),
            metadata=md,
        ),
        "page_token",
    )
    # A fills token is not a signals token either.
    invalid(
        refused(
            S.ListSignals,
            spb.ListSignalsRequest(strategy_id=a, page_size=2, page_token=first.next_page_token),
            metadata=md,
        ),
        "page_token",
    )
    for req in (
        spb.ListFillsRequest(strategy_id=a, page_token="garbage"),
        spb.ListFillsRequest(strategy_id=a, page_size=-1),
    ):
        e = refused(S.ListFills, req, metadata=md)
        assert e.code() == IA
    invalid(refused(S.ListFills, spb.ListFillsRequest(), metadata=md), "strategy_id")
    # page_size above the maximum is capped, not refused.
    assert len(
        S.ListFills(spb.ListFillsRequest(strategy_id=a, page_size=5000), metadata=md).fills
    ) == min(len(all_fills), 1000)


def test_bad_feed_requests(api: Api, dataset: str) -> None:
    D, md = api.data, api.srv.md("trader")

    def create(**kw: object) -> grpc.RpcError:
        return refused(D.CreateFeed, mpb.CreateFeedRequest(feed=mpb.Feed(**kw)), metadata=md)

    invalid(create(kind=mpb.FEED_KIND_PUSH), "feed.symbols")
    invalid(create(kind=mpb.FEED_KIND_PUSH, symbols=["BTC USDT"]), "feed.symbols[0]")
    invalid(create(kind=mpb.FEED_KIND_PUSH, symbols=["OK", ""]), "feed.symbols[1]")
    invalid(create(kind=99, symbols=["X"]), "feed.kind")
    invalid(create(symbols=["X"]), "feed.kind")
    invalid(create(kind=mpb.FEED_KIND_REPLAY), "feed.dataset_id")
    invalid(create(kind=mpb.FEED_KIND_PUSH, symbols=["X"], timeframe="soon"), "feed.timeframe")
    invalid(
        create(kind=mpb.FEED_KIND_PUSH, symbols=["X"], bars_per_second=-1), "feed.bars_per_second"
    )
    invalid(create(kind=mpb.FEED_KIND_PUSH, symbols=["X"], dataset_id=dataset), "feed.dataset_id")
    assert create(kind=mpb.FEED_KIND_REPLAY, dataset_id="nope").code() == NF
    before = timestamp_pb2.Timestamp(seconds=1)
    invalid(
        create(kind=mpb.FEED_KIND_REPLAY, dataset_id=dataset, start_time=before), "feed.start_time"
    )
    invalid(refused(D.GetFeed, mpb.GetFeedRequest(), metadata=md), "feed_id")
    invalid(refused(D.DeleteFeed, mpb.DeleteFeedRequest(), metadata=md), "feed_id")
    assert refused(D.GetFeed, mpb.GetFeedRequest(feed_id="nope"), metadata=md).code() == NF

    # Pushing: to a replay feed, to nothing, without a feed id, to two feeds at once.
    replay = D.CreateFeed(
        mpb.CreateFeedRequest(feed=mpb.Feed(kind=mpb.FEED_KIND_REPLAY, dataset_id=dataset)),
        metadata=md,
    ).feed
    assert replay.symbols == ["SYN"] and replay.timeframe == "1h"
    e = refused(
        D.PushBars,
        iter([mpb.PushBarsRequest(feed_id=replay.id, bars=[bar("SYN", 0)])]),
        metadata=md,
    )
    assert e.code() == FP
    invalid(refused(D.PushBars, iter([]), metadata=md), "feed_id")
    invalid(
        refused(D.PushBars, iter([mpb.PushBarsRequest(bars=[bar("X", 0)])]), metadata=md), "feed_id"
    )
    push = D.CreateFeed(
        mpb.CreateFeedRequest(feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["X"])), metadata=md
    ).feed
    push2 = D.CreateFeed(
        mpb.CreateFeedRequest(feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["X"])), metadata=md
    ).feed
    two = iter(
        [
            mpb.PushBarsRequest(feed_id=push.id, bars=[bar("X", 0)]),
            mpb.PushBarsRequest(feed_id=push2.id, bars=[bar("X", 1)]),
        ]
    )
    invalid(refused(D.PushBars, two, metadata=md), "feed_id")
    # The first batch was taken before the second was refused: nothing is half-recorded.
    got = D.GetFeed(mpb.GetFeedRequest(feed_id=push.id), metadata=md).feed
    assert got.bars_accepted + got.bars_rejected in (0, 1)
    assert D.GetFeed(mpb.GetFeedRequest(feed_id=push2.id), metadata=md).feed.bars_accepted == 0

    # A feed with a strategy running on it cannot be deleted.
    sid = api.strategy("bad-feed-run", parameters=FAST)
    api.start(sid, feed_id=replay.id, bars_per_second=0)
    api.wait_stopped(sid)
    sid2 = api.strategy("bad-feed-run2", parameters=FAST)
    api.start(sid2, feed_id=push.id)
    e = refused(D.DeleteFeed, mpb.DeleteFeedRequest(feed_id=push.id), metadata=md)
    assert e.code() == FP
    assert (
        D.GetFeed(mpb.GetFeedRequest(feed_id=push.id), metadata=md).feed.running_strategy_count == 1
    )
    api.stop(sid2)
    D.DeleteFeed(mpb.DeleteFeedRequest(feed_id=push.id), metadata=md)
    assert refused(D.GetFeed, mpb.GetFeedRequest(feed_id=push.id), metadata=md).code() == NF


def test_bad_webhook_requests(api: Api, trader2: list[tuple[str, str]]) -> None:
    Y, md = api.system, api.srv.md("trader")

    def create(url: str, kinds: list[str] | None = None) -> grpc.RpcError:
        return refused(
            Y.CreateWebhook,
            ypb.CreateWebhookRequest(webhook=ypb.Webhook(url=url, kinds=kinds or [])),
            metadata=md,
        )

    invalid(create("ftp://example.com/hook"), "webhook.url")
    invalid(create("https://user:pass@example.com/hook"), "webhook.url")
    invalid(create(""), "webhook.url")
    invalid(create("https://example.com/" + "x" * 3000), "webhook.url")
    invalid(create("https://example.com/hook", ["strategy.nonsense"]), "webhook.kinds[0]")
    hook = Y.CreateWebhook(
        ypb.CreateWebhookRequest(webhook=ypb.Webhook(url="https://example.com/hook")), metadata=md
    ).webhook
    assert hook.secret and hook.id
    e = refused(
        Y.DeleteWebhook, ypb.DeleteWebhookRequest(webhook_id=hook.id), metadata=auth_only(trader2)
    )
    assert e.code() == NF
    assert (
        refused(Y.DeleteWebhook, ypb.DeleteWebhookRequest(webhook_id="nope"), metadata=md).code()
        == NF
    )
    invalid(refused(Y.DeleteWebhook, ypb.DeleteWebhookRequest(), metadata=md), "webhook_id")
    # At most ten per user.
    more = [
        Y.CreateWebhook(
            ypb.CreateWebhookRequest(webhook=ypb.Webhook(url=f"https://example.com/{i}")),
            metadata=md,
        ).webhook.id
        for i in range(9)
    ]
    e = create("https://example.com/eleventh")
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for hook_id in more:
        Y.DeleteWebhook(ypb.DeleteWebhookRequest(webhook_id=hook_id), metadata=md)
    assert hook.id in {
        h.id for h in Y.ListWebhooks(ypb.ListWebhooksRequest(), metadata=md).webhooks
    }
    assert Y.ListWebhooks(ypb.ListWebhooksRequest(), metadata=auth_only(trader2)).webhooks == []
    Y.DeleteWebhook(ypb.DeleteWebhookRequest(webhook_id=hook.id), metadata=md)
    assert Y.ListWebhooks(ypb.ListWebhooksRequest(), metadata=md).webhooks == []


def test_stream_performance_while_it_runs(api: Api, dataset: str) -> None:
    sid = api.strategy("perf-stream", parameters=FAST)
    md = api.srv.md("trader")
    bar_100 = api.data.ReadBars(mpb.ReadBarsRequest(dataset_id=dataset, page_size=101), metadata=md)
    t100 = next(iter(bar_100)).bars[100].time
    bar_100.cancel()
    api.start(sid, dataset_id=dataset, bars_per_second=40, start_time=t100, warmup_bars=100)
    stream = api.strategies.StreamPerformance(
        spb.StreamPerformanceRequest(strategy_id=sid, interval_seconds=1), metadata=md
    )
    it = iter(stream)
    first, second = next(it).performance, next(it).performance
    assert first.run_state == second.run_state == spb.RUN_STATE_RUNNING
    assert 0 <= first.bars_processed < second.bars_processed
    assert second.sequence == second.bars_processed and second.symbol == "SYN"
    assert second.execution.initial_cash == 10_000 and second.feed_id
    api.stop(sid)
    rest = [r.performance for r in it]  # ends once it has reported the stop
    assert rest and rest[-1].run_state == spb.RUN_STATE_STOPPED
    final = api.performance(sid)
    assert rest[-1].bars_processed == final.bars_processed >= second.bars_processed
    assert final.bars_processed < 2900  # it traded from bar 100, and not to the end


# -- StopStrategy(close_position) ---------------------------------------------------------


def run_until_in_position(api: Api, dataset: str, name: str) -> str:
    sid = api.strategy(
        name, parameters=FAST, execution=c.ExecutionOptions(direction=c.TRADE_DIRECTION_BOTH)
    )
    api.start(sid, dataset_id=dataset, bars_per_second=100)
    eventually(lambda: api.performance(sid).position != 0, what="a position")
    return sid


def test_stop_with_close_position_flattens(api: Api, dataset: str) -> None:
    sid = run_until_in_position(api, dataset, "close-yes")
    api.stop(sid, close_position=True)
    perf = api.performance(sid)
    assert perf.run_state == spb.RUN_STATE_STOPPED
    assert perf.position == 0 and perf.position_quantity == 0.0
    fills = api.fills(sid)
    last = fills[-1]
    assert last.reason == "close" and last.realized_pnl != 0.0
    assert len(fills) % 2 == 0  # every entry has its exit; nothing traded after the close
    assert last.time == perf.last_bar_time and last.quantity == fills[-2].quantity
    assert last.side != fills[-2].side
    assert perf.equity == pytest.approx(perf.cash)
    assert perf.realized_pnl == pytest.approx(perf.equity - 10_000.0)


def test_stop_without_close_position_keeps_it(api: Api, dataset: str) -> None:
    sid = run_until_in_position(api, dataset, "close-no")
    api.stop(sid, close_position=False)
    perf = api.performance(sid)
    assert perf.run_state == spb.RUN_STATE_STOPPED
    assert perf.position != 0 and perf.position_quantity != 0.0
    fills = api.fills(sid)
    assert fills[-1].reason == "signal" and len(fills) % 2 == 1
    side = 1 if fills[-1].side == spb.SIGNAL_ACTION_BUY else -1
    assert perf.position == side and perf.position_quantity == side * fills[-1].quantity
    assert perf.entry_price == fills[-1].price
    again = api.performance(sid)
    assert again.position_quantity == perf.position_quantity


# -- last: nothing above broke the server ------------------------------------------------


def test_the_server_kept_working(api: Api, dataset: str) -> None:
    """After every refusal above, a run still trades every bar and is recorded."""
    sid = api.strategy("after-all", parameters=FAST)
    api.start(sid, dataset_id=dataset, bars_per_second=0)
    perf = api.wait_stopped(sid)
    assert perf.bars_processed == 3000 and perf.run_state == spb.RUN_STATE_STOPPED
    assert "Traceback" not in api.srv.logs()
