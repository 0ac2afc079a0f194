"""examples/python/quickstart.py, the README's walkthrough, against a live server."""

from __future__ import annotations

import sys

import pytest

from .runner import EXAMPLES, run_ok

QUICKSTART = EXAMPLES / "python" / "quickstart.py"

pytestmark = pytest.mark.client


def test_quickstart_walks_through_the_strategy_api(token_env: dict[str, str]) -> None:
    out = run_ok([sys.executable, str(QUICKSTART)], cwd=EXAMPLES, env=token_env, timeout=60).stdout
    assert "strategy.name: required" in out
    assert "updated description='tuned for hourly bars' version=2" in out
    assert "get after delete -> NOT_FOUND" in out


def test_quickstart_logs_in_with_username_and_password(password_env: dict[str, str]) -> None:
    out = run_ok(
        [sys.executable, str(QUICKSTART)], cwd=EXAMPLES, env=password_env, timeout=60
    ).stdout
    assert "get after delete -> NOT_FOUND" in out
