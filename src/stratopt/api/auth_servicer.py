"""AuthService: login and tokens, API keys, users, audit trail. Converts and delegates; the
use cases live in `services/accounts.py`, the rules in `security/`, and access is decided
by the access table (`authz.py`)."""

from __future__ import annotations

from typing import Any, TypeAlias

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
from stratopt.api.convert import duration_from_pb, ts_from_pb, ts_to_pb
from stratopt.errors import InvalidArgument, Unauthenticated
from stratopt.security.audit_trail import AuditQuery
from stratopt.security.errors import AuthenticationError
from stratopt.security.users import UNKNOWN_USER, UPDATABLE_FIELDS, UserRecord
from stratopt.services.accounts import Accounts, RefreshRefused
from stratopt.v1 import auth_pb2 as pb
from stratopt.v1 import auth_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext

LOGIN_FAILED = "invalid username or password"
INVALID_TOKEN = "invalid or expired credentials"
TOKEN_TYPE = "Bearer"


class AuthServicer(pbg.AuthServiceServicer):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    # --- sessions ---------------------------------------------------------------------------

    async def Login(self, request: pb.LoginRequest, context: Ctx) -> pb.LoginResponse:
        _require(request.username, "username")
        _require(request.password, "password")
        try:
            session = await self.accounts.login(request.username, request.password)
        except AuthenticationError as e:
            who = "" if e.reason == UNKNOWN_USER else f" for {request.username[:64]!r}"
            audit.annotate(detail=f"login failed{who}: {e.reason}")
            raise Unauthenticated(LOGIN_FAILED) from None
        _annotate_actor(session.user)
        return pb.LoginResponse(
            access_token=session.access.token,
            access_token_expire_time=ts_to_pb(session.access.expires_at),
            refresh_token=session.refresh.token,
            refresh_token_expire_time=ts_to_pb(session.refresh.expires_at),
            token_type=TOKEN_TYPE,
            user=user_to_pb(session.user),
        )

    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: Ctx
    ) -> pb.RefreshTokenResponse:
        _require(request.refresh_token, "refresh_token")
        try:
            session = await self.accounts.refresh_session(request.refresh_token)
        except RefreshRefused as e:
            notes = {"actor_id": e.actor_id, "resource_id": e.resource_id}
            audit.annotate(detail=e.reason, **{k: v for k, v in notes.items() if v})
            raise Unauthenticated(INVALID_TOKEN) from None
        _annotate_actor(session.user)
        audit.annotate(resource_id=session.refresh.family_id)
        return pb.RefreshTokenResponse(
            access_token=session.access.token,
            access_token_expire_time=ts_to_pb(session.access.expires_at),
            refresh_token=session.refresh.token,
            refresh_token_expire_time=ts_to_pb(session.refresh.expires_at),
            token_type=TOKEN_TYPE,
        )

    async def Logout(self, request: pb.LogoutRequest, context: Ctx) -> pb.LogoutResponse:
        _require(request.refresh_token, "refresh_token")
        record = await self.accounts.logout(request.refresh_token)
        if record is not None:
            audit.annotate(actor_id=record.user_id, resource_id=record.family_id)
        return pb.LogoutResponse()

    async def GetCurrentUser(
        self, request: pb.GetCurrentUserRequest, context: Ctx
    ) -> pb.GetCurrentUserResponse:
        p = current_principal()
        user = await self.accounts.get_user(p, p.user_id)
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
        await self.accounts.change_password(p, request.current_password, request.new_password)
        return pb.ChangePasswordResponse()

    # --- API keys ---------------------------------------------------------------------------

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Ctx
    ) -> pb.CreateApiKeyResponse:
        created = await self.accounts.create_api_key(
            current_principal(),
            request.display_name,
            permissions_from_pb(request.scopes, "scopes") or None,
            ts_from_pb(request.expire_time, "expire_time")
            if request.HasField("expire_time")
            else None,
        )
        audit.annotate(detail=f"created {public_prefix(created.record.prefix)}")
        return pb.CreateApiKeyResponse(api_key=api_key_to_pb(created.record), secret=created.key)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: Ctx
    ) -> pb.ListApiKeysResponse:
        keys, token = await self.accounts.list_api_keys(
            current_principal(), request.owner_id, request.page_size, request.page_token
        )
        return pb.ListApiKeysResponse(
            api_keys=[api_key_to_pb(k) for k in keys], next_page_token=token
        )

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: Ctx
    ) -> pb.RevokeApiKeyResponse:
        record = await self.accounts.revoke_api_key(current_principal(), request.key_id)
        audit.annotate(detail=f"revoked {public_prefix(record.prefix)}")
        return pb.RevokeApiKeyResponse(api_key=api_key_to_pb(record))

    async def RotateApiKey(
        self, request: pb.RotateApiKeyRequest, context: Ctx
    ) -> pb.RotateApiKeyResponse:
        grace = (
            duration_from_pb(request.grace_period, "grace_period")
            if request.HasField("grace_period")
            else None
        )
        rotated = await self.accounts.rotate_api_key(current_principal(), request.key_id, grace)
        old, new = rotated.previous, rotated.created
        audit.annotate(
            detail=f"rotated {public_prefix(old.prefix)} to {public_prefix(new.record.prefix)}"
        )
        return pb.RotateApiKeyResponse(
            api_key=api_key_to_pb(new.record),
            secret=new.key,
            previous_secret_expire_time=opt_ts(old.expires_at),
        )

    # --- users ------------------------------------------------------------------------------

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Ctx
    ) -> pb.CreateUserResponse:
        if not request.HasField("user"):
            raise InvalidArgument.field("user", "required")
        _require(request.password, "password")
        u = request.user
        user = await self.accounts.create_user(
            u.username,
            request.password,
            role_from_pb(u.role, "user.role"),
            display_name=u.display_name,
            email=u.email,
            disabled=u.disabled,
        )
        return pb.CreateUserResponse(user=user_to_pb(user))

    async def GetUser(self, request: pb.GetUserRequest, context: Ctx) -> pb.GetUserResponse:
        _require_id(request.user_id, "user_id")
        user = await self.accounts.get_user(current_principal(), request.user_id)
        return pb.GetUserResponse(user=user_to_pb(user))

    async def ListUsers(self, request: pb.ListUsersRequest, context: Ctx) -> pb.ListUsersResponse:
        role = role_from_pb(request.role, "role") if request.role else None
        users, token = await self.accounts.list_users(role, request.page_size, request.page_token)
        return pb.ListUsersResponse(users=[user_to_pb(u) for u in users], next_page_token=token)

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Ctx
    ) -> pb.UpdateUserResponse:
        _require_id(request.user.id, "user.id")
        changes = _user_changes(request.user, list(request.update_mask.paths))
        user = await self.accounts.update_user(request.user.id, changes)
        audit.annotate(detail="changed " + ", ".join(sorted(changes)))
        return pb.UpdateUserResponse(user=user_to_pb(user))

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Ctx
    ) -> pb.DeleteUserResponse:
        _require_id(request.user_id, "user_id")
        await self.accounts.delete_user(current_principal(), request.user_id)
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
            start=(
                ts_from_pb(tr.start_time, "time_range.start_time")
                if tr.HasField("start_time")
                else None
            ),
            end=ts_from_pb(tr.end_time, "time_range.end_time") if tr.HasField("end_time") else None,
        )
        events, token = await self.accounts.audit_events(
            query, request.page_size, request.page_token
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
