"""NotificationService.create_webhook refuses, at once, a URL its deliveries would refuse.

Outside development (allow_private_webhooks False) the dispatcher never connects to a
loopback or private address; registering one used to succeed and then fail every
delivery silently. (Inside development they are allowed: tests/integration/live covers it.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratopt.errors import InvalidArgument
from stratopt.live.notify import Notifier
from stratopt.security.principal import Principal
from stratopt.security.roles import Role
from stratopt.services.notifications import NotificationService


class FakeRepo:
    def __init__(self) -> None:
        self.hooks: list[Any] = []

    async def webhooks(self, owner_id: str) -> list[Any]:
        return [h for h in self.hooks if h.owner_id == owner_id]

    async def add_webhook(self, hook: Any) -> Any:
        self.hooks.append(hook)
        return hook


def service(allow_private: bool) -> tuple[NotificationService, FakeRepo]:
    repo = FakeRepo()
    notifier = Notifier(repo, allow_private_webhooks=allow_private)  # type: ignore[arg-type]
    return NotificationService(repo, notifier), repo  # type: ignore[arg-type]


def principal() -> Principal:
    return Principal(user_id="u1", username="u1", role=Role.TRADER, via="jwt")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "https://10.1.2.3/hook", "http://localhost/x"]
)
def test_private_addresses_are_refused_outside_development(url: str) -> None:
    svc, repo = service(allow_private=False)
    with pytest.raises(InvalidArgument) as e:
        asyncio.run(svc.create_webhook(principal(), url, []))
    assert [v.field for v in e.value.violations] == ["webhook.url"]
    assert "private" in e.value.violations[0].description
    assert repo.hooks == []


def test_private_addresses_are_allowed_in_development_and_public_ones_always() -> None:
    dev, _ = service(allow_private=True)
    hook = asyncio.run(dev.create_webhook(principal(), "http://127.0.0.1:9000/hook", []))
    assert hook.url == "http://127.0.0.1:9000/hook" and hook.secret
    prod, _ = service(allow_private=False)
    hook = asyncio.run(prod.create_webhook(principal(), "https://hooks.example.com/x", []))
    assert hook.url == "https://hooks.example.com/x"
