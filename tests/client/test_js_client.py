"""The TypeScript example (examples/js): typecheck, `npm test` and the program, against a live
server. `make js-deps` installs node_modules in generated/js and examples/js first."""

from __future__ import annotations

import re

import pytest

from .runner import EXAMPLES, ROOT, run_ok

JS = EXAMPLES / "js"

pytestmark = pytest.mark.client


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    for path in (JS / "node_modules/.bin/tsx", ROOT / "generated/js/node_modules/@bufbuild"):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: run `make js-deps` (npm ci in generated/js and examples/js)"
            )


def test_typescript_typechecks(token_env: dict[str, str]) -> None:
    run_ok(["npm", "run", "--silent", "typecheck"], cwd=JS, env=token_env)


def test_npm_test_passes_against_the_server(token_env: dict[str, str]) -> None:
    out = run_ok(["npm", "test"], cwd=JS, env=token_env).stdout
    assert "# SKIP" not in out, out
    passed = re.search(r"^# pass (\d+)$", out, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", out, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 5, out
    assert failed and int(failed.group(1)) == 0, out


def test_ts_example_walks_through_the_strategy_api(token_env: dict[str, str]) -> None:
    out = run_ok(["npx", "--no", "tsx", "src/main.ts"], cwd=JS, env=token_env).stdout
    assert "strategy.name: required" in out
    assert 'updated description="tuned for hourly bars" version=2' in out
    assert "get after delete -> NotFound" in out


def test_ts_example_logs_in_with_username_and_password(password_env: dict[str, str]) -> None:
    out = run_ok(["npx", "--no", "tsx", "src/main.ts"], cwd=JS, env=password_env).stdout
    assert "get after delete -> NotFound" in out
