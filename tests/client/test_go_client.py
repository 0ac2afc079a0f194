"""The Go example (examples/go): its `go test` suite and its program, against a live server."""

from __future__ import annotations

import pytest

from .runner import EXAMPLES, run_ok

GO = EXAMPLES / "go"

pytestmark = pytest.mark.client


def test_go_vet_is_clean(token_env: dict[str, str]) -> None:
    run_ok(["go", "vet", "./..."], cwd=GO, env=token_env)


def test_go_tests_pass_against_the_server(token_env: dict[str, str]) -> None:
    proc = run_ok(["go", "test", "-count=1", "-v", "./..."], cwd=GO, env=token_env)
    assert "--- SKIP" not in proc.stdout, proc.stdout
    for name in ("TestStrategyLifecycle", "TestInvalidCreateReportsEveryFieldViolation"):
        assert f"--- PASS: {name}" in proc.stdout, proc.stdout


def test_go_example_walks_through_the_strategy_api(token_env: dict[str, str]) -> None:
    out = run_ok(["go", "run", "."], cwd=GO, env=token_env).stdout
    assert "strategy.name: required" in out
    assert 'updated description="tuned for hourly bars" version=2' in out
    assert "get after delete -> NotFound" in out


def test_go_example_logs_in_with_username_and_password(password_env: dict[str, str]) -> None:
    out = run_ok(["go", "run", "."], cwd=GO, env=password_env).stdout
    assert "get after delete -> NotFound" in out
