"""Proto <-> security-domain conversions for AuthService (users, keys, audit, enums)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from google.protobuf import timestamp_pb2

from stratopt.api.convert import ts_to_pb
from stratopt.errors import FieldViolation, InvalidArgument
from stratopt.security.api_keys import API_KEY_PREFIX, ApiKeyRecord
from stratopt.security.audit_trail import AuditRecord
from stratopt.security.roles import Permission, Role
from stratopt.security.users import UserRecord
from stratopt.v1 import auth_pb2 as pb
from stratopt.v1 import common_pb2 as c

ROLE_TO_PB = {role: c.Role.Value(f"ROLE_{role.name}") for role in Role}
ROLE_FROM_PB = {v: k for k, v in ROLE_TO_PB.items()}
PERMISSION_TO_PB = {p: c.Permission.Value(f"PERMISSION_{p.name}") for p in Permission}
PERMISSION_FROM_PB = {v: k for k, v in PERMISSION_TO_PB.items()}


def opt_ts(dt: datetime | None) -> timestamp_pb2.Timestamp | None:
    return ts_to_pb(dt) if dt is not None else None


def role_from_pb(value: int, field: str) -> Role:
    try:
        return ROLE_FROM_PB[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument.field(
            field, "a role is required: ADMIN, TRADER, ANALYST or VIEWER"
        ) from None


def permissions_from_pb(values: Iterable[int], field: str) -> list[Permission]:
    out: list[Permission] = []
    bad: list[FieldViolation] = []
    for i, v in enumerate(values):
        perm = PERMISSION_FROM_PB.get(v)  # type: ignore[call-overload]
        if perm is None:
            bad.append(FieldViolation(f"{field}[{i}]", f"unknown permission {v}"))
        else:
            out.append(perm)
    if bad:
        raise InvalidArgument.of(bad)
    return out


def permissions_to_pb(perms: Iterable[Permission]) -> list[c.Permission.ValueType]:
    return sorted(PERMISSION_TO_PB[p] for p in perms)


def user_to_pb(u: UserRecord) -> pb.User:
    return pb.User(
        id=u.user_id,
        username=u.username,
        display_name=u.display_name,
        email=u.email,
        role=ROLE_TO_PB[u.role],
        disabled=u.disabled,
        create_time=opt_ts(u.created_at),
        update_time=opt_ts(u.updated_at),
        last_login_time=opt_ts(u.last_login_at),
    )


def public_prefix(prefix: str) -> str:
    """The recognisable, non-secret start of a key: "sk_1a2b3c4d"."""
    return f"{API_KEY_PREFIX}{prefix}"


def api_key_to_pb(k: ApiKeyRecord) -> pb.ApiKey:
    return pb.ApiKey(
        id=k.key_id,
        display_name=k.name,
        prefix=public_prefix(k.prefix),
        scopes=permissions_to_pb(k.scopes),
        owner_id=k.user_id,
        create_time=opt_ts(k.created_at),
        expire_time=opt_ts(k.expires_at),
        last_used_time=opt_ts(k.last_used_at),
        revoked=k.revoked_at is not None,
    )


def audit_to_pb(a: AuditRecord) -> pb.AuditEvent:
    return pb.AuditEvent(
        id=a.event_id,
        time=ts_to_pb(a.time),
        actor_id=a.actor_id,
        actor_username=a.actor_username,
        api_key_prefix=a.api_key_prefix,
        method=a.method,
        resource_type=a.resource_type,
        resource_id=a.resource_id,
        outcome=a.outcome,
        peer=a.peer,
        detail=a.detail,
    )
