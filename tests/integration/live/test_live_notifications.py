"""Alerts, notifications and webhooks of running strategies, through a real server.

- A strategy's alert rules fire on the bars where they become true; StreamAlerts carries
  them with the run's status alerts (started, then stopped or finished), numbered per
  strategy from 1 without a gap, and a resume with after_sequence replays exactly.
- The owner's StreamNotifications, opened before the run, receives strategy.status and
  strategy.alert notifications; after_sequence=N resumes exactly after N.
- A webhook (kinds empty = alerts) on a local HTTP receiver gets each alert as
  Slack-compatible JSON with `text`, signed with the secret CreateWebhook returned once;
  ListWebhooks counts the deliveries and never shows the secret again.

Notifications are per user: the tests use a fresh trader of their own, so that "only new
notifications" (after_sequence 0) is the same as "all of them" whatever the timing.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import system_pb2 as ypb

from stratopt.api.convert import ns_to_pb
from stratopt.live.webhooks import verify_signature
from tests.conftest import start_server, stop_server
from tests.integration.live.api_support import Api, eventually, iv
from tests.integration.security.support import login, new_user

Md = list[tuple[str, str]]
FAST = {"fast": iv(3), "slow": iv(8)}
RULES = [
    spb.AlertRule(metric="equity", op=">", threshold=0, severity=spb.ALERT_SEVERITY_WARNING),
    spb.AlertRule(metric="bars_processed", op=">=", threshold=100),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    srv = start_server(
        Path(tmp_path_factory.mktemp("live-notify")), {"STRATOPT_MAX_STREAMS_PER_USER": "3"}
    )
    a = Api.open(srv)
    yield a
    a.close()
    stop_server(srv)


def fresh_trader(api: Api) -> Md:
    username, password, _ = new_user(api.srv, c.ROLE_TRADER, "notify")
    return [("authorization", f"Bearer {login(api.srv, username, password).access_token}")]


class Receiver:
    """A local webhook receiver: records (headers, raw body) of every POST, answers 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        """`statuses`: what to answer the first requests with (then 200)."""
        self.requests: queue.Queue[tuple[dict[str, str], bytes, str]] = queue.Queue()
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                outer.requests.put((dict(self.headers.items()), body, self.path))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stratopt"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Collector:
    """Reads a server stream in a thread into a list."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.items: list[Any] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self.items.append(item)
        except grpc.RpcError as e:
            self.error = e

    def cancel(self) -> None:
        self.stream.cancel()
        self.thread.join(5)


def push_feed(api: Api, md: Md) -> str:
    feed_id: str = api.data.CreateFeed(
        mpb.CreateFeedRequest(feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["BTCUSDT"])),
        metadata=md,
    ).feed.id
    return feed_id


def push(api: Api, md: Md, feed_id: str, start: int, n: int) -> None:
    t0, minute = 1_700_000_000 * 10**9, 60 * 10**9
    bars = []
    for i in range(start, start + n):
        close = 100 + (i % 17) - (i % 5) * 1.5
        bars.append(
            mpb.FeedBar(
                symbol="BTCUSDT",
                bar=c.Bar(
                    time=ns_to_pb(t0 + i * minute), open=close, high=close + 2, low=close - 2,
                    close=close, volume=1,
                ),
            )
        )  # fmt: skip
    resp = api.data.PushBars(iter([mpb.PushBarsRequest(feed_id=feed_id, bars=bars)]), metadata=md)
    assert resp.accepted == n


def test_stream_alerts_status_and_rules_numbered_from_one(api: Api) -> None:
    md = fresh_trader(api)
    S = api.strategies
    sid = S.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(
                name="alerts", strategy_type="sma_crossover", parameters=FAST, alert_rules=RULES
            )
        ),
        metadata=md,
    ).strategy.id
    feed = push_feed(api, md)
    S.StartStrategy(spb.StartStrategyRequest(strategy_id=sid, feed_id=feed), metadata=md)
    # Sequence 1 is the "started" status alert of this first run; resume after it.
    live = Collector(
        S.StreamAlerts(spb.StreamAlertsRequest(strategy_id=sid, after_sequence=1), metadata=md)
    )
    push(api, md, feed, 0, 60)
    push(api, md, feed, 60, 60)
    S.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=md)
    live.thread.join(10)
    assert not live.thread.is_alive(), "the stream ends when the strategy stops"
    assert live.error is None
    alerts = [r.alert for r in live.items]
    assert [a.sequence for a in alerts] == [2, 3, 4]
    assert all(r.dropped == 0 for r in live.items)
    equity, bars, stopped = alerts
    assert (equity.kind, equity.rule.metric, equity.rule.op) == ("rule", "equity", ">")
    assert equity.severity == spb.ALERT_SEVERITY_WARNING and equity.value > 0
    assert equity.id == f"{sid}-2" and equity.strategy_id == sid and equity.title
    assert (bars.kind, bars.rule.metric, bars.value) == ("rule", "bars_processed", 100.0)
    assert stopped.kind == "status" and "stopped" in stopped.title.lower()
    # Edge-triggered: each rule fired once although true on every later bar.
    # A resume replays exactly what follows the sequence given.
    for after in (1, 2, 3):
        again = list(
            S.StreamAlerts(
                spb.StreamAlertsRequest(strategy_id=sid, after_sequence=after),
                metadata=md,
                timeout=10,
            )
        )
        assert [r.alert for r in again] == alerts[after - 1 :]
    assert (
        list(
            S.StreamAlerts(
                spb.StreamAlertsRequest(strategy_id=sid, after_sequence=4), metadata=md, timeout=10
            )
        )
        == []
    )

    # A second run continues the numbering: its "started" is 5; a replay that reaches the
    # end of its dataset says "finished".
    ds = api.data.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="alerts", bar_count=300, seed=3), metadata=md
    ).dataset.id
    S.StartStrategy(spb.StartStrategyRequest(strategy_id=sid, dataset_id=ds), metadata=md)
    eventually(
        lambda: (
            S.GetPerformance(
                spb.GetPerformanceRequest(strategy_id=sid), metadata=md
            ).performance.run_state
            == spb.RUN_STATE_STOPPED
        ),
        what="the replay to finish",
    )
    second = [
        r.alert
        for r in S.StreamAlerts(
            spb.StreamAlertsRequest(strategy_id=sid, after_sequence=4), metadata=md, timeout=10
        )
    ]
    assert [a.sequence for a in second] == list(range(5, 5 + len(second)))
    assert second[0].kind == "status" and "started" in second[0].title.lower()
    assert [a.rule.metric for a in second if a.kind == "rule"] == ["equity", "bars_processed"]
    assert second[-1].kind == "status" and "finished" in second[-1].title.lower()

    # ListAlerts pages through the same record, "started" (sequence 1) included.
    listed: list[spb.Alert] = []
    token = ""
    while True:
        page = S.ListAlerts(
            spb.ListAlertsRequest(strategy_id=sid, page_size=2, page_token=token), metadata=md
        )
        listed.extend(page.alerts)
        token = page.next_page_token
        if not token:
            break
    assert [a.sequence for a in listed] == list(range(1, 5 + len(second)))
    assert listed[0].kind == "status" and "started" in listed[0].title.lower()
    assert listed[1:4] == alerts and listed[4:] == second


def test_notifications_and_signed_webhooks(api: Api) -> None:
    md = fresh_trader(api)
    receiver = Receiver()
    try:
        created = api.system.CreateWebhook(
            ypb.CreateWebhookRequest(webhook=ypb.Webhook(url=receiver.url)), metadata=md
        ).webhook
        secret = created.secret
        assert len(secret) >= 32 and created.url == receiver.url and list(created.kinds) == []
        status_hook = api.system.CreateWebhook(
            ypb.CreateWebhookRequest(
                webhook=ypb.Webhook(url=receiver.url + "/status", kinds=["strategy.status"])
            ),
            metadata=md,
        ).webhook

        notes = Collector(
            api.system.StreamNotifications(
                ypb.StreamNotificationsRequest(after_sequence=0), metadata=md
            )
        )
        S = api.strategies
        sid = S.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(
                    name="hooked", strategy_type="sma_crossover", parameters=FAST,
                    alert_rules=RULES[:1],
                )
            ),
            metadata=md,
        ).strategy.id  # fmt: skip
        feed = push_feed(api, md)
        S.StartStrategy(spb.StartStrategyRequest(strategy_id=sid, feed_id=feed), metadata=md)
        push(api, md, feed, 0, 30)
        S.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=md)

        # started, the rule's alert, stopped: in the order they happened, numbered from 1.
        eventually(lambda: len(notes.items) >= 3, what="three notifications")
        got = [r.notification for r in notes.items]
        assert [n.sequence for n in got] == [1, 2, 3]
        assert [n.kind for n in got] == ["strategy.status", "strategy.alert", "strategy.status"]
        assert "started" in got[0].title and "stopped" in got[2].title
        assert got[1].severity == ypb.NOTIFICATION_SEVERITY_WARNING
        assert all(n.resource == f"strategies/{sid}" for n in got)

        # The alert webhook got the alert, the status webhook the two status changes.
        deliveries: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        deadline = time.monotonic() + 15
        while sum(len(v) for v in deliveries.values()) < 3:
            assert time.monotonic() < deadline, deliveries
            try:
                headers, body, path = receiver.requests.get(timeout=0.5)
            except queue.Empty:
                continue
            deliveries.setdefault(path, []).append((headers, body))
        alerts = deliveries["/hooks/stratopt"]
        statuses = deliveries["/hooks/stratopt/status"]
        assert len(alerts) == 1 and len(statuses) == 2
        headers, body = alerts[0]
        payload = json.loads(body)
        assert set(payload) <= {"text", "attachments"} and "text" in payload
        assert "Equity" in payload["text"] or "equity" in payload["text"].lower()
        assert headers["Content-Type"].startswith("application/json")
        stamp, signature = headers["X-Stratopt-Timestamp"], headers["X-Stratopt-Signature"]
        assert verify_signature(secret, stamp, body, signature)
        assert not verify_signature(secret, stamp, body + b" ", signature)
        assert not verify_signature("another-secret", stamp, body, signature)
        assert not verify_signature(status_hook.secret, stamp, body, signature)
        for h, b in statuses:
            assert verify_signature(
                status_hook.secret, h["X-Stratopt-Timestamp"], b, h["X-Stratopt-Signature"]
            )
        assert ["started" in json.loads(b)["text"] for _, b in statuses] == [True, False]

        def counted() -> list[ypb.Webhook] | None:
            hooks = list(api.system.ListWebhooks(ypb.ListWebhooksRequest(), metadata=md).webhooks)
            by_id = {h.id: h for h in hooks}
            if (
                by_id[created.id].delivered_count >= 1
                and by_id[status_hook.id].delivered_count >= 2
            ):
                return hooks
            return None

        hooks = eventually(counted, what="deliveries counted")
        assert all(h.secret == "" and h.failed_count == 0 and h.last_error == "" for h in hooks)

        # Resume: after N gives exactly what follows N, then what is new.
        resumed = api.system.StreamNotifications(
            ypb.StreamNotificationsRequest(after_sequence=1), metadata=md
        )
        it = iter(resumed)
        assert [next(it).notification for _ in range(2)] == got[1:]
        S.StartStrategy(spb.StartStrategyRequest(strategy_id=sid, feed_id=feed), metadata=md)
        fresh = next(it).notification
        assert fresh.sequence == 4 and fresh.kind == "strategy.status" and "started" in fresh.title
        resumed.cancel()
        eventually(lambda: len(notes.items) >= 4, what="the live stream sees it too")
        assert notes.items[3].notification == fresh
        S.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=md)
        notes.cancel()
    finally:
        receiver.close()


def test_streams_per_user_are_capped(api: Api) -> None:
    """Past STRATOPT_MAX_STREAMS_PER_USER open streams, one more is RESOURCE_EXHAUSTED;
    closing one makes room, and other users are not affected."""
    md, other = fresh_trader(api), fresh_trader(api)
    opened = [
        Collector(api.system.StreamNotifications(ypb.StreamNotificationsRequest(), metadata=md))
        for _ in range(3)
    ]

    def fourth() -> grpc.RpcError | None:
        stream = api.system.StreamNotifications(
            ypb.StreamNotificationsRequest(), metadata=md, timeout=1.0
        )
        try:
            next(iter(stream))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return e
            assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
        return None

    def open_streams(who: Md) -> int:
        return api.system.GetOverview(ypb.GetOverviewRequest(), metadata=who).open_stream_count

    eventually(lambda: open_streams(md) == 3, what="three streams open")
    e = fourth()
    assert e is not None
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    theirs = Collector(
        api.system.StreamNotifications(ypb.StreamNotificationsRequest(), metadata=other)
    )
    time.sleep(0.3)
    assert theirs.error is None and theirs.thread.is_alive()
    opened.pop().cancel()

    def room() -> Collector | None:
        stream = Collector(
            api.system.StreamNotifications(ypb.StreamNotificationsRequest(), metadata=md)
        )
        time.sleep(0.3)
        if stream.error is None:
            return stream
        stream.cancel()
        return None

    again = eventually(room, what="room for a stream again")
    assert again.error is None and again.thread.is_alive()
    for c_ in (*opened, again, theirs):
        c_.cancel()


def test_webhook_deliveries_are_retried_and_failures_recorded(api: Api) -> None:
    md = fresh_trader(api)
    flaky, broken = Receiver((503,)), Receiver((400,))
    try:
        hooks = {
            name: api.system.CreateWebhook(
                ypb.CreateWebhookRequest(webhook=ypb.Webhook(url=r.url)), metadata=md
            ).webhook
            for name, r in (("flaky", flaky), ("broken", broken))
        }
        S = api.strategies
        sid = S.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(
                    name="retried", strategy_type="sma_crossover", alert_rules=RULES[:1]
                )
            ),
            metadata=md,
        ).strategy.id
        feed = push_feed(api, md)
        S.StartStrategy(spb.StartStrategyRequest(strategy_id=sid, feed_id=feed), metadata=md)
        push(api, md, feed, 0, 1)  # the rule fires on the first bar: one alert
        S.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=md)

        first = flaky.requests.get(timeout=10)
        second = flaky.requests.get(timeout=10)  # after a backoff of 0.5-1 s
        assert first[0]["X-Stratopt-Delivery"] == second[0]["X-Stratopt-Delivery"]
        assert (first[0]["X-Stratopt-Attempt"], second[0]["X-Stratopt-Attempt"]) == ("1", "2")
        assert first[1] == second[1]
        for headers, body, _ in (first, second):
            assert verify_signature(
                hooks["flaky"].secret,
                headers["X-Stratopt-Timestamp"],
                body,
                headers["X-Stratopt-Signature"],
            )
        broken.requests.get(timeout=10)

        def settled() -> dict[str, ypb.Webhook] | None:
            listed = api.system.ListWebhooks(ypb.ListWebhooksRequest(), metadata=md).webhooks
            by_name = {n: next(h for h in listed if h.id == hooks[n].id) for n in hooks}
            if by_name["flaky"].delivered_count and by_name["broken"].failed_count:
                return by_name
            return None

        got = eventually(settled, what="outcomes recorded")
        assert (got["flaky"].delivered_count, got["flaky"].failed_count) == (1, 0)
        assert (got["broken"].delivered_count, got["broken"].failed_count) == (0, 1)
        assert "400" in got["broken"].last_error
        assert got["flaky"].last_error == ""
        # A 4xx is not retried.
        time.sleep(0.3)
        assert broken.requests.empty()
    finally:
        flaky.close()
        broken.close()


def test_stop_hits_and_a_stalled_feed_are_alerts(api: Api) -> None:
    md = fresh_trader(api)
    S = api.strategies
    protected = S.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(
                name="stops", strategy_type="sma_crossover", parameters=FAST,
                execution=c.ExecutionOptions(
                    stop_loss=0.004, take_profit=0.006, trailing_stop=0.005,
                    direction=c.TRADE_DIRECTION_BOTH,
                ),
            )
        ),
        metadata=md,
    ).strategy.id  # fmt: skip
    ds = api.data.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="stops", bar_count=400, seed=9), metadata=md
    ).dataset.id
    S.StartStrategy(spb.StartStrategyRequest(strategy_id=protected, dataset_id=ds), metadata=md)

    # Meanwhile: a push feed that expects a bar every second goes quiet.
    feed = api.data.CreateFeed(
        mpb.CreateFeedRequest(
            feed=mpb.Feed(kind=mpb.FEED_KIND_PUSH, symbols=["BTCUSDT"], timeframe="1s")
        ),
        metadata=md,
    ).feed.id
    waiting = S.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name="waits", strategy_type="sma_crossover")
        ),
        metadata=md,
    ).strategy.id
    S.StartStrategy(spb.StartStrategyRequest(strategy_id=waiting, feed_id=feed), metadata=md)
    push(api, md, feed, 0, 1)
    stalled = S.StreamAlerts(
        spb.StreamAlertsRequest(strategy_id=waiting, after_sequence=1), metadata=md, timeout=20
    )
    first = next(iter(stalled)).alert
    stalled.cancel()
    assert first.kind == "feed_stalled" and first.sequence == 2
    assert feed in first.title and first.severity == spb.ALERT_SEVERITY_WARNING
    assert first.value >= 3.0  # three spacings of silence
    S.StopStrategy(spb.StopStrategyRequest(strategy_id=waiting), metadata=md)

    eventually(
        lambda: S.GetPerformance(spb.GetPerformanceRequest(strategy_id=protected), metadata=md)
        .performance.run_state == spb.RUN_STATE_STOPPED,
        what="the replay to end",
    )  # fmt: skip
    fills = S.ListFills(
        spb.ListFillsRequest(strategy_id=protected, page_size=1000), metadata=md
    ).fills
    protective = [f for f in fills if f.reason in ("stop", "target", "trail")]
    alerts = [
        r.alert
        for r in S.StreamAlerts(
            spb.StreamAlertsRequest(strategy_id=protected, after_sequence=1),
            metadata=md,
            timeout=10,
        )
    ]
    stops = [a for a in alerts if a.kind == "stop"]
    assert len(protective) >= 3 and len(stops) == len(protective)
    titles = {"stop": "Stop-loss hit", "target": "Take-profit hit", "trail": "Trailing stop hit"}
    for fill, alert in zip(protective, stops, strict=True):
        assert alert.title.startswith(titles[fill.reason]) and "SYN" in alert.title
        assert alert.value == pytest.approx(fill.price)
        assert alert.time == fill.time
    assert alerts[-1].kind == "status"
