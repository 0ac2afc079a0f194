"""Per-user notifications: stored and numbered, streamed, and sent to the user's webhooks.

Every notification is written first (`notifications`, numbered per user), then published to
whoever streams it in this process, then handed to the user's webhooks whose kinds match
(alerts only when a webhook names no kinds). Streams read storage, woken by the local
publish, and poll it otherwise, so notifications written by another process (an optimization
worker, another replica) arrive too, a little later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from stratopt.fanout import Hub
from stratopt.live.webhooks import (
    DeliveryOutcome,
    Webhook,
    WebhookDispatcher,
    WebhookMessage,
)
from stratopt.store import models
from stratopt.store.live_repo import LiveRepo

log = logging.getLogger("stratopt.notify")

POLL_INTERVAL_S = 1.0
ALERT_KINDS = frozenset({"strategy.alert"})


@dataclass(frozen=True, slots=True)
class Wakeup:
    sequence: int


class Notifier:
    def __init__(
        self,
        repo: LiveRepo,
        *,
        allow_private_webhooks: bool = False,
        poll_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.repo = repo
        self.poll_s = poll_s
        # Whether webhooks may point at loopback or private addresses (development).
        self.allow_private_webhooks = allow_private_webhooks
        self.hub: Hub[Wakeup] = Hub(maxsize=1, coalesce=lambda _key: True)
        self.webhooks = WebhookDispatcher(
            on_outcome=self._outcome, allow_private_networks=allow_private_webhooks
        )

    def start(self) -> None:
        self.webhooks.start()

    async def stop(self) -> None:
        await self.webhooks.stop(timeout=2.0)
        self.end_streams()

    def end_streams(self) -> None:
        """Ends every open `stream` (the server is shutting down); notifying still works."""
        self.hub.close_all("server shutting down")

    async def notify(
        self, user_id: str, kind: str, severity: str, title: str, message: str, resource: str
    ) -> models.Notification:
        row = await self.repo.add_notification(
            user_id,
            kind=kind,
            severity=severity,
            title=title[:200],
            message=message[:4000],
            resource=resource[:200],
        )
        self.hub.publish(("notification", user_id), Wakeup(row.sequence))
        await self._send_to_webhooks(row)
        return row

    async def stream(self, user_id: str, after: int | None) -> AsyncIterator[models.Notification]:
        """Stored notifications after `after` (None: only new ones), as they are written."""
        cursor = after if after is not None else await self.repo.last_notification(user_id)
        sub = self.hub.subscribe(("notification", user_id))
        async with sub:
            while True:
                rows = await self.repo.notifications_after(user_id, cursor, 500)
                for row in rows:
                    cursor = row.sequence
                    yield row
                if len(rows) == 500:
                    continue
                if sub.closed:
                    return  # the server is shutting down
                try:
                    await sub.get(timeout=self.poll_s)  # woken by a local notify, or polls
                except StopAsyncIteration:
                    return  # closed while waiting: the server is shutting down

    async def _send_to_webhooks(self, row: models.Notification) -> None:
        hooks = await self.repo.webhooks(row.user_id)
        for hook in hooks:
            kinds = frozenset(hook.kinds) or ALERT_KINDS
            if row.kind not in kinds:
                continue
            message = WebhookMessage(
                title=row.title,
                message=row.message,
                severity=row.severity,
                kind=row.kind,
                resource=row.resource,
                time=row.created_at,
            )
            try:
                self.webhooks.submit(Webhook(hook.id, hook.url, hook.secret), message)
            except (ValueError, RuntimeError) as e:
                log.warning("webhook %s not sent: %s", hook.id, e)

    async def _outcome(self, outcome: DeliveryOutcome) -> None:
        error = "" if outcome.ok else (outcome.error or str(outcome.status))
        await self.repo.record_delivery(outcome.webhook_id, outcome.ok, error)
