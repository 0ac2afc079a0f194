"""Environments that point the example clients (Go, TypeScript, Python) at the live server."""

from __future__ import annotations

from typing import Protocol

import pytest

from tests.conftest import DEMO_PASSWORDS

from .runner import base_env


class Server(Protocol):
    """What these tests use of tests/conftest.py's LiveServer."""

    addr: str

    def token(self, username: str) -> str: ...


def demo_password(srv: Server, username: str) -> str:
    """The seeded demo password of a development-mode server."""
    return DEMO_PASSWORDS[username]


@pytest.fixture(scope="module")
def token_env(live_server: Server) -> dict[str, str]:
    """A client talks to the live server as the demo trader, with STRATOPT_TOKEN."""
    return {
        **base_env(),
        "STRATOPT_SERVER": live_server.addr,
        "STRATOPT_TOKEN": live_server.token("trader"),
    }


@pytest.fixture(scope="module")
def password_env(live_server: Server) -> dict[str, str]:
    """A client logs in by itself with the demo trader's username and password."""
    password = demo_password(live_server, "trader")
    return {
        **base_env(),
        "STRATOPT_SERVER": live_server.addr,
        "STRATOPT_USERNAME": "trader",
        "STRATOPT_PASSWORD": password,
    }
