from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from stratopt.security.api_keys import generate_api_key
from stratopt.security.passwords import ScryptParams, hash_password
from stratopt.security.redact import REDACTED, RedactingFilter, install, redact
from stratopt.security.roles import Role
from stratopt.security.tokens import TokenConfig, TokenService

from .conftest import WallClock


@pytest.fixture
def jwt_token(clock: WallClock) -> str:
    service = TokenService(TokenConfig(secret=b"k" * 32), clock=clock)
    return service.issue_access("user-1", Role.TRADER).token


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s|%(detail)s"))
    install(handler)
    logger = logging.getLogger("stratopt.test.redact")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


def test_jwt_and_bearer_header(jwt_token: str) -> None:
    assert jwt_token not in redact(f"token {jwt_token} seen")
    out = redact(f"authorization: Bearer {jwt_token}")
    assert jwt_token not in out
    assert out.startswith("authorization: ") and REDACTED in out
    assert redact("Bearer abc.def-ghi") == f"Bearer {REDACTED}"


def test_api_key_keeps_public_prefix() -> None:
    key, prefix = generate_api_key()
    out = redact(f"called with {key} today")
    assert out == f"called with sk_{prefix}_{REDACTED} today"


@pytest.mark.parametrize(
    "text",
    [
        "login password=hunter2hunter2 user=bob",
        "login password: hunter2hunter2",
        '{"username": "bob", "password": "hunter2hunter2"}',
        "query ?api_key=hunter2hunter2&x=1",
        "client_secret='hunter2hunter2'",
        "refresh_token=hunter2hunter2",
    ],
)
def test_key_value_fields(text: str) -> None:
    out = redact(text)
    assert "hunter2hunter2" not in out
    assert REDACTED in out


def test_other_secret_shapes() -> None:
    refresh = "rt_" + "Q" * 43
    stored = hash_password("correct horse battery", ScryptParams(log2_n=4))
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    for secret in (refresh, stored, pem):
        assert secret not in redact(f"value {secret} end")


def test_plain_text_untouched() -> None:
    text = "backtest sma_cross on BTCUSD 1h: sharpe=1.42, token expired for user 7"
    assert redact(text) == text


def test_filter_redacts_args_exceptions_and_extra(
    capture: tuple[logging.Logger, io.StringIO], jwt_token: str
) -> None:
    logger, stream = capture
    key, _ = generate_api_key()
    logger.info("auth header %s", f"Bearer {jwt_token}", extra={"detail": f"key={key}"})
    try:
        raise ValueError(f"bad password=s3cret-s3cret in {jwt_token}")
    except ValueError:
        logger.exception("boom", extra={"detail": {"password": "s3cret-s3cret"}})
    output = stream.getvalue()
    assert jwt_token not in output
    assert key not in output
    assert "s3cret-s3cret" not in output
    assert "ValueError" in output  # the event itself is still logged


def test_filter_never_raises_on_broken_format_calls() -> None:
    logger = logging.getLogger("stratopt.test.redact")
    record = logger.makeRecord(
        logger.name, logging.INFO, "f", 1, "x=%d password=%s", ("nan", "pw-secret-1"), None
    )
    assert RedactingFilter().filter(record)
    message = record.getMessage()
    assert "pw-secret-1" not in message
    assert "format error" in message


def test_filter_is_idempotent(jwt_token: str) -> None:
    record = logging.LogRecord("n", logging.INFO, "f", 1, "t=%s", (jwt_token,), None)
    log_filter = RedactingFilter()
    log_filter.filter(record)
    once = record.getMessage()
    log_filter.filter(record)
    assert record.getMessage() == once == f"t={REDACTED}"
