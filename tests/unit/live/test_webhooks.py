"""Alert webhooks against a real HTTP receiver on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stratopt.live.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryOutcome,
    DeliveryStatus,
    RetryPolicy,
    Webhook,
    WebhookDispatcher,
    WebhookMessage,
    WebhookUrlError,
    new_webhook_secret,
    parse_retry_after,
    redact_url,
    sign,
    slack_payload,
    validate_webhook_url,
    verify_signature,
)

SECRET = "whsec_test-secret-value-123"
FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, attempt_timeout=2.0)


# --- a real local receiver ------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering (cut short at teardown)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, deque[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                path = self.path
                with receiver.lock:
                    receiver.requests.append(
                        Received(
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                    script = receiver.scripts.get(path)
                    reply = script.popleft() if script else receiver.defaults.get(path, Reply())
                if reply.delay:
                    receiver.release.wait(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[misc]
        self.scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path] = deque(replies)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Outcomes:
    def __init__(self) -> None:
        self.items: list[DeliveryOutcome] = []

    def __call__(self, outcome: DeliveryOutcome) -> None:
        self.items.append(outcome)

    def of(self, delivery_id: str) -> DeliveryOutcome | None:
        return next((o for o in self.items if o.delivery_id == delivery_id), None)

    async def wait(self, count: int, timeout: float = 10.0) -> list[DeliveryOutcome]:
        deadline = time.monotonic() + timeout
        while len(self.items) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.items)} of {count} outcomes: {self.items}")
            await asyncio.sleep(0.005)
        return self.items


def hook(receiver: Receiver, path: str = "/hook", wid: str = "wh1") -> Webhook:
    return Webhook(wid, receiver.url(path), SECRET)


def dispatcher(outcomes: Outcomes, **kwargs: object) -> WebhookDispatcher:
    options: dict[str, object] = {
        "policy": FAST,
        "allow_private_networks": True,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return WebhookDispatcher(on_outcome=outcomes, **options)  # type: ignore[arg-type]


ALERT = WebhookMessage(
    title="Drawdown above 10%",
    message="Equity fell 12.3% from its peak <BTC & ETH>",
    severity="warning",
    kind="strategy.alert",
    resource="strategies/s1",
    time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    fields={"Strategy": "sma-cross", "Symbol": "BTCUSDT", "Value": "-12.3%"},
)


# --- URL validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "http://127.0.0.1:8080/hook?x=1",
        "https://[2001:db8::1]:8443/a",
        "HTTPS://Example.COM",
        "http://my_internal-host.example:9000/",
    ],
)
def test_validate_accepts(url: str) -> None:
    assert validate_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "is required"),
        (None, "must be a string"),
        ("ftp://example.com/x", r"http:// or https:// \(got ftp://\)"),
        ("example.com/hook", r"http:// or https:// \(got no scheme\)"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://user:pass@example.com/hook", "must not contain credentials"),
        ("https://token@example.com/hook", "must not contain credentials"),
        ("https://example.com/hook#frag", "fragment"),
        ("https://example.com/a b", "spaces or control"),
        ("https://example.com/\x00", "spaces or control"),
        ("https://exämple.com/", "must be ASCII"),
        ("https:///path", "no host"),
        ("https://example.com:99999/", "invalid port"),
        ("https://example.com:0/", "invalid port"),
        ("https://example.com:abc/", "invalid port"),
        ("https://-bad-.example/", "invalid host name"),
        ("https://example.com/" + "a" * 2100, "2120 characters long; the limit is 2048"),
    ],
)
def test_validate_rejects_with_clear_message(url: object, message: str) -> None:
    with pytest.raises(WebhookUrlError, match=message):
        validate_webhook_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/",
        "http://api.localhost/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
    ],
)
def test_validate_can_refuse_private_addresses(url: str) -> None:
    assert validate_webhook_url(url) == url
    with pytest.raises(WebhookUrlError, match="loopback or private"):
        validate_webhook_url(url, allow_private=False)
    assert validate_webhook_url("https://8.8.8.8/x", allow_private=False)


def test_redact_url_and_webhook_repr_hide_path_and_secret() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXX?token=abc"
    assert redact_url(url) == "https://hooks.slack.com/…"
    assert redact_url("http://[::1]:8080") == "http://[::1]:8080"
    text = repr(Webhook("w1", url, "s3cr3t"))
    assert "XXXXXXXX" not in text and "s3cr3t" not in text and "hooks.slack.com" in text


def test_new_secret_is_random_and_long() -> None:
    a, b = new_webhook_secret(), new_webhook_secret()
    assert a != b and a.startswith("whsec_") and len(a) > 40


# --- payload and signature ------------------------------------------------------------------


def test_slack_payload_shape() -> None:
    payload = slack_payload(ALERT)
    assert set(payload) == {"text", "attachments"}
    text = payload["text"]
    assert text.startswith("[WARNING] *Drawdown above 10%*\n")
    assert "&lt;BTC &amp; ETH&gt;" in text  # Slack's control characters escaped
    (attachment,) = payload["attachments"]
    assert set(attachment) == {"fallback", "color", "footer", "ts", "fields"}
    assert attachment["color"] == "warning"
    assert attachment["ts"] == int(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    assert attachment["footer"] == "stratopt · strategy.alert · strategies/s1"
    assert attachment["fields"][0] == {"title": "Strategy", "value": "sma-cross", "short": True}
    assert len(attachment["fields"]) == 3
    json.dumps(payload)  # serializable


def test_slack_payload_limits_and_link() -> None:
    message = WebhookMessage(
        title="t" * 1000,
        message="m" * 10_000,
        fields=[(f"f{i}", "v" * 500) for i in range(30)],
        link="https://example.com/s?a=1&b=2",
    )
    payload = slack_payload(message)
    assert payload["text"].startswith("*<https://example.com/s?a=1&amp;b=2|ttt")
    assert len(payload["text"]) < 3400
    fields = payload["attachments"][0]["fields"]
    assert len(fields) == 10 and all(len(f["value"]) <= 300 and not f["short"] for f in fields)
    info = slack_payload(WebhookMessage(title="Job finished"))
    assert info["text"] == "*Job finished*"
    assert "fields" not in info["attachments"][0]
    assert info["attachments"][0]["color"] == "#439FE0"


def test_sign_matches_an_independent_hmac() -> None:
    body = b'{"text":"hi"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == f"v1={expected}"
    assert sign(SECRET.encode(), "1700000000", body) == f"v1={expected}"


def test_verify_signature() -> None:
    body = b'{"text":"hi"}'
    now = 1_700_000_000.0
    good = sign(SECRET, 1700000000, body)
    assert verify_signature(SECRET, "1700000000", body, good, now=now)
    assert verify_signature(SECRET, "1700000000", body, f"v1=deadbeef, {good}", now=now)
    assert not verify_signature(SECRET, "1700000000", body + b" ", good, now=now)
    assert not verify_signature("other", "1700000000", body, good, now=now)
    assert not verify_signature(SECRET, "1700000001", body, good, now=now)
    assert not verify_signature(SECRET, "1700000000", body, good, now=now + 301)
    assert not verify_signature(SECRET, "abc", body, good, now=now)
    assert not verify_signature(SECRET, "1700000000", body, good.removeprefix("v1="), now=now)


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    later = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    earlier = format_datetime(datetime.fromtimestamp(now - 60, UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=10.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        samples = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(base * 0.5 <= s <= base for s in samples)
        assert max(samples) - min(samples) > base * 0.3  # really jittered
    assert RetryPolicy(jitter=0).backoff(3) == 4.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


# --- delivery against the receiver ----------------------------------------------------------


async def test_delivers_signed_slack_json(receiver: Receiver) -> None:
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        delivery_id = d.submit(hook(receiver), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.ok
    assert (outcome.delivery_id, outcome.webhook_id) == (delivery_id, "wh1")
    assert (outcome.attempts, outcome.http_status, outcome.error) == (1, 200, None)
    (request,) = receiver.on("/hook")
    assert json.loads(request.body) == slack_payload(ALERT)
    h = request.headers
    assert h["content-type"] == "application/json; charset=utf-8"
    assert h["host"] == f"127.0.0.1:{receiver.port}"
    assert h["x-stratopt-delivery"] == delivery_id
    assert h["x-stratopt-attempt"] == "1"
    assert h["x-stratopt-event"] == "strategy.alert"
    assert h["user-agent"].startswith("stratopt-webhooks/")
    stamp = h[TIMESTAMP_HEADER.lower()]
    assert abs(int(stamp) - time.time()) < 10
    # Verify the way a receiver would, without the module's helper...
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    assert h[SIGNATURE_HEADER.lower()] == "v1=" + mac.hexdigest()
    # ...and with it.
    assert verify_signature(SECRET, stamp, request.body, h[SIGNATURE_HEADER.lower()])


async def test_raw_mapping_payload_is_sent_as_is(receiver: Receiver) -> None:
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        d.submit(hook(receiver), {"text": "plain", "blocks": [{"type": "divider"}]})
        await outcomes.wait(1)
    assert json.loads(receiver.on("/hook")[0].body) == {
        "text": "plain",
        "blocks": [{"type": "divider"}],
    }
    assert "x-stratopt-event" not in receiver.on("/hook")[0].headers


async def test_retries_after_5xx_then_succeeds(receiver: Receiver) -> None:
    receiver.script("/flaky", Reply(500), Reply(502, body=b"bad gateway"), Reply(200))
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        delivery_id = d.submit(hook(receiver, "/flaky"), ALERT)
        (outcome,) = await outcomes.wait(1)
        assert d.stats().retries == 2
    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.attempts == 3 and outcome.http_status == 200
    requests = receiver.on("/flaky")
    assert [r.headers["x-stratopt-attempt"] for r in requests] == ["1", "2", "3"]
    assert {r.headers["x-stratopt-delivery"] for r in requests} == {delivery_id}
    assert len({r.body for r in requests}) == 1
    for r in requests:  # each attempt is signed (with its own timestamp)
        assert verify_signature(
            SECRET, r.headers["x-stratopt-timestamp"], r.body, r.headers["x-stratopt-signature"]
        )
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert all(g >= 0.004 for g in gaps)  # backed off (jittered 0.005-0.01, then 0.01-0.02)


async def test_gives_up_after_max_attempts_and_reports(receiver: Receiver) -> None:
    receiver.defaults["/down"] = Reply(503, body=b"upstream unavailable")
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        d.submit(hook(receiver, "/down"), ALERT)
        (outcome,) = await outcomes.wait(1)
        stats = d.stats()
    assert outcome.status is DeliveryStatus.FAILED and not outcome.ok
    assert outcome.attempts == FAST.max_attempts == len(receiver.on("/down"))
    assert outcome.http_status == 503
    assert outcome.error == "HTTP 503: upstream unavailable"
    assert (stats.failed, stats.delivered, stats.retries) == (1, 0, 3)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
async def test_client_errors_are_not_retried(receiver: Receiver, status: int) -> None:
    receiver.defaults["/gone"] = Reply(status, body=b"no_service")
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        d.submit(hook(receiver, "/gone"), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.attempts == 1 and outcome.http_status == status
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {status}")
    if status == 301:
        assert "redirects are not followed" in outcome.error
    else:
        assert outcome.error.endswith("no_service")


async def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.script("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(200))
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        d.submit(hook(receiver, "/limited"), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.status is DeliveryStatus.DELIVERED and outcome.attempts == 2
    first, second = receiver.on("/limited")
    assert second.at - first.at >= 0.95  # the backoff alone would be ~0.01 s


async def test_retry_after_is_capped(receiver: Receiver) -> None:
    receiver.script("/limited", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
    outcomes = Outcomes()
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.2)
    async with dispatcher(outcomes, policy=policy) as d:
        d.submit(hook(receiver, "/limited"), ALERT)
        (outcome,) = await outcomes.wait(1, timeout=5)
    assert outcome.ok
    first, second = receiver.on("/limited")
    assert 0.15 <= second.at - first.at < 2


async def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:
        d.submit(Webhook("dead", f"http://127.0.0.1:{port}/x", SECRET), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.attempts == FAST.max_attempts and outcome.http_status is None
    assert outcome.error is not None and outcome.error.startswith("connection failed")


async def test_per_attempt_timeout(receiver: Receiver) -> None:
    receiver.defaults["/slow"] = Reply(200, delay=5)
    outcomes = Outcomes()
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.01, attempt_timeout=0.3)
    async with dispatcher(outcomes, policy=policy) as d:
        start = time.monotonic()
        d.submit(hook(receiver, "/slow"), ALERT)
        (outcome,) = await outcomes.wait(1)
        elapsed = time.monotonic() - start
    assert outcome.status is DeliveryStatus.FAILED and outcome.attempts == 2
    assert outcome.error == "timed out after 0.3s"
    assert 0.55 < elapsed < 2.5


async def test_slow_receiver_does_not_block_other_webhooks(receiver: Receiver) -> None:
    receiver.defaults["/slow"] = Reply(200, delay=0.8)
    outcomes = Outcomes()
    policy = RetryPolicy(max_attempts=1, attempt_timeout=5)
    async with dispatcher(outcomes, policy=policy) as d:
        start = time.monotonic()
        slow_ids = [d.submit(hook(receiver, "/slow", "slow"), ALERT) for _ in range(2)]
        fast_ids = [d.submit(hook(receiver, f"/fast{i}", f"fast{i}"), ALERT) for i in range(5)]
        await outcomes.wait(5)
        fast_done = time.monotonic() - start
        assert {o.delivery_id for o in outcomes.items} == set(fast_ids)
        assert fast_done < 0.6
        assert d.stats().in_flight == 1 and d.stats().queued == 1  # the slow lane, in order
        await outcomes.wait(7)
    slow = [outcomes.of(i) for i in slow_ids]
    assert all(o is not None and o.ok for o in slow)
    finished = [o.finished_at for o in slow if o is not None]
    assert finished == sorted(finished)  # one webhook's deliveries stay in order


async def test_full_queue_drops_oldest_with_counter_and_redacted_log(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script("/services/T0/B0/TOKENPATH", Reply(200, delay=0.5))
    webhook = Webhook("wq", receiver.url("/services/T0/B0/TOKENPATH"), SECRET)
    outcomes = Outcomes()
    caplog.set_level(logging.INFO, logger="stratopt.live.webhooks")
    async with dispatcher(outcomes, queue_size=3) as d:
        ids = [d.submit(webhook, WebhookMessage(title="alert 0"))]
        await asyncio.sleep(0.1)  # the first is in flight (the receiver holds it 0.5 s)
        ids += [d.submit(webhook, WebhookMessage(title=f"alert {i}")) for i in range(1, 10)]
        # 3 wait; the 6 oldest waiting were dropped, at once and reported.
        dropped = [o for o in outcomes.items if o.status is DeliveryStatus.DROPPED]
        assert [o.delivery_id for o in dropped] == ids[1:7]
        assert all(o.attempts == 0 and o.error for o in dropped)
        assert d.dropped("wq") == 6
        await outcomes.wait(10)
        stats = d.stats()
    delivered = [o.delivery_id for o in outcomes.items if o.ok]
    assert delivered == [ids[0], *ids[7:]]
    assert stats.dropped == 6 and stats.delivered == 4
    titles = [json.loads(r.body)["text"] for r in receiver.on("/services/T0/B0/TOKENPATH")]
    assert titles == ["*alert 0*", "*alert 7*", "*alert 8*", "*alert 9*"]
    drop_logs = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_logs) == 1  # rate-limited: one line per webhook per 10 s
    assert "wq" in drop_logs[0].getMessage()
    for record in caplog.records:
        text = record.getMessage()
        assert SECRET not in text and "TOKENPATH" not in text


async def test_failure_log_has_no_secret_or_path(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.defaults["/T1/SECRETPATH"] = Reply(500)
    outcomes = Outcomes()
    caplog.set_level(logging.INFO, logger="stratopt.live.webhooks")
    async with dispatcher(outcomes) as d:
        d.submit(hook(receiver, "/T1/SECRETPATH"), ALERT)
        await outcomes.wait(1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed after 4 attempt(s)" in m for m in messages)
    assert any("retrying in" in m for m in messages)
    assert not any(SECRET in m or "SECRETPATH" in m for m in messages)
    assert all(f"http://127.0.0.1:{receiver.port}/…" in m for m in messages)


async def test_private_networks_are_refused_by_default(receiver: Receiver) -> None:
    outcomes = Outcomes()
    async with WebhookDispatcher(on_outcome=outcomes, policy=FAST) as d:
        d.submit(hook(receiver), ALERT)
        d.submit(Webhook("w2", receiver.url(host="localhost"), SECRET), ALERT)
        await outcomes.wait(2)
    for outcome in outcomes.items:
        assert outcome.status is DeliveryStatus.FAILED and outcome.attempts == 1
        assert outcome.error is not None and "private networks are not allowed" in outcome.error
    assert receiver.requests == []


async def test_stop_drains_queued_deliveries(receiver: Receiver) -> None:
    receiver.defaults["/hook"] = Reply(200, delay=0.05)
    outcomes = Outcomes()
    d = dispatcher(outcomes)
    d.start()
    for i in range(5):
        d.submit(hook(receiver), WebhookMessage(title=f"m{i}"))
    await d.stop(timeout=5)
    assert [o.status for o in outcomes.items] == [DeliveryStatus.DELIVERED] * 5
    with pytest.raises(RuntimeError, match="stopped"):
        d.submit(hook(receiver), ALERT)
    assert d.stats() == d.stats().__class__(0, 0, 5, 0, 0, 0, 0)


async def test_stop_deadline_abandons_the_rest(receiver: Receiver) -> None:
    receiver.defaults["/stuck"] = Reply(200, delay=10)
    outcomes = Outcomes()
    d = dispatcher(outcomes, policy=RetryPolicy(attempt_timeout=30))
    d.start()
    d.submit(hook(receiver), ALERT)
    ids = [d.submit(hook(receiver, "/stuck", "stuck"), ALERT) for _ in range(3)]
    await asyncio.sleep(0.1)
    start = time.monotonic()
    await d.stop(timeout=0.3)
    assert time.monotonic() - start < 1.5
    abandoned = [o for o in outcomes.items if o.status is DeliveryStatus.ABANDONED]
    assert [o.delivery_id for o in abandoned] == ids
    assert all(o.body and o.attempts == 0 for o in abandoned)  # enough to persist and resend
    assert d.stats().abandoned == 3 and d.stats().delivered == 1 and not d.running


async def test_async_outcome_callback_and_callback_errors(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def persist(outcome: DeliveryOutcome) -> None:
        await asyncio.sleep(0.01)
        seen.append(outcome.status.value)

    d = WebhookDispatcher(on_outcome=persist, policy=FAST, allow_private_networks=True)
    async with d:
        d.submit(hook(receiver), ALERT)
    assert seen == ["delivered"]  # stop() waited for the callback task

    def broken(outcome: DeliveryOutcome) -> None:
        raise RuntimeError("db down")

    caplog.set_level(logging.ERROR, logger="stratopt.live.webhooks")
    d2 = WebhookDispatcher(on_outcome=broken, policy=FAST, allow_private_networks=True)
    async with d2:
        d2.submit(hook(receiver), ALERT)
        d2.submit(hook(receiver), ALERT)
    assert d2.stats().delivered == 2  # the dispatcher carried on
    assert any("callback failed" in r.getMessage() for r in caplog.records)


async def test_deliver_now_bypasses_the_queue(receiver: Receiver) -> None:
    receiver.script("/hook", Reply(500), Reply(200))
    outcomes = Outcomes()
    d = dispatcher(outcomes)
    outcome = await d.deliver(hook(receiver), ALERT)
    assert outcome.ok and outcome.attempts == 2
    assert outcomes.items == [outcome]


async def test_submit_rejects_bad_input(receiver: Receiver) -> None:
    outcomes = Outcomes()
    d = dispatcher(outcomes, max_body_bytes=1000)
    with pytest.raises(RuntimeError, match="not running"):
        d.submit(hook(receiver), ALERT)
    async with d:
        with pytest.raises(WebhookUrlError, match="credentials"):
            d.submit(Webhook("w", "http://u:p@127.0.0.1/", SECRET), ALERT)
        with pytest.raises(ValueError, match="secret is empty"):
            d.submit(Webhook("w", receiver.url(), ""), ALERT)
        with pytest.raises(ValueError, match="limit is 1000"):
            d.submit(hook(receiver), {"text": "x" * 2000})
        with pytest.raises(TypeError):
            d.submit(hook(receiver), {"when": object()})
        with pytest.raises(TypeError, match="mapping"):
            d.submit(hook(receiver), ["not", "an", "object"])  # type: ignore[arg-type]
    assert outcomes.items == [] and receiver.requests == []


# --- HTTPS ----------------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, Path]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    r = Receiver(tls=context)
    yield r, cert
    r.close()


async def test_https_delivery_verifies_the_certificate(
    tls_receiver: tuple[Receiver, Path],
) -> None:
    receiver, cert = tls_receiver
    trusting = ssl.create_default_context(cafile=str(cert))
    outcomes = Outcomes()
    async with dispatcher(outcomes, ssl_context=trusting) as d:
        # "localhost" may resolve to ::1 first (nothing listens there): the next address
        # is tried, and the certificate is checked against the host name, not the IP.
        d.submit(Webhook("tls", receiver.url(host="localhost"), SECRET), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.ok, outcome.error
    (request,) = receiver.on("/hook")
    assert request.headers["host"] == f"localhost:{receiver.port}"


async def test_https_untrusted_certificate_fails_without_retry(
    tls_receiver: tuple[Receiver, Path],
) -> None:
    receiver, _ = tls_receiver
    outcomes = Outcomes()
    async with dispatcher(outcomes) as d:  # default trust store: self-signed is refused
        d.submit(Webhook("tls", receiver.url(host="localhost"), SECRET), ALERT)
        (outcome,) = await outcomes.wait(1)
    assert outcome.status is DeliveryStatus.FAILED and outcome.attempts == 1
    assert outcome.error is not None and outcome.error.startswith("TLS certificate not accepted")
