"""The audit interceptor: one trail entry for every mutating call and every refused one.

It sits right inside the error interceptor, outside authentication and authorization, so it
sees the calls those refuse. What to record comes from the access table (`authz.RULES`:
mutating or not, resource type, where the resource id is); servicers may add what only they
know (the user a login was for, a share's grantee) with `annotate`.

Entries never hold secrets: requests are not copied, only the configured id field; API
keys appear as their public prefix; details are run through log redaction as a last guard.
Refusals are throttled per caller (per client IP when anonymous), so a flood of bad tokens
cannot turn the trail into a write amplifier; other outcomes of mutating calls are always
written.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.authz import Rule, rule_for
from stratopt.api.context import optional_principal
from stratopt.api.peer import client_ip
from stratopt.errors import StratoptError
from stratopt.security.api_keys import API_KEY_PREFIX
from stratopt.security.audit_trail import MAX_DETAIL, AuditRecord, AuditRepo
from stratopt.security.principal import Principal
from stratopt.security.ratelimit import Category, Rate, RateLimits, TokenBucketLimiter
from stratopt.security.redact import redact

log = logging.getLogger("stratopt.audit")

DENIED = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_ANNOTATION_KEYS = frozenset(
    {"actor_id", "actor_username", "resource_type", "resource_id", "detail"}
)
_notes: ContextVar[dict[str, str] | None] = ContextVar("stratopt_audit_notes", default=None)


def annotate(**fields: str) -> None:
    """Add to the current call's audit entry (no-op outside an audited call)."""
    notes = _notes.get()
    if notes is None:
        return
    unknown = set(fields) - _ANNOTATION_KEYS
    if unknown:
        raise ValueError(f"unknown audit fields: {sorted(unknown)}")
    notes.update(fields)


class AuditInterceptor(AsyncServerInterceptor):
    def __init__(
        self,
        repo: AuditRepo,
        *,
        trust_forwarded_for: bool = False,
        refusals_per_minute: int = 60,
        rules: Callable[[str], Rule | None] = rule_for,
    ) -> None:
        self.repo = repo
        self._trust_xff = trust_forwarded_for
        self._rule_for = rules
        rate = Rate.per_minute(refusals_per_minute, refusals_per_minute)
        self._throttle = TokenBucketLimiter(RateLimits(general=rate))
        self.suppressed = 0

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        _notes.set({})
        try:
            result = method(request_or_iterator, context)
            if hasattr(result, "__aiter__"):
                return self._stream(result, request_or_iterator, context, method_name)
            response = await result
        except BaseException as exc:
            await self._record(method_name, request_or_iterator, None, context, exc)
            raise
        await self._record(method_name, request_or_iterator, response, context, None)
        return response

    async def _stream(
        self,
        gen: AsyncIterator[Any],
        request: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> AsyncIterator[Any]:
        try:
            async for item in gen:
                yield item
        except BaseException as exc:
            await self._record(method_name, request, None, context, exc)
            raise
        await self._record(method_name, request, None, context, None)

    async def _record(
        self,
        method_name: str,
        request: Any,
        response: Any,
        context: grpc.aio.ServicerContext,
        exc: BaseException | None,
    ) -> None:
        rule = self._rule_for(method_name)
        if rule is not None and rule.category is None:
            return  # health and reflection
        outcome = _outcome(exc, context)
        if outcome is None:
            return  # cancelled by the client: nothing was decided
        denied = outcome in DENIED or rule is None
        if outcome == "RESOURCE_EXHAUSTED" or not (denied or (rule and rule.mutating)):
            return
        notes = _notes.get() or {}
        principal = optional_principal()
        peer = client_ip(context, trust_forwarded_for=self._trust_xff)
        if denied and not self._admit(principal, peer):
            return
        resource_type = rule.resource if rule else ""
        resource_id = ""
        if rule is not None:
            resource_id = _field(request, rule.id_field) or _field(response, rule.response_id_field)
        detail = notes.get("detail", "")
        if isinstance(exc, StratoptError) and exc.message not in detail:
            detail = f"{detail}; {exc.message}" if detail else exc.message
        record = AuditRecord(
            method=method_name,
            outcome=outcome,
            actor_id=notes.get("actor_id") or (principal.user_id if principal else ""),
            actor_username=notes.get("actor_username") or (principal.username if principal else ""),
            api_key_prefix=_key_prefix(principal),
            resource_type=notes.get("resource_type", resource_type),
            resource_id=notes.get("resource_id") or resource_id,
            peer=peer,
            detail=redact(detail)[:MAX_DETAIL],
        )
        try:
            await self.repo.add(record)
        except Exception:
            # The call's own outcome must not change because the trail is unavailable; the
            # failure is loud in the logs instead.
            log.exception("could not write audit event", extra={"rpc": method_name})

    def _admit(self, principal: Principal | None, peer: str) -> bool:
        key = f"user:{principal.user_id}" if principal is not None else f"ip:{peer}"
        if self._throttle.check(key, Category.GENERAL).allowed:
            return True
        self.suppressed += 1
        if self.suppressed % 100 == 1:
            log.warning(
                "audit: throttling refused-call entries", extra={"suppressed": self.suppressed}
            )
        return False


def _outcome(exc: BaseException | None, context: grpc.aio.ServicerContext) -> str | None:
    if exc is None:
        return "OK"
    if isinstance(exc, StratoptError):
        return exc.code_name
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name
    if not isinstance(exc, Exception):
        return None  # CancelledError and friends
    return "INTERNAL"


def _key_prefix(principal: Principal | None) -> str:
    if principal is None or principal.key_prefix is None:
        return ""
    return API_KEY_PREFIX + principal.key_prefix


def _field(message: Any, path: str) -> str:
    """A dotted path into a message ("strategy.id"); "" when absent or not a message."""
    if not path or not isinstance(message, Message):
        return ""
    value: Any = message
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return ""
    return str(value) if isinstance(value, str | int) else ""
