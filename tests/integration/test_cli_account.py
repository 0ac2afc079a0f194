"""`stratopt whoami`, `keys`, `users`, `passwd` and `audit` against a real server: a key
made by `keys create -q` signs the next command in and stops working once revoked or
rotated away; a user made with `users create` changes their password and logs in with the
new one; `audit` shows an admin the call they just made and refuses a trader.

Every user and key made here is made for the test (or revoked at its end), so the demo
users other tests log in as stay as they were."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.integration.test_cli_commands import Run, cli, env, run_json, srv

_ = (cli, env, srv)  # fixtures shared with the other CLI tests

OLD_PASSWORD = "first-pass-phrase-of-cli"
NEW_PASSWORD = "second-pass-phrase-of-cli"


def when(text: str) -> datetime:
    """A proto JSON timestamp (RFC 3339, 0 to 9 fractional digits) as a datetime."""
    return datetime.fromisoformat(text)


def as_token(mp: pytest.MonkeyPatch, srv: LiveServer, user: str) -> None:
    mp.delenv("STRATOPT_API_KEY", raising=False)
    mp.setenv("STRATOPT_TOKEN", srv.token(user))


def as_key(mp: pytest.MonkeyPatch, secret: str) -> None:
    mp.delenv("STRATOPT_TOKEN", raising=False)
    mp.setenv("STRATOPT_API_KEY", secret)


def as_login(mp: pytest.MonkeyPatch) -> None:
    """The session `stratopt login` kept (in the test's own config folder)."""
    mp.delenv("STRATOPT_TOKEN", raising=False)
    mp.delenv("STRATOPT_API_KEY", raising=False)


def test_whoami_and_an_api_key_from_create_to_revoke(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = cli("whoami")
    assert "trader" in out and "an access token (from STRATOPT_TOKEN)" in out, out
    assert "run_backtests" in out and "manage_users" not in out
    me = run_json(cli, "whoami")
    assert isinstance(me, dict) and me["user"]["username"] == "trader"
    assert me["auth_method"] == "jwt" and me["user"]["role"] == "ROLE_TRADER"

    out, _ = cli("keys", "create", "cli-ci", "-q")
    secret = out.strip()
    assert len(out.splitlines()) == 1 and secret.startswith("sk_"), out
    listed = run_json(cli, "keys", "ls")
    assert isinstance(listed, list)
    key = next(k for k in listed if secret.startswith(k["prefix"]))
    assert key["display_name"] == "cli-ci" and not key["revoked"]

    # The key signs the next command in; creating keys takes a login, not a key.
    as_key(monkeypatch, secret)
    me = run_json(cli, "whoami")
    assert isinstance(me, dict) and me["user"]["username"] == "trader"
    assert me["auth_method"] == "api_key" and secret.startswith(me["api_key_prefix"])
    out, _ = cli("whoami")
    assert f"API key {key['prefix']} (from STRATOPT_API_KEY)" in out, out
    _, err = cli("keys", "create", "from-a-key", code=1)
    assert "PERMISSION_DENIED" in err, err

    # Rotated with no grace: the old secret stops at once, the new one works.
    as_token(monkeypatch, srv, "trader")
    out, _ = cli("keys", "rotate", key["id"], "--grace", "0")
    assert "the old secret no longer works" in out and "only time the secret is shown" in out
    new_secret = re.search(r"secret\s+(sk_\S+)", out)
    assert new_secret, out
    new_id = re.search(r"the new key is (\S+)", out)
    assert new_id and new_id.group(1) != key["id"], out
    as_key(monkeypatch, secret)
    _, err = cli("whoami", code=1)
    assert "UNAUTHENTICATED" in err, err
    as_key(monkeypatch, new_secret.group(1))
    cli("whoami")

    # Revoked: it stops working, `keys ls` leaves it out unless --all.
    as_token(monkeypatch, srv, "trader")
    out, _ = cli("keys", "revoke", new_id.group(1))
    assert f"revoked API key {new_id.group(1)}" in out
    as_key(monkeypatch, new_secret.group(1))
    cli("whoami", code=1)
    as_token(monkeypatch, srv, "trader")
    active = run_json(cli, "keys", "ls")
    assert isinstance(active, list) and new_id.group(1) not in [k["id"] for k in active]
    out, _ = cli("keys", "ls", "--all")
    assert new_id.group(1) in out and "revoked" in out


def test_a_scoped_expiring_key_can_do_only_what_it_says(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = run_json(
        cli, "keys", "create", "cli-read-only", "--scope", "read_strategies", "--expires", "2d"
    )
    assert isinstance(made, dict)
    assert made["api_key"]["scopes"] == ["PERMISSION_READ_STRATEGIES"]
    expires = when(made["api_key"]["expire_time"]) - datetime.now(UTC)
    assert timedelta(days=2) - timedelta(minutes=5) < expires <= timedelta(days=2)
    as_key(monkeypatch, made["secret"])
    cli("strategies", "ls")
    _, err = cli("datasets", "ls", code=1)
    assert "PERMISSION_DENIED" in err, err
    as_token(monkeypatch, srv, "trader")
    cli("keys", "revoke", made["api_key"]["id"])
    _, err = cli("keys", "create", "x", "--expires", "someday", code=2)
    assert "duration such as" in err


def test_users_and_passwd_for_a_fresh_user(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    as_token(monkeypatch, srv, "admin")
    monkeypatch.setenv("STRATOPT_NEW_PASSWORD", OLD_PASSWORD)
    out, _ = cli("users", "create", name, "--role", "analyst", "--display-name", "Cli Person")
    assert out.startswith(f"created analyst {name} ("), out
    out, _ = cli("users", "ls", "--role", "analyst")
    assert name in out and "Cli Person" in out
    shown = run_json(cli, "users", "show", name.upper())  # usernames in any case
    assert isinstance(shown, dict) and shown["role"] == "ROLE_ANALYST" and not shown["disabled"]

    # Disabled: the password no longer logs in; enabled again: it does.
    changed = run_json(cli, "users", "update", name, "--role", "viewer", "--disable")
    assert isinstance(changed, dict) and changed["role"] == "ROLE_VIEWER" and changed["disabled"]
    assert changed["display_name"] == "Cli Person"  # the mask left it alone
    monkeypatch.setenv("STRATOPT_PASSWORD", OLD_PASSWORD)
    cli("login", "--username", name, code=1)
    out, _ = cli("users", "update", name, "--enable")
    assert "enabled" in out and "viewer" in out, out
    _, err = cli("users", "update", name, code=2)
    assert "nothing to change" in err

    # The user themself: log in, change the password, log in with the new one only.
    as_login(monkeypatch)
    cli("login", "--username", name)
    out, _ = cli("whoami")
    assert name in out and "stratopt login" in out, out
    monkeypatch.setenv("STRATOPT_PASSWORD", "not-the-password-at-all")
    monkeypatch.setenv("STRATOPT_NEW_PASSWORD", NEW_PASSWORD)
    _, err = cli("passwd", code=1)  # a wrong current password changes nothing
    assert "UNAUTHENTICATED" in err or "PERMISSION_DENIED" in err or "password" in err, err
    monkeypatch.setenv("STRATOPT_PASSWORD", OLD_PASSWORD)
    out, err = cli("passwd")
    assert f"changed the password of {name}" in out
    assert OLD_PASSWORD not in out + err and NEW_PASSWORD not in out + err
    cli("login", "--username", name, code=1)  # the old one is refused
    monkeypatch.setenv("STRATOPT_PASSWORD", NEW_PASSWORD)
    cli("login", "--username", name)
    assert run_json(cli, "whoami")["user"]["username"] == name  # type: ignore[index]
    _, err = cli("users", "ls", code=1)  # a viewer is not an admin
    assert "PERMISSION_DENIED" in err

    as_token(monkeypatch, srv, "admin")
    out, _ = cli("users", "rm", name)
    assert f"deleted user {name}" in out
    _, err = cli("users", "show", name, code=1)
    assert f"no user {name!r}" in err
    cli("login", "--username", name, code=1)


def test_audit_shows_an_admin_what_just_happened_and_refuses_a_trader(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_token(monkeypatch, srv, "admin")
    made = run_json(cli, "keys", "create", "cli-audit-probe")
    assert isinstance(made, dict)
    key_id = made["api_key"]["id"]
    cli("keys", "revoke", key_id)

    events = run_json(cli, "audit", "--user", "admin", "--since", "10m", "--last", "20")
    assert isinstance(events, list) and events
    times = [when(e["time"]) for e in events]
    assert times == sorted(times)  # oldest first, the newest at the bottom
    mine = [e for e in events if e["resource_id"] == key_id]
    methods = [e["method"].rsplit("/", 1)[-1] for e in mine]
    assert methods == ["CreateApiKey", "RevokeApiKey"], events
    assert all(e["actor_username"] == "admin" and e["outcome"] == "OK" for e in mine)

    out, _ = cli("audit", "--resource-type", "api_key", "--resource-id", key_id)
    assert "CreateApiKey" in out and "RevokeApiKey" in out, out
    later = run_json(cli, "audit", "--since", "2999-01-01")
    assert later == []

    as_token(monkeypatch, srv, "trader")
    _, err = cli("audit", code=1)
    assert "PERMISSION_DENIED" in err, err
    _, err = cli("audit", "--since", "last tuesday", code=2)
    assert "expected a time" in err
