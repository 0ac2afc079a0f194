"""Alert webhooks: Slack-compatible JSON, HMAC-signed, retried with backoff, bounded queues.

A user registers a webhook (a URL and a secret; `validate_webhook_url` checks the URL and
`new_webhook_secret` makes a secret). Alerts and notifications are handed to a
`WebhookDispatcher` with ``submit(webhook, payload)``, which returns at once; a worker per
webhook POSTs them in order.

Body: a `WebhookMessage` is rendered by `slack_payload` to what Slack's incoming webhooks
accept (and Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint): a top-level ``text``
(the title in bold, then the message) plus one legacy ``attachment`` with a severity
``color``, up to 10 ``fields`` (title/value/short), a ``footer`` naming the kind and
resource, and ``ts``. No other top-level keys. A plain mapping is sent as JSON unchanged.

Signature (for receivers that are not Slack): every attempt carries

    X-Stratopt-Timestamp: <unix seconds when the attempt was signed>
    X-Stratopt-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    X-Stratopt-Delivery:  <id, the same on every retry of one delivery: de-duplicate on it>
    X-Stratopt-Attempt:   <1, 2, ...>

To verify: take the raw request body bytes (before any JSON parsing), compute
``hmac.new(secret_utf8, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()``,
compare it in constant time with the hex after ``v1=`` (the header may list several
comma-separated signatures; accept if one matches) and reject timestamps more than five
minutes from your clock (replays). `verify_signature` does exactly this.

Retries: connection errors, timeouts, HTTP 408, 425, 429 and 5xx are retried up to
``RetryPolicy.max_attempts`` attempts in all, with exponential backoff
(``initial_backoff * multiplier**(n-1)``, capped at ``max_backoff``) and jitter (the delay is
scaled by a random factor in ``[1 - jitter, 1]``). A ``Retry-After`` header (seconds or an
HTTP date) on a retryable answer is honoured: the next attempt waits at least that long,
capped at ``max_retry_after``. Other statuses (3xx, which are not followed, and 4xx) fail at
once. Each attempt (resolve, connect, TLS, request, response head) has its own
``attempt_timeout``.

Queues: one bounded queue per webhook (``queue_size``); when it is full the *oldest*
waiting delivery is dropped, counted, reported with status ``dropped`` and logged (with the
webhook id and the URL's scheme and host only: a Slack webhook URL's path is itself a
credential, and the secret is never logged). A slow or dead receiver holds up only its own
webhook's queue; ``max_concurrency`` caps simultaneous HTTP attempts across webhooks.

Network: HTTP/1.1 over asyncio streams (TLS through `ssl`, default context: certificates
and host names verified), one connection per attempt, ``Connection: close``; no threads and
no new dependency. Redirects are not followed. With ``allow_private_networks=False`` (the
default) the dispatcher resolves the host itself, refuses loopback, private, link-local and
other non-global addresses, and connects to the address it checked (so a DNS answer cannot
change between the check and the connection). Allow them for development or tests.

Outcomes: every submitted delivery ends in exactly one `DeliveryOutcome` (``delivered``,
``failed``, ``dropped`` or ``abandoned`` if `WebhookDispatcher.stop` ran out of time) passed
to the ``on_outcome`` callback (sync, or async: then it runs as a task), for persistence and
metrics. Everything runs on the event loop that called `WebhookDispatcher.start`; call
``submit`` from that loop's thread.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import inspect
import ipaddress
import json
import logging
import random
import re
import secrets
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryOutcome",
    "DeliveryStatus",
    "DispatcherStats",
    "RetryPolicy",
    "Webhook",
    "WebhookDispatcher",
    "WebhookMessage",
    "WebhookUrlError",
    "new_webhook_secret",
    "parse_retry_after",
    "redact_url",
    "sign",
    "slack_payload",
    "validate_webhook_url",
    "verify_signature",
]

log = logging.getLogger("stratopt.live.webhooks")

MAX_URL_LENGTH = 2048
MAX_BODY_BYTES = 256 * 1024
TIMESTAMP_HEADER = "X-Stratopt-Timestamp"
SIGNATURE_HEADER = "X-Stratopt-Signature"
DELIVERY_HEADER = "X-Stratopt-Delivery"
ATTEMPT_HEADER = "X-Stratopt-Attempt"
EVENT_HEADER = "X-Stratopt-Event"
USER_AGENT = "stratopt-webhooks/1"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300.0

_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_MAX_HEADER_LINES = 100
_ERROR_SNIPPET = 300


# --- URLs and secrets -----------------------------------------------------------------------


class WebhookUrlError(ValueError):
    """A webhook URL that cannot be registered; the message says why."""


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_webhook_url(url: object, *, allow_private: bool = True) -> str:
    """Check a URL a user wants to register; return it unchanged, or raise `WebhookUrlError`.

    Accepted: an absolute ``http://`` or ``https://`` URL of at most `MAX_URL_LENGTH`
    characters, printable ASCII without spaces, with a host name or IP literal, an optional
    port, path and query; no ``user:password@`` and no ``#fragment``. With
    ``allow_private=False`` an IP literal (or ``localhost``) that is loopback, private,
    link-local or otherwise not global is refused; host names are checked when the
    dispatcher connects (``allow_private_networks``).
    """
    if not isinstance(url, str):
        raise WebhookUrlError(f"webhook URL must be a string, not {type(url).__name__}")
    if not url:
        raise WebhookUrlError("webhook URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(
            f"webhook URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}"
        )
    if not url.isascii():
        raise WebhookUrlError(
            "webhook URL must be ASCII: percent-encode the path and use the IDNA "
            "(xn--) form of an international host name"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise WebhookUrlError("webhook URL must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise WebhookUrlError(f"webhook URL must start with http:// or https:// (got {got})")
    if "@" in parts.netloc:
        raise WebhookUrlError(
            "webhook URL must not contain credentials (user:password@host); the receiver "
            "can authenticate requests with the webhook secret's signature instead"
        )
    if parts.fragment or url.endswith("#"):
        raise WebhookUrlError("webhook URL must not contain a fragment (#...)")
    host = parts.hostname or ""
    if not host:
        raise WebhookUrlError("webhook URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise WebhookUrlError("webhook URL has an invalid port (must be 1-65535)") from None
    if port == 0:
        raise WebhookUrlError("webhook URL has an invalid port (must be 1-65535)")
    ip = _ip_literal(host)
    if ip is None and not _HOSTNAME.match(host):
        raise WebhookUrlError(f"webhook URL has an invalid host name {host!r}")
    if not allow_private:
        local_name = host == "localhost" or host.endswith(".localhost")
        if local_name or (ip is not None and not _is_public(ip)):
            raise WebhookUrlError(
                f"webhook URL points to a loopback or private address ({host}); "
                "use a publicly reachable host"
            )
    return url


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: what may be logged (the path can be a credential)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    suffix = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{suffix}"


def new_webhook_secret() -> str:
    """A fresh random signing secret (256 bits, URL-safe text)."""
    return "whsec_" + secrets.token_urlsafe(32)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-Stratopt-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``"<ts>." + body``."""
    mac = hmac.new(_key(secret), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Receiver side: is `signature` (the header value) valid for this timestamp and body?

    False if the timestamp is not an integer or is more than `tolerance` seconds from `now`
    (default: the current time), or if no ``v1=`` entry matches.
    """
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = sign(secret, stamp, body)
    candidates = [part.strip() for part in signature.split(",")]
    return any(hmac.compare_digest(expected, c) for c in candidates if c.startswith("v1="))


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """An alert or notification as a human reads it.

    ``severity`` is ``info``, ``warning``, ``error`` or ``critical``; ``kind`` is e.g.
    ``strategy.alert`` or ``job.failed``; ``resource`` e.g. ``strategies/abc``; ``fields``
    are short name/value pairs shown in a grid (at most 10 are sent); ``link`` makes the
    title a link.
    """

    title: str
    message: str = ""
    severity: str = "info"
    kind: str = ""
    resource: str = ""
    time: datetime | None = None
    fields: Sequence[tuple[str, str]] | Mapping[str, str] = ()
    link: str | None = None


_COLORS = {"info": "#439FE0", "warning": "warning", "error": "danger", "critical": "danger"}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: WebhookMessage) -> dict[str, Any]:
    """The Slack incoming-webhook JSON for `message` (``text`` + one ``attachment``)."""
    severity = message.severity.lower() if message.severity else "info"
    title = _escape(_clip(message.title or "(untitled)", 250))
    if message.link and message.link.startswith(("http://", "https://")):
        heading = f"*<{_escape(message.link)}|{title}>*"
    else:
        heading = f"*{title}*"
    if severity in ("warning", "error", "critical"):
        heading = f"[{severity.upper()}] {heading}"
    text = heading
    if message.message:
        text += "\n" + _escape(_clip(message.message, 3000))
    items = message.fields.items() if isinstance(message.fields, Mapping) else message.fields
    pairs = [(str(name), str(value)) for name, value in items]
    fields = [
        {
            "title": _clip(name, 100),
            "value": _escape(_clip(value, 300)),
            "short": len(value) <= 40,
        }
        for name, value in pairs[:10]
    ]
    footer = " · ".join(part for part in ("stratopt", message.kind, message.resource) if part)
    when = message.time or datetime.now(UTC)
    attachment: dict[str, Any] = {
        "fallback": _clip(
            f"{message.title}: {message.message}" if message.message else message.title, 300
        ),
        "color": _COLORS.get(severity, _COLORS["info"]),
        "footer": _escape(footer),
        "ts": int(when.timestamp()),
    }
    if fields:
        attachment["fields"] = fields
    return {"text": text, "attachments": [attachment]}


# --- configuration and outcomes -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered webhook. ``secret`` signs every request; never logged or repr'd."""

    id: str
    url: str
    secret: str | bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"Webhook(id={self.id!r}, url={redact_url(self.url)!r})"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.5
    attempt_timeout: float = 10.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoff must be non-negative and multiplier at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.attempt_timeout <= 0:
            raise ValueError("attempt_timeout must be positive")

    def backoff(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Delay before the next attempt after `failed_attempts` (1, 2, ...) failures."""
        base = self.initial_backoff * self.multiplier ** max(0, failed_attempts - 1)
        base = min(self.max_backoff, base)
        factor = 1.0 - self.jitter * (rng or random).random()
        return base * factor


class DeliveryStatus(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # a permanent error, or every attempt failed
    DROPPED = "dropped"  # pushed out of a full queue before its first attempt
    ABANDONED = "abandoned"  # the dispatcher stopped before it was delivered


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one delivery ended. ``error`` never contains the secret or the URL's path."""

    delivery_id: str
    webhook_id: str
    status: DeliveryStatus
    attempts: int
    http_status: int | None
    error: str | None
    submitted_at: float  # unix time
    finished_at: float
    body: bytes = field(repr=False, default=b"")

    @property
    def ok(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED


@dataclass(frozen=True, slots=True)
class DispatcherStats:
    queued: int
    in_flight: int
    delivered: int
    failed: int
    dropped: int
    abandoned: int
    retries: int


OutcomeCallback = Callable[[DeliveryOutcome], object | Awaitable[object]]


# --- the HTTP attempt -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    https: bool
    host: str
    port: int
    request_target: str
    host_header: str
    safe_url: str


def _target(url: str) -> _Target:
    parts: SplitResult = urlsplit(url)
    https = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    default = 443 if https else 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(https, host, port, request_target, host_header, redact_url(url))


@dataclass(frozen=True, slots=True)
class _Attempt:
    status: int | None
    retryable: bool
    error: str | None = None
    retry_after: float | None = None


class _BlockedAddress(Exception):
    pass


class _BadResponse(Exception):
    pass


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:_ERROR_SNIPPET]


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    while True:
        line = await reader.readline()
        if not line:
            raise _BadResponse("connection closed before a response")
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise _BadResponse(f"malformed status line {_snippet(line)!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n"):
                break
            if not raw:
                raise _BadResponse("connection closed in the response headers")
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        else:
            raise _BadResponse("too many response headers")
        if 100 <= status < 200:
            continue  # an interim response (100 Continue): the real one follows
        return status, headers


async def _read_snippet(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> str:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            data = await reader.read(min(size, 1024))
        else:
            length = headers.get("content-length")
            limit = min(int(length), 1024) if length and length.isdigit() else 1024
            data = await reader.read(limit) if limit else b""
    except (ValueError, OSError, asyncio.IncompleteReadError):
        return ""
    return _snippet(data)


# --- the dispatcher -------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    delivery_id: str
    webhook: Webhook
    target: _Target
    body: bytes
    event: str
    submitted_at: float


@dataclass(slots=True)
class _Lane:
    webhook_id: str
    queue: deque[_Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: _Job | None = None
    dropped: int = 0
    last_drop_log: float = float("-inf")


class WebhookDispatcher:
    """Delivers webhook requests in the background; see the module docstring.

    ``queue_size`` bounds each webhook's waiting deliveries; ``max_concurrency`` bounds
    HTTP attempts in flight across all webhooks; ``on_outcome`` receives every
    `DeliveryOutcome`.
    """

    def __init__(
        self,
        *,
        on_outcome: OutcomeCallback | None = None,
        policy: RetryPolicy | None = None,
        queue_size: int = 100,
        max_concurrency: int = 50,
        allow_private_networks: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1 or max_concurrency < 1:
            raise ValueError("queue_size and max_concurrency must be positive")
        self._on_outcome = on_outcome
        self._policy = policy or RetryPolicy()
        self._queue_size = queue_size
        self._max_concurrency = max_concurrency
        self._allow_private = allow_private_networks
        self._ssl = ssl_context
        self._max_body = max_body_bytes
        self._rng = rng or random.Random()
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"  # new -> running -> stopping -> stopped
        self._counts = {"delivered": 0, "failed": 0, "dropped": 0, "abandoned": 0, "retries": 0}

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def __aenter__(self) -> WebhookDispatcher:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start accepting deliveries on the running event loop (idempotent)."""
        if self._state == "running":
            return
        if self._state != "new":
            raise RuntimeError("a stopped webhook dispatcher cannot be restarted")
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self._max_concurrency)
        self._state = "running"

    def submit(self, webhook: Webhook, payload: WebhookMessage | Mapping[str, Any]) -> str:
        """Queue one delivery; returns its id (also sent as ``X-Stratopt-Delivery``).

        Never blocks. Raises `WebhookUrlError` for an invalid URL, ValueError for an empty
        secret or an oversized body, TypeError if `payload` is not JSON-serializable, and
        RuntimeError unless the dispatcher is running.
        """
        if self._state != "running":
            raise RuntimeError(f"webhook dispatcher is {self._state}, not running")
        job = self._job(webhook, payload)
        lane = self._lanes.get(webhook.id)
        if lane is None:
            lane = self._lanes[webhook.id] = _Lane(webhook.id)
        if len(lane.queue) >= self._queue_size:
            old = lane.queue.popleft()
            lane.dropped += 1
            now = time.monotonic()
            if now - lane.last_drop_log >= 10.0:
                lane.last_drop_log = now
                log.warning(
                    "webhook %s (%s): queue full (%d), dropped the oldest delivery; "
                    "%d dropped so far",
                    webhook.id,
                    job.target.safe_url,
                    self._queue_size,
                    lane.dropped,
                )
            self._report(old, DeliveryStatus.DROPPED, 0, None, "queue full: dropped as oldest")
        lane.queue.append(job)
        if lane.task is None:
            assert self._loop is not None
            lane.task = self._loop.create_task(
                self._run_lane(lane), name=f"webhook-lane-{webhook.id}"
            )
        return job.delivery_id

    async def deliver(
        self, webhook: Webhook, payload: WebhookMessage | Mapping[str, Any]
    ) -> DeliveryOutcome:
        """Deliver now, with retries, bypassing the queues (a "send test message" button).

        The outcome is returned and also passed to ``on_outcome``.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_concurrency)
        return await self._deliver(self._job(webhook, payload))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let queued deliveries finish for up to `timeout` seconds.

        Whatever is still queued or in flight then is cancelled and reported
        ``abandoned`` (the caller may persist and re-submit it later).
        """
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopping"
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for lane in list(self._lanes.values()):
            jobs = ([lane.current] if lane.current is not None else []) + list(lane.queue)
            lane.queue.clear()
            lane.current = None
            for job in jobs:
                self._report(
                    job, DeliveryStatus.ABANDONED, 0, None, "dispatcher stopped before delivery"
                )
            if jobs:
                log.warning(
                    "webhook %s: %d deliveries abandoned at shutdown", lane.webhook_id, len(jobs)
                )
        self._lanes.clear()
        if self._callbacks:
            await asyncio.wait(list(self._callbacks), timeout=max(1.0, timeout))
        self._state = "stopped"

    def stats(self) -> DispatcherStats:
        queued = sum(len(lane.queue) for lane in self._lanes.values())
        in_flight = sum(1 for lane in self._lanes.values() if lane.current is not None)
        return DispatcherStats(queued=queued, in_flight=in_flight, **self._counts)

    def dropped(self, webhook_id: str) -> int:
        """Deliveries dropped from this webhook's queue while its lane was active."""
        lane = self._lanes.get(webhook_id)
        return lane.dropped if lane is not None else 0

    # internals

    def _job(self, webhook: Webhook, payload: WebhookMessage | Mapping[str, Any]) -> _Job:
        validate_webhook_url(webhook.url)
        if not webhook.secret:
            raise ValueError(f"webhook {webhook.id}: the signing secret is empty")
        if isinstance(payload, WebhookMessage):
            document: Mapping[str, Any] = slack_payload(payload)
            event = payload.kind
        elif isinstance(payload, Mapping):
            document, event = payload, ""
        else:
            raise TypeError("payload must be a WebhookMessage or a JSON object (mapping)")
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        if len(body) > self._max_body:
            raise ValueError(f"webhook payload is {len(body)} bytes; the limit is {self._max_body}")
        return _Job(
            delivery_id=uuid.uuid4().hex,
            webhook=webhook,
            target=_target(webhook.url),
            body=body,
            event=event,
            submitted_at=self._clock(),
        )

    async def _run_lane(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                job = lane.queue.popleft()
                lane.current = job
                await self._deliver(job)
                lane.current = None
        finally:
            lane.task = None
            if not lane.queue and lane.current is None and self._lanes.get(lane.webhook_id) is lane:
                del self._lanes[lane.webhook_id]

    async def _deliver(self, job: _Job) -> DeliveryOutcome:
        policy = self._policy
        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(job, attempt)
            if result.status is not None and 200 <= result.status < 300:
                return self._report(job, DeliveryStatus.DELIVERED, attempt, result.status, None)
            if not result.retryable or attempt >= policy.max_attempts:
                log.warning(
                    "webhook %s (%s): delivery %s failed after %d attempt(s): %s",
                    job.webhook.id,
                    job.target.safe_url,
                    job.delivery_id,
                    attempt,
                    result.error,
                )
                return self._report(
                    job, DeliveryStatus.FAILED, attempt, result.status, result.error
                )
            delay = policy.backoff(attempt, self._rng)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, policy.max_retry_after))
            log.info(
                "webhook %s (%s): attempt %d failed (%s); retrying in %.2fs",
                job.webhook.id,
                job.target.safe_url,
                attempt,
                result.error,
                delay,
            )
            self._counts["retries"] += 1
            await asyncio.sleep(delay)

    async def _attempt(self, job: _Job, attempt: int) -> _Attempt:
        assert self._slots is not None
        timeout = self._policy.attempt_timeout
        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    return await self._post(job, attempt)
            except TimeoutError:
                return _Attempt(None, True, f"timed out after {timeout:g}s")
            except _BlockedAddress as exc:
                return _Attempt(None, False, str(exc))
            except ssl.SSLCertVerificationError as exc:
                return _Attempt(None, False, f"TLS certificate not accepted: {exc.verify_message}")
            except socket.gaierror as exc:
                return _Attempt(None, True, f"cannot resolve {job.target.host}: {exc.strerror}")
            except _BadResponse as exc:
                return _Attempt(None, True, f"bad HTTP response: {exc}")
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                return _Attempt(None, True, f"connection failed: {type(exc).__name__}: {reason}")

    async def _connect(self, target: _Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not self._allow_private:
            blocked = [
                a for a in addresses if not _is_public(ipaddress.ip_address(a.split("%")[0]))
            ]
            addresses = [a for a in addresses if a not in blocked]
            if not addresses:
                raise _BlockedAddress(
                    f"{target.host} resolves to a loopback or private address "
                    f"({', '.join(blocked)}); private networks are not allowed"
                )
        context: ssl.SSLContext | None = None
        if target.https:
            context = self._ssl or ssl.create_default_context()
        last: OSError | None = None
        for address in addresses:
            try:
                return await asyncio.open_connection(
                    address,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                    limit=64 * 1024,
                )
            except ssl.SSLCertVerificationError:
                raise
            except OSError as exc:
                last = exc
        assert last is not None
        raise last

    async def _post(self, job: _Job, attempt: int) -> _Attempt:
        target = job.target
        stamp = int(self._clock())
        headers = [
            f"POST {target.request_target} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {USER_AGENT}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(job.body)}",
            "Connection: close",
            f"{TIMESTAMP_HEADER}: {stamp}",
            f"{SIGNATURE_HEADER}: {sign(job.webhook.secret, stamp, job.body)}",
            f"{DELIVERY_HEADER}: {job.delivery_id}",
            f"{ATTEMPT_HEADER}: {attempt}",
        ]
        if job.event and job.event.isprintable():
            headers.append(f"{EVENT_HEADER}: {job.event}")
        head = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1", "replace")
        reader, writer = await self._connect(target)
        try:
            writer.write(head + job.body)
            await writer.drain()
            status, response_headers = await _read_head(reader)
            if 200 <= status < 300:
                return _Attempt(status, False)
            detail = await _read_snippet(reader, response_headers)
            retryable = status in _RETRYABLE_STATUSES or status >= 500
            if 300 <= status < 400:
                error = f"HTTP {status}: redirects are not followed"
            else:
                error = f"HTTP {status}" + (f": {detail}" if detail else "")
            retry_after = (
                parse_retry_after(response_headers.get("retry-after"), now=self._clock())
                if retryable
                else None
            )
            return _Attempt(status, retryable, error, retry_after)
        finally:
            writer.close()

    def _report(
        self,
        job: _Job,
        status: DeliveryStatus,
        attempts: int,
        http_status: int | None,
        error: str | None,
    ) -> DeliveryOutcome:
        outcome = DeliveryOutcome(
            delivery_id=job.delivery_id,
            webhook_id=job.webhook.id,
            status=status,
            attempts=attempts,
            http_status=http_status,
            error=error,
            submitted_at=job.submitted_at,
            finished_at=self._clock(),
            body=job.body,
        )
        self._counts[status.value] += 1
        callback = self._on_outcome
        if callback is None:
            return outcome
        try:
            result = callback(outcome)
        except Exception:
            log.exception("webhook outcome callback failed for delivery %s", job.delivery_id)
            return outcome
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._callbacks.add(task)
            task.add_done_callback(self._callback_done)
        return outcome

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        self._callbacks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook outcome callback failed", exc_info=task.exception())
