"""A user's notifications and the webhooks that carry their alerts out.

Webhooks are the caller's own (admins included: a webhook delivers *your* notifications,
so nobody manages another user's). The signing secret is generated here and shown once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from stratopt.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from stratopt.live.notify import Notifier
from stratopt.live.webhooks import WebhookUrlError, new_webhook_secret, validate_webhook_url
from stratopt.security.principal import Principal
from stratopt.store import models
from stratopt.store.live_repo import LiveRepo
from stratopt.store.paging import (
    Cursor,
    decode_token,
    encode_token,
    page_size,
    query_hash,
    token_int,
)

MAX_WEBHOOKS_PER_USER = 10
KINDS = frozenset(
    {
        "strategy.alert",
        "strategy.status",
        "strategy.failed",
        "job.succeeded",
        "job.failed",
        "job.cancelled",
        "export.ready",
    }
)


class NotificationService:
    def __init__(self, repo: LiveRepo, notifier: Notifier) -> None:
        self.repo = repo
        self.notifier = notifier

    async def page(
        self, principal: Principal, requested: int, token: str
    ) -> tuple[list[models.Notification], str, int]:
        """A page of the caller's notifications, newest first, its next page token, and the
        newest sequence: the first page's top row, carried on by the token, so a stream
        after it continues exactly where the listing began."""
        size = page_size(requested)
        qhash = query_hash(u=principal.user_id, k="notifications")
        cursor = decode_token(token, qhash)
        before = token_int(cursor.key) if cursor else None
        rows = await self.repo.notifications_before(principal.user_id, before, size + 1)
        newest = token_int(cursor.id) if cursor else (rows[0].sequence if rows else 0)
        if len(rows) <= size:
            return rows, "", newest
        rows = rows[:size]
        return rows, encode_token(Cursor(rows[-1].sequence, str(newest)), qhash), newest

    def stream(
        self, principal: Principal, after: int, *, include_stored: bool = False
    ) -> AsyncIterator[models.Notification]:
        """Notifications after `after`; with 0, only new ones unless `include_stored`."""
        if after < 0:
            raise InvalidArgument.field("after_sequence", "must not be negative")
        return self.notifier.stream(principal.user_id, after if after or include_stored else None)

    async def create_webhook(
        self, principal: Principal, url: str, kinds: Sequence[str]
    ) -> models.Webhook:
        v: list[FieldViolation] = []
        try:
            # Where deliveries would be refused (a private address outside development),
            # say so now rather than fail every delivery later.
            clean = validate_webhook_url(url, allow_private=self.notifier.allow_private_webhooks)
        except WebhookUrlError as e:
            v.append(FieldViolation("webhook.url", str(e)))
            clean = ""
        for i, kind in enumerate(kinds):
            if kind not in KINDS:
                v.append(
                    FieldViolation(f"webhook.kinds[{i}]", f"one of {', '.join(sorted(KINDS))}")
                )
        if v:
            raise InvalidArgument.of(v)
        if len(await self.repo.webhooks(principal.user_id)) >= MAX_WEBHOOKS_PER_USER:
            raise ResourceExhausted(f"at most {MAX_WEBHOOKS_PER_USER} webhooks per user")
        hook = models.Webhook(
            id=models.new_id(),
            owner_id=principal.user_id,
            url=clean,
            secret=new_webhook_secret(),
            kinds=sorted(set(kinds)),
            delivered_count=0,
            failed_count=0,
            last_error="",
            created_at=models.utcnow(),
        )
        return await self.repo.add_webhook(hook)

    async def webhooks(self, principal: Principal) -> list[models.Webhook]:
        return await self.repo.webhooks(principal.user_id)

    async def delete_webhook(self, principal: Principal, webhook_id: str) -> None:
        if not webhook_id:
            raise InvalidArgument.field("webhook_id", "required")
        hook = await self.repo.get_webhook(webhook_id)
        if hook is None or hook.owner_id != principal.user_id:
            raise NotFound("webhook", webhook_id)
        await self.repo.delete_webhook(hook.id)
