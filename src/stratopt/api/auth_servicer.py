"""AuthService: login and tokens, API keys, users, audit trail. Converts and delegates; the
rules live in `security/` and access is decided by the access table (`authz.py`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from stratopt.api import audit
from stratopt.api.auth_convert import (
    api_key_to_pb,
    audit_to_pb,
    opt_ts,
    permissions_from_pb,
    permissions_to_pb,
    public_prefix,
    role_from_pb,
    user_to_pb,
)
from stratopt.api.context import current_principal
from stratopt.api.convert import ts_to_pb
from stratopt.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from stratopt.security.api_keys import ApiKeyRecord
from stratopt.security.audit_trail import AuditQuery
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal
from stratopt.security.refresh_tokens import RefreshTokenReuseError
from stratopt.security.roles import Permission
from stratopt.security.users import UNKNOWN_USER, UPDATABLE_FIELDS, UserRecord
from stratopt.store.paging import Cursor, decode_token, encode_token, page_size, query_hash
from stratopt.v1 import auth_pb2 as pb
from stratopt.v1 import auth_pb2_grpc as pbg

if TYPE_CHECKING:
    from stratopt.server.security_assembly import SecurityServices

Ctx: TypeAlias = grpc.aio.ServicerContext

LOGIN_FAILED = "invalid username or password"
INVALID_TOKEN = "invalid or expired credentials"
TOKEN_TYPE = "Bearer"
MAX_KEY_NAME = 100
MAX_ACTIVE_KEYS_PER_USER = 50
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=30)


class AuthServicer(pbg.AuthServiceServicer):
    def __init__(self, sec: SecurityServices) -> None:
        self.sec = sec

    # --- sessions ---------------------------------------------------------------------------

    async def Login(self, request: pb.LoginRequest, context: Ctx) -> pb.LoginResponse:
        _require(request.username, "username")
        _require(request.password, "password")
        try:
            user = await self.sec.users.authenticate(request.username, request.password)
        except AuthenticationError as e:
            who = "" if e.reason == UNKNOWN_USER else f" for {request.username[:64]!r}"
            audit.annotate(detail=f"login failed{who}: {e.reason}")
            raise Unauthenticated(LOGIN_FAILED) from None
        _annotate_actor(user)
        refresh = await self.sec.refresh.issue(user.user_id)
        access = self.sec.tokens.issue_access(user.user_id, user.role, refresh.family_id)
        return pb.LoginResponse(
            access_token=access.token,
            access_token_expire_time=ts_to_pb(access.expires_at),
            refresh_token=refresh.token,
            refresh_token_expire_time=ts_to_pb(refresh.expires_at),
            token_type=TOKEN_TYPE,
            user=user_to_pb(user),
        )

    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: Ctx
    ) -> pb.RefreshTokenResponse:
        _require(request.refresh_token, "refresh_token")
        try:
            issued = await self.sec.refresh.rotate(request.refresh_token)
        except RefreshTokenReuseError as e:
            self.sec.authenticator.forget_session(e.family_id)
            audit.annotate(actor_id=e.user_id, resource_id=e.family_id, detail=e.reason)
            raise Unauthenticated(INVALID_TOKEN) from None
        except AuthenticationError as e:
            audit.annotate(detail=f"refresh rejected: {e.reason}")
            raise Unauthenticated(INVALID_TOKEN) from None
        user = await self.sec.user_repo.get(issued.user_id)
        if user is None or user.disabled:
            await self.sec.refresh.revoke_family(issued.family_id)
            audit.annotate(actor_id=issued.user_id, detail="refresh rejected: user disabled")
            raise Unauthenticated(INVALID_TOKEN)
        _annotate_actor(user)
        audit.annotate(resource_id=issued.family_id)
        access = self.sec.tokens.issue_access(user.user_id, user.role, issued.family_id)
        return pb.RefreshTokenResponse(
            access_token=access.token,
            access_token_expire_time=ts_to_pb(access.expires_at),
            refresh_token=issued.token,
            refresh_token_expire_time=ts_to_pb(issued.expires_at),
            token_type=TOKEN_TYPE,
        )

    async def Logout(self, request: pb.LogoutRequest, context: Ctx) -> pb.LogoutResponse:
        _require(request.refresh_token, "refresh_token")
        record = await self.sec.refresh.revoke(request.refresh_token)
        if record is not None:
            self.sec.authenticator.forget_session(record.family_id)
            audit.annotate(actor_id=record.user_id, resource_id=record.family_id)
        return pb.LogoutResponse()

    async def GetCurrentUser(
        self, request: pb.GetCurrentUserRequest, context: Ctx
    ) -> pb.GetCurrentUserResponse:
        p = current_principal()
        user = await self.sec.users.get(p.user_id)
        return pb.GetCurrentUserResponse(
            user=user_to_pb(user),
            permissions=permissions_to_pb(p.permissions),
            auth_method=p.via,
            api_key_prefix=public_prefix(p.key_prefix) if p.key_prefix else "",
        )

    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Ctx
    ) -> pb.ChangePasswordResponse:
        p = current_principal()
        _require(request.current_password, "current_password")
        _require(request.new_password, "new_password")
        audit.annotate(resource_id=p.user_id)
        await self.sec.users.change_password(
            p.user_id, request.current_password, request.new_password
        )
        # Every other session ends; the one that changed the password goes on.
        await self.sec.refresh.revoke_all_for_user(p.user_id, keep_family=p.session_id)
        self.sec.authenticator.forget_user(p.user_id)
        return pb.ChangePasswordResponse()

    # --- API keys ---------------------------------------------------------------------------

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Ctx
    ) -> pb.CreateApiKeyResponse:
        p = current_principal()
        name = request.display_name.strip()
        _require(name, "display_name")
        if len(name) > MAX_KEY_NAME:
            raise InvalidArgument.field("display_name", f"at most {MAX_KEY_NAME} characters")
        scopes = permissions_from_pb(request.scopes, "scopes") or None
        expires = None
        if request.HasField("expire_time"):
            expires = request.expire_time.ToDatetime(tzinfo=UTC)
            if expires <= datetime.now(UTC):
                raise InvalidArgument.field("expire_time", "must be in the future")
        keys = await self.sec.api_keys.list_for_user(p.user_id)
        now = datetime.now(UTC)
        if sum(k.is_active(now) for k in keys) >= MAX_ACTIVE_KEYS_PER_USER:
            raise FailedPrecondition(
                f"at most {MAX_ACTIVE_KEYS_PER_USER} active API keys per user; revoke one first"
            )
        try:
            created = await self.sec.api_keys.create(p.user_id, p.role, name, scopes, expires)
        except ValueError as e:
            raise InvalidArgument.field("scopes", str(e)) from None
        audit.annotate(detail=f"created {public_prefix(created.record.prefix)}")
        return pb.CreateApiKeyResponse(api_key=api_key_to_pb(created.record), secret=created.key)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: Ctx
    ) -> pb.ListApiKeysResponse:
        p = current_principal()
        owner = request.owner_id or p.user_id
        if owner != p.user_id and not p.can(Permission.MANAGE_USERS):
            raise PermissionDenied("only admins may list other users' API keys")
        size = page_size(request.page_size)
        qhash = query_hash(api_keys=owner)
        cursor = decode_token(request.page_token, qhash)
        keys = await self.sec.api_keys.list_for_user(owner)
        if cursor is not None:
            after = (str(cursor.key), cursor.id)
            keys = [k for k in keys if (k.created_at.isoformat(), k.key_id) > after]
        token = ""
        if len(keys) > size:
            keys = keys[:size]
            token = encode_token(Cursor(keys[-1].created_at.isoformat(), keys[-1].key_id), qhash)
        return pb.ListApiKeysResponse(
            api_keys=[api_key_to_pb(k) for k in keys], next_page_token=token
        )

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: Ctx
    ) -> pb.RevokeApiKeyResponse:
        record = await self._managed_key(current_principal(), request.key_id)
        await self.sec.api_keys.revoke(record.key_id)
        audit.annotate(detail=f"revoked {public_prefix(record.prefix)}")
        return pb.RevokeApiKeyResponse(api_key=api_key_to_pb(await self._key(record.key_id)))

    async def RotateApiKey(
        self, request: pb.RotateApiKeyRequest, context: Ctx
    ) -> pb.RotateApiKeyResponse:
        p = current_principal()
        grace = DEFAULT_GRACE
        if request.HasField("grace_period"):
            grace = request.grace_period.ToTimedelta()
            if not timedelta(0) <= grace <= MAX_GRACE:
                raise InvalidArgument.field("grace_period", "must be between 0 and 30 days")
        record = await self._managed_key(p, request.key_id)
        try:
            created = await self.sec.api_keys.rotate(record.key_id, grace)
        except (ValueError, LookupError):
            raise FailedPrecondition(
                "only an active key that has not been rotated yet can be rotated"
            ) from None
        old = await self._key(record.key_id)
        audit.annotate(
            detail=f"rotated {public_prefix(old.prefix)} to {public_prefix(created.record.prefix)}"
        )
        return pb.RotateApiKeyResponse(
            api_key=api_key_to_pb(created.record),
            secret=created.key,
            previous_secret_expire_time=opt_ts(old.expires_at),
        )

    async def _managed_key(self, p: Principal, key_id: str) -> ApiKeyRecord:
        """The key if the caller owns it (or manages users); NOT_FOUND otherwise, so key ids
        of other users cannot be probed."""
        _require_id(key_id, "key_id")
        record = await self.sec.api_keys.get(key_id)
        if record is None or (record.user_id != p.user_id and not p.can(Permission.MANAGE_USERS)):
            raise NotFound("api key", key_id)
        return record

    async def _key(self, key_id: str) -> ApiKeyRecord:
        record = await self.sec.api_keys.get(key_id)
        if record is None:
            raise NotFound("api key", key_id)
        return record

    # --- users ------------------------------------------------------------------------------

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Ctx
    ) -> pb.CreateUserResponse:
        if not request.HasField("user"):
            raise InvalidArgument.field("user", "required")
        _require(request.password, "password")
        u = request.user
        user = await self.sec.users.create(
            u.username,
            request.password,
            role_from_pb(u.role, "user.role"),
            display_name=u.display_name,
            email=u.email,
            disabled=u.disabled,
        )
        return pb.CreateUserResponse(user=user_to_pb(user))

    async def GetUser(self, request: pb.GetUserRequest, context: Ctx) -> pb.GetUserResponse:
        p = current_principal()
        _require_id(request.user_id, "user_id")
        if request.user_id != p.user_id and not p.can(Permission.MANAGE_USERS):
            raise NotFound("user", request.user_id)
        return pb.GetUserResponse(user=user_to_pb(await self.sec.users.get(request.user_id)))

    async def ListUsers(self, request: pb.ListUsersRequest, context: Ctx) -> pb.ListUsersResponse:
        role = role_from_pb(request.role, "role") if request.role else None
        users, token = await self.sec.user_repo.list_page(
            role, page_size(request.page_size), request.page_token
        )
        return pb.ListUsersResponse(users=[user_to_pb(u) for u in users], next_page_token=token)

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Ctx
    ) -> pb.UpdateUserResponse:
        _require_id(request.user.id, "user.id")
        changes = _user_changes(request.user, list(request.update_mask.paths))
        user = await self.sec.users.update(request.user.id, changes)
        self.sec.authenticator.forget_user(user.user_id)
        if user.disabled:
            await self.sec.refresh.revoke_all_for_user(user.user_id)
        audit.annotate(detail="changed " + ", ".join(sorted(changes)))
        return pb.UpdateUserResponse(user=user_to_pb(user))

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Ctx
    ) -> pb.DeleteUserResponse:
        p = current_principal()
        _require_id(request.user_id, "user_id")
        if request.user_id == p.user_id:
            raise FailedPrecondition("you cannot delete yourself; ask another admin")
        await self.sec.users.delete(request.user_id)
        self.sec.authenticator.forget_user(request.user_id)
        return pb.DeleteUserResponse()

    # --- audit ------------------------------------------------------------------------------

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Ctx
    ) -> pb.ListAuditEventsResponse:
        tr = request.time_range
        query = AuditQuery(
            actor_id=request.actor_id,
            resource_type=request.resource_type,
            resource_id=request.resource_id,
            start=tr.start_time.ToDatetime(tzinfo=UTC) if tr.HasField("start_time") else None,
            end=tr.end_time.ToDatetime(tzinfo=UTC) if tr.HasField("end_time") else None,
        )
        events, token = await self.sec.audit.list(
            query, page_size(request.page_size), request.page_token
        )
        return pb.ListAuditEventsResponse(
            audit_events=[audit_to_pb(e) for e in events], next_page_token=token
        )


def _user_changes(user: pb.User, paths: list[str]) -> dict[str, Any]:
    """The FieldMask as a change set; an empty mask means every updatable field."""
    changes: dict[str, Any] = {}
    for path in paths or list(UPDATABLE_FIELDS):
        if path == "role":
            changes["role"] = role_from_pb(user.role, "user.role")
        elif path in ("display_name", "email"):
            changes[path] = getattr(user, path).strip()
        elif path == "disabled":
            changes["disabled"] = user.disabled
        else:
            changes[path] = None  # refused with the list of updatable fields
    return changes


def _annotate_actor(user: UserRecord) -> None:
    audit.annotate(actor_id=user.user_id, actor_username=user.username, resource_id=user.user_id)


def _require(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument.field(field, "required")


def _require_id(value: str, field: str) -> None:
    _require(value, field)
    if len(value) > 64:
        raise InvalidArgument.field(field, "too long")
