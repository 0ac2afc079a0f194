"""The client library's retry rules and session timing, without a server."""

from __future__ import annotations

import random

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from stratopt.v1 import auth_pb2

from stratopt.client.retry import (
    STATUS_DETAILS_KEY,
    Reconnect,
    RetryPolicy,
    is_idempotent,
    next_delay,
    retry_delay,
)
from stratopt.client.session import Credentials, TokenSession, merge_metadata

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _trailers(seconds: int, nanos: int) -> list[tuple[str, bytes]]:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))
    )
    st = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down", details=[info])
    return [("x-ratelimit-remaining", b"0"), (STATUS_DETAILS_KEY, st.SerializeToString())]


def test_retry_info_is_read_from_the_status_details_trailer() -> None:
    assert retry_delay(_trailers(1, 250_000_000)) == pytest.approx(1.25)
    assert retry_delay([("other", b"x")]) is None
    assert retry_delay([(STATUS_DETAILS_KEY, b"\xff not a proto")]) is None
    assert retry_delay(None) is None


def test_only_reads_are_idempotent() -> None:
    for name in ("GetJob", "ListTrials", "WatchJob", "DownloadExportFile", "StreamSignals"):
        assert is_idempotent(f"/stratopt.v1.Svc/{name}")
    for name in ("RunBacktest", "StartOptimization", "ExportPineScript", "DeleteStrategy"):
        assert not is_idempotent(f"/stratopt.v1.Svc/{name}".encode())


def test_which_failures_are_retried() -> None:
    p = RetryPolicy()
    get, run = "/stratopt.v1.X/GetJob", "/stratopt.v1.X/RunBacktest"
    assert next_delay(p, 0, get, UNAVAILABLE, None, None) is not None
    assert next_delay(p, 0, run, UNAVAILABLE, None, None) is None, "may have run already"
    assert next_delay(p, 0, run, EXHAUSTED, 0.2, None) is not None, "refused before any work"
    assert next_delay(p, 0, get, EXHAUSTED, None, None) is None, "no RetryInfo: no retry"
    assert next_delay(p, 0, get, EXHAUSTED, 60.0, None) is None, "longer than max_retry_delay"
    assert next_delay(p, 0, get, EXHAUSTED, 0.2, 0.1) is None, "past the call's deadline"
    assert next_delay(p, 4, get, UNAVAILABLE, None, None) is None, "5 attempts at most"
    assert next_delay(p, 0, get, grpc.StatusCode.INVALID_ARGUMENT, None, None) is None


def test_backoff_grows_with_jitter_and_never_undercuts_a_hint() -> None:
    p = RetryPolicy(initial_backoff=0.2, max_backoff=1.0, multiplier=2.0, hint_jitter=0.1)
    rng = random.Random(7)
    for retry, ceiling in ((0, 0.2), (1, 0.4), (2, 0.8), (3, 1.0), (8, 1.0)):
        delays = [p.backoff(retry, None, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert len(set(delays)) > 100, "jittered"
    hinted = [p.backoff(0, 0.75, rng) for _ in range(200)]
    assert min(hinted) >= 0.75 and max(hinted) <= 0.75 * 1.1
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_a_session_is_stale_a_fifth_of_its_life_before_the_end() -> None:
    s = TokenSession("a", "r", expires_at=100.0, lifetime=10.0)
    assert not s.stale(97.9) and s.stale(98.0)
    long = TokenSession("a", "r", expires_at=1000.0, lifetime=900.0)
    assert not long.stale(939.0) and long.stale(940.0), "at most a minute ahead"


def test_credentials_rotate_and_report_the_refresh_token() -> None:
    seen: list[str] = []
    creds = Credentials(refresh_token="r0", on_refresh_token=seen.append)
    assert creds.needs_refresh() and creds.metadata() == ([], "")
    reply = auth_pb2.RefreshTokenResponse(access_token="a1", refresh_token="r1")
    reply.access_token_expire_time.GetCurrentTime()
    reply.access_token_expire_time.seconds += 900
    creds.adopt(reply)
    assert seen == ["r1"] and creds.refresh_token == "r1" and not creds.needs_refresh()
    assert creds.metadata() == ([("authorization", "Bearer a1")], "a1")
    assert creds.forget() == "r1" and not creds.refreshable
    keyed = Credentials(api_key="sk_1")
    assert keyed.metadata() == ([("x-api-key", "sk_1")], "") and not keyed.needs_refresh()
    with pytest.raises(ValueError):
        Credentials(api_key="k", refresh_token="r")


def test_a_credential_given_on_the_call_wins() -> None:
    mine = [("authorization", "Bearer mine")]
    assert merge_metadata([("x-request-id", "1")], mine) == [("x-request-id", "1"), *mine]
    assert merge_metadata([("x-api-key", "other")], mine) == [("x-api-key", "other")]
    assert merge_metadata(None, mine) == mine


class _Broken(grpc.RpcError):
    """A stream broken with UNAVAILABLE, as a server restart leaves it."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def trailing_metadata(self) -> tuple[()]:
        return ()


def test_reconnect_backs_off_until_progress_and_gives_up_after_its_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("stratopt.client.retry.time.monotonic", lambda: now[0])
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=4.0)
    reconnect = Reconnect(policy, window=10.0)
    broken = _Broken()
    delays = []
    for _ in range(4):
        delay = reconnect.delay(broken)
        assert delay is not None
        delays.append(delay)
        now[0] += delay
    # Half to all of 1, 2, 4, 4 s: doubling, capped at max_backoff.
    ceilings = [1.0, 2.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for c, d in zip(ceilings, delays, strict=True)), delays
    assert reconnect.count == 4
    reconnect.progress()  # an event came: a fresh window and backoff
    now[0] += 1.0
    assert reconnect.delay(broken) is not None and reconnect.count == 5
    now[0] += 10.0  # no progress for the whole window since that break
    with pytest.raises(_Broken):
        reconnect.delay(broken)
    assert reconnect.delay(None) is None, "a stream that only ended gives up quietly"
    assert reconnect.count == 5
