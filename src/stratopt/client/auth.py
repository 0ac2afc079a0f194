"""Credentials for the client commands: env token, env API key, or a stored login.

`stratopt login` keeps only the refresh token, in the user's config folder with mode 0600;
each command exchanges it for a fresh 15-minute access token and stores the rotated refresh
token it gets back (the server revokes a session whose refresh token is reused).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc

from stratopt.v1 import auth_pb2, auth_pb2_grpc

Metadata = list[tuple[str, str]]


class LoginRequired(Exception):
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
    with grpc.insecure_channel(server) as ch:
        r = auth_pb2_grpc.AuthServiceStub(ch).Login(
            auth_pb2.LoginRequest(username=username, password=password), timeout=30
        )
    data = _load()
    data[server] = {"username": r.user.username, "refresh_token": r.refresh_token}
    _save(data)
    return str(r.user.display_name or r.user.username)


def logout(server: str) -> bool:
    """Revokes the stored session on the server (best effort) and forgets it locally."""
    data = _load()
    entry = data.pop(server, None)
    if entry is None:
        return False
    try:
        with grpc.insecure_channel(server) as ch:
            auth_pb2_grpc.AuthServiceStub(ch).Logout(
                auth_pb2.LogoutRequest(refresh_token=entry["refresh_token"]), timeout=10
            )
    except grpc.RpcError:
        pass  # already revoked or server down: forgetting it locally is what matters
    _save(data)
    return True


def credentials(server: str) -> Metadata:
    """STRATOPT_TOKEN, else STRATOPT_API_KEY, else the stored login for `server`."""
    token = os.environ.get("STRATOPT_TOKEN", "").strip()
    if token:
        return [("authorization", f"Bearer {token}")]
    key = os.environ.get("STRATOPT_API_KEY", "").strip()
    if key:
        return [("x-api-key", key)]
    data = _load()
    entry = data.get(server)
    if entry is None:
        raise LoginRequired(
            f"not logged in to {server}: run `stratopt login`, or set STRATOPT_TOKEN or "
            "STRATOPT_API_KEY"
        )
    try:
        with grpc.insecure_channel(server) as ch:
            r = auth_pb2_grpc.AuthServiceStub(ch).RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=entry["refresh_token"]), timeout=30
            )
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            data.pop(server, None)
            _save(data)
            raise LoginRequired(
                "your stored login has expired: run `stratopt login` again"
            ) from None
        raise
    entry["refresh_token"] = r.refresh_token
    _save(data)
    return [("authorization", f"Bearer {r.access_token}")]
