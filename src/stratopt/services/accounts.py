"""Accounts: sessions, users, API keys and the audit trail, as AuthService's use cases.

The rules of each piece live in `security/` (passwords, tokens, keys, users); this module
decides what a call does around them: which sessions end when a password changes or a user
is disabled, which cached identities to forget so the change applies at once on this
replica, how many keys a user may hold, and who may see or manage whose account (through
`services.access`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stratopt.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from stratopt.security.api_keys import ApiKeyRecord, ApiKeyService, CreatedApiKey
from stratopt.security.audit_trail import AuditQuery, AuditRecord
from stratopt.security.authenticate import Authenticator
from stratopt.security.clock import WallClock, utc_now
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal
from stratopt.security.refresh_tokens import (
    IssuedRefreshToken,
    RefreshTokenPolicy,
    RefreshTokenRecord,
    RefreshTokenReuseError,
)
from stratopt.security.roles import Permission, Role
from stratopt.security.tokens import IssuedToken, TokenService
from stratopt.security.users import UserRecord, UserService
from stratopt.services.access import manages_account
from stratopt.store.paging import page_size
from stratopt.store.security_repos import SqlApiKeyRepo, SqlAuditRepo, SqlUserRepo

MAX_KEY_NAME = 100
MAX_ACTIVE_KEYS_PER_USER = 50
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=30)
MAX_ID = 64


@dataclass(frozen=True)
class Session:
    """A login or a refresh: the user and the tokens to hand to the client."""

    user: UserRecord
    access: IssuedToken
    refresh: IssuedRefreshToken


class RefreshRefused(AuthenticationError):
    """A refresh token was not exchanged. `reason` is for the audit trail, and so are
    `actor_id` and `resource_id` (the session) when known; the client learns nothing."""

    def __init__(self, reason: str, *, actor_id: str = "", resource_id: str = "") -> None:
        super().__init__(reason)
        self.actor_id = actor_id
        self.resource_id = resource_id


@dataclass(frozen=True)
class RotatedApiKey:
    created: CreatedApiKey
    previous: ApiKeyRecord
    """The rotated key as it is now: working until its (shortened) `expires_at`."""


class Accounts:
    def __init__(
        self,
        *,
        users: UserService,
        user_repo: SqlUserRepo,
        tokens: TokenService,
        refresh: RefreshTokenPolicy,
        api_keys: ApiKeyService,
        key_repo: SqlApiKeyRepo,
        audit: SqlAuditRepo,
        authenticator: Authenticator,
        clock: WallClock = utc_now,
    ) -> None:
        self.users = users
        self.user_repo = user_repo
        self.tokens = tokens
        self.refresh = refresh
        self.api_keys = api_keys
        self.key_repo = key_repo
        self.audit = audit
        self.authenticator = authenticator
        self._clock = clock

    # --- sessions ---------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> Session:
        """A new session; `AuthenticationError` (with its `reason`) for a failed login."""
        user = await self.users.authenticate(username, password)
        refresh = await self.refresh.issue(user.user_id)
        access = self.tokens.issue_access(user.user_id, user.role, refresh.family_id)
        return Session(user, access, refresh)

    async def refresh_session(self, refresh_token: str) -> Session:
        """The session's next tokens. A reused token ends its session (the family), and so
        does a token of a user who was disabled or deleted since; `RefreshRefused` then."""
        try:
            issued = await self.refresh.rotate(refresh_token)
        except RefreshTokenReuseError as e:
            self.authenticator.forget_session(e.family_id)
            raise RefreshRefused(e.reason, actor_id=e.user_id, resource_id=e.family_id) from None
        except AuthenticationError as e:
            raise RefreshRefused(f"refresh rejected: {e.reason}") from None
        user = await self.user_repo.get(issued.user_id)
        if user is None or user.disabled:
            await self.refresh.revoke_family(issued.family_id)
            raise RefreshRefused("refresh rejected: user disabled", actor_id=issued.user_id)
        access = self.tokens.issue_access(user.user_id, user.role, issued.family_id)
        return Session(user, access, issued)

    async def logout(self, refresh_token: str) -> RefreshTokenRecord | None:
        """Ends the token's session; the token's record, or None for an unknown token."""
        record = await self.refresh.revoke(refresh_token)
        if record is not None:
            self.authenticator.forget_session(record.family_id)
        return record

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Every other session of the user ends; the one that changed the password goes on."""
        await self.users.change_password(principal.user_id, current, new)
        await self.refresh.revoke_all_for_user(principal.user_id, keep_family=principal.session_id)
        self.authenticator.forget_user(principal.user_id)

    # --- users ------------------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        display_name: str = "",
        email: str = "",
        disabled: bool = False,
    ) -> UserRecord:
        return await self.users.create(
            username, password, role, display_name=display_name, email=email, disabled=disabled
        )

    async def get_user(self, principal: Principal, user_id: str) -> UserRecord:
        """Yourself, or anyone for a user manager; NOT_FOUND otherwise."""
        if not manages_account(principal, user_id):
            raise NotFound("user", user_id)
        return await self.users.get(user_id)

    async def list_users(
        self, role: Role | None, requested: int, page_token: str
    ) -> tuple[list[UserRecord], str]:
        return await self.user_repo.list_page(role, page_size(requested), page_token)

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord:
        """Applies the changes; disabling a user also ends all of their sessions."""
        user = await self.users.update(user_id, changes)
        self.authenticator.forget_user(user.user_id)
        if user.disabled:
            await self.refresh.revoke_all_for_user(user.user_id)
        return user

    async def delete_user(self, principal: Principal, user_id: str) -> None:
        if user_id == principal.user_id:
            raise FailedPrecondition("you cannot delete yourself; ask another admin")
        await self.users.delete(user_id)
        self.authenticator.forget_user(user_id)

    # --- API keys ---------------------------------------------------------------------------

    async def create_api_key(
        self,
        principal: Principal,
        display_name: str,
        scopes: Iterable[Permission] | None,
        expires_at: datetime | None,
    ) -> CreatedApiKey:
        """A key for the caller, scoped to at most their role (all of it without scopes)."""
        name = display_name.strip()
        if not name:
            raise InvalidArgument.field("display_name", "required")
        if len(name) > MAX_KEY_NAME:
            raise InvalidArgument.field("display_name", f"at most {MAX_KEY_NAME} characters")
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument.field("expire_time", "must be in the future")
        if await self.key_repo.count_active(principal.user_id, now) >= MAX_ACTIVE_KEYS_PER_USER:
            raise FailedPrecondition(
                f"at most {MAX_ACTIVE_KEYS_PER_USER} active API keys per user; revoke one first"
            )
        try:
            return await self.api_keys.create(
                principal.user_id, principal.role, name, scopes, expires_at
            )
        except ValueError as e:
            raise InvalidArgument.field("scopes", str(e)) from None

    async def list_api_keys(
        self, principal: Principal, owner_id: str, requested: int, page_token: str
    ) -> tuple[list[ApiKeyRecord], str]:
        """The keys of `owner_id` (the caller's own when empty), oldest first."""
        owner = owner_id or principal.user_id
        if not manages_account(principal, owner):
            raise PermissionDenied("only admins may list other users' API keys")
        return await self.key_repo.list_page(owner, requested, page_token)

    async def revoke_api_key(self, principal: Principal, key_id: str) -> ApiKeyRecord:
        """Revokes the key (a no-op if it already is) and returns it as it is now."""
        record = await self._managed_key(principal, key_id)
        await self.api_keys.revoke(record.key_id)
        return await self._key(record.key_id)

    async def rotate_api_key(
        self, principal: Principal, key_id: str, grace: timedelta | None
    ) -> RotatedApiKey:
        """A successor key; the old one keeps working for `grace` (default 24 hours)."""
        if grace is None:
            grace = DEFAULT_GRACE
        elif not timedelta(0) <= grace <= MAX_GRACE:
            raise InvalidArgument.field("grace_period", "must be between 0 and 30 days")
        record = await self._managed_key(principal, key_id)
        try:
            created = await self.api_keys.rotate(record.key_id, grace)
        except (ValueError, LookupError):
            raise FailedPrecondition(
                "only an active key that has not been rotated yet can be rotated"
            ) from None
        return RotatedApiKey(created, await self._key(record.key_id))

    async def _managed_key(self, principal: Principal, key_id: str) -> ApiKeyRecord:
        """The key if the caller may manage its owner's account; NOT_FOUND otherwise, so key
        ids of other users cannot be probed."""
        if not key_id:
            raise InvalidArgument.field("key_id", "required")
        if len(key_id) > MAX_ID:
            raise InvalidArgument.field("key_id", "too long")
        record = await self.api_keys.get(key_id)
        if record is None or not manages_account(principal, record.user_id):
            raise NotFound("api key", key_id)
        return record

    async def _key(self, key_id: str) -> ApiKeyRecord:
        record = await self.api_keys.get(key_id)
        if record is None:
            raise NotFound("api key", key_id)
        return record

    # --- audit ------------------------------------------------------------------------------

    async def audit_events(
        self, query: AuditQuery, requested: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        """Newest first."""
        return await self.audit.list(query, page_size(requested), page_token)
