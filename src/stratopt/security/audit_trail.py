"""The audit trail's record and storage contract: who did what to which resource, how.

Entries are written by the audit interceptor (`api/audit.py`) for every mutating call and
every refused one, and read by admins through `ListAuditEvents`. They hold identifiers and
outcomes only: never a password, token or key (an API key appears as its public prefix).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from stratopt.security.clock import utc_now

MAX_DETAIL = 500


@dataclass(frozen=True)
class AuditRecord:
    method: str
    outcome: str
    actor_id: str = ""
    actor_username: str = ""
    api_key_prefix: str = ""
    resource_type: str = ""
    resource_id: str = ""
    peer: str = ""
    detail: str = ""
    time: datetime = field(default_factory=utc_now)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class AuditQuery:
    actor_id: str = ""
    resource_type: str = ""
    resource_id: str = ""
    start: datetime | None = None
    end: datetime | None = None


class AuditRepo(Protocol):
    async def add(self, record: AuditRecord) -> None: ...

    async def list(
        self, query: AuditQuery, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        """Newest first, keyset-paged; returns (records, next_page_token)."""
        ...
