"""When a failed call is tried again, and after how long.

Two codes are retried, each only where a second attempt cannot do harm:

* ``RESOURCE_EXHAUSTED`` carrying ``google.rpc.RetryInfo``: every unary call. stratopt
  refuses these *before* doing any work (the rate limiter, the stream cap, the job quota,
  upload memory), and RetryInfo says when the server expects to say yes. The client waits
  at least that long. A refusal without RetryInfo, or one asking for a longer wait than
  ``RetryPolicy.max_retry_delay``, is returned to the caller at once.
* ``UNAVAILABLE``: only idempotent calls (``IDEMPOTENT_PREFIXES``: reads, lists, watches,
  downloads, comparisons). The request may have reached the server before the connection
  broke, so retrying ``RunBacktest`` or ``StartOptimization`` could do the work twice.
  (gRPC itself already retries, transparently, requests that never left the client.)

Attempts are bounded by ``max_attempts`` and by the call's own deadline: the client never
sleeps past the ``timeout`` given to the call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"

IDEMPOTENT_PREFIXES = ("Get", "List", "Read", "Watch", "Stream", "Download", "Compare")
"""Method names (after the service) that only read, so repeating them is harmless."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retries: exponential backoff with jitter, or the server's RetryInfo.

    The n-th retry without a hint waits a random time between half and all of
    ``min(max_backoff, initial_backoff * multiplier ** n)`` (jitter spreads clients that
    failed together). With RetryInfo it waits the hinted delay plus up to ``hint_jitter``
    of it, never less: coming back early would only be refused again.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    max_retry_delay: float = 30.0
    hint_jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be non-negative and multiplier at least 1")

    def backoff(self, retry: int, hint: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        r = rng or random
        if hint is not None:
            return hint * (1.0 + r.uniform(0.0, self.hint_jitter))
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        return r.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def method_name(full_method: str | bytes) -> str:
    """``/stratopt.v1.StrategyService/GetStrategy`` -> ``GetStrategy``."""
    text = full_method.decode() if isinstance(full_method, bytes) else full_method
    return text.rsplit("/", 1)[-1]


def is_idempotent(full_method: str | bytes) -> bool:
    return method_name(full_method).startswith(IDEMPOTENT_PREFIXES)


def retry_delay(trailing_metadata: Iterable[Any] | None) -> float | None:
    """The ``RetryInfo.retry_delay`` in a status's details, in seconds, if there is one.

    Reads ``grpc-status-details-bin`` directly so the same code serves sync errors, aio
    errors and intercepted calls (``grpc_status.rpc_status.from_call`` wants a sync call)."""
    for item in trailing_metadata or ():
        key, value = item[0], item[1]
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # a malformed trailer is not a hint
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return max(info.retry_delay.ToTimedelta().total_seconds(), 0.0)
    return None


def error_retry_delay(err: grpc.RpcError) -> float | None:
    """`retry_delay` of a raised error (sync or aio)."""
    trailers = getattr(err, "trailing_metadata", None)
    try:
        return retry_delay(trailers() if callable(trailers) else None)
    except Exception:  # a local error (no connection) has no trailers to read
        return None


def should_retry(
    policy: RetryPolicy, full_method: str | bytes, code: grpc.StatusCode | None, hint: float | None
) -> bool:
    """Whether this failure is worth another attempt under the rules above."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return hint is not None and hint <= policy.max_retry_delay
    if code == grpc.StatusCode.UNAVAILABLE:
        return is_idempotent(full_method)
    return False


def next_delay(
    policy: RetryPolicy,
    retry: int,
    full_method: str | bytes,
    code: grpc.StatusCode | None,
    hint: float | None,
    remaining: float | None,
) -> float | None:
    """Seconds to sleep before retry number ``retry``, or None to give up now.

    ``retry`` counts retries already made; ``remaining`` is the time left before the call's
    deadline (None: no deadline)."""
    if retry + 1 >= policy.max_attempts or not should_retry(policy, full_method, code, hint):
        return None
    delay = policy.backoff(retry, hint)
    if remaining is not None and delay >= remaining:
        return None
    return delay


def reconnect_delay(
    policy: RetryPolicy, retry: int, down_since: float, window: float, hint: float | None
) -> float | None:
    """Seconds before a long-lived stream subscribes again, or None once it has been down
    for `window` seconds: a server restart takes longer than a call's retries last, and a
    follower would rather wait for it (backoff capped at ``policy.max_backoff``)."""
    if time.monotonic() - down_since >= window:
        return None
    return policy.backoff(retry, hint)


class Reconnect:
    """The reconnect bookkeeping of one long-lived stream (a job watch, a live follow): how
    many times it subscribed again, and since when it has made no progress, for
    `reconnect_delay`. The sync and async followers share it."""

    def __init__(self, policy: RetryPolicy, window: float) -> None:
        self.policy = policy
        self.window = window
        self.count = 0
        self._retry = 0
        self._down_since = 0.0

    def progress(self) -> None:
        """Something new arrived: the next break starts a fresh window and backoff."""
        self._retry, self._down_since = 0, 0.0

    def delay(self, error: grpc.RpcError | None) -> float | None:
        """Seconds to wait before subscribing again after `error` (None: the stream ended
        early), or None once the window has passed; then `error` is raised, if there is one.
        """
        self._down_since = self._down_since or time.monotonic()
        hint = error_retry_delay(error) if error is not None else None
        delay = reconnect_delay(self.policy, self._retry, self._down_since, self.window, hint)
        if delay is None:
            if error is not None:
                raise error
            return None
        self._retry += 1
        self.count += 1
        return delay
