"""Credentials for the client commands: env token, env API key, or a stored login.

`stratopt login` keeps only the refresh token, in the user's config folder with mode 0600;
each command exchanges it (through the client library, `Client`) for a fresh access token
and stores the rotated refresh token it gets back (the server revokes a session whose
refresh token is reused).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc

from stratopt.client.session import AuthenticationRequired
from stratopt.client.sync_client import Client


class LoginRequired(AuthenticationRequired):
    """No usable credential: the message tells the user what to do."""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stratopt"


def _store_path() -> Path:
    return config_dir() / "credentials.json"


def _load() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_store_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(data: dict[str, dict[str, str]]) -> None:
    path = _store_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def login(server: str, username: str, password: str) -> str:
    """Logs in and stores the refresh token for `server`; returns the user's display name."""
    with Client(server) as client:
        user = client.login(username, password)
        data = _load()
        data[server] = {"username": user.username, "refresh_token": client.refresh_token}
    _save(data)
    return str(user.display_name or user.username)


def logout(server: str) -> bool:
    """Revokes the stored session on the server (best effort) and forgets it locally."""
    data = _load()
    entry = data.pop(server, None)
    if entry is None:
        return False
    try:
        with Client(server, refresh_token=entry["refresh_token"]) as client:
            client.logout()
    except grpc.RpcError:
        pass  # already revoked or server down: forgetting it locally is what matters
    _save(data)
    return True


def _remember(server: str, refresh_token: str) -> None:
    """Stores a rotated refresh token: the old one is revoked once used."""
    data = _load()
    entry = data.get(server)
    if entry is not None:
        entry["refresh_token"] = refresh_token
        _save(data)


def client_for(server: str) -> Client:
    """A library client with the CLI's credential: STRATOPT_TOKEN, else STRATOPT_API_KEY,
    else the stored login for `server` (exchanged at once, so a dead login is reported
    before the command starts; rotated refresh tokens are stored as they arrive)."""
    token = os.environ.get("STRATOPT_TOKEN", "").strip()
    if token:
        return Client(server, access_token=token)
    key = os.environ.get("STRATOPT_API_KEY", "").strip()
    if key:
        return Client(server, api_key=key)
    entry = _load().get(server)
    if entry is None:
        raise LoginRequired(
            f"not logged in to {server}: run `stratopt login`, or set STRATOPT_TOKEN or "
            "STRATOPT_API_KEY"
        )
    client = Client(
        server,
        refresh_token=entry["refresh_token"],
        on_refresh_token=lambda t: _remember(server, t),
    )
    try:
        client.refresh()
    except AuthenticationRequired:
        client.close()
        data = _load()
        data.pop(server, None)
        _save(data)
        raise LoginRequired("your stored login has expired: run `stratopt login` again") from None
    except BaseException:
        client.close()
        raise
    return client
