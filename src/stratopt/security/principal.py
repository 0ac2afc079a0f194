"""The authenticated caller, as the rest of the service sees it.

Built by the auth interceptor from a verified access token or API key, then read by
servicers through the request context. Everything authorization needs is here so a servicer
never has to look at tokens or keys. What a principal may do to one resource (owner, admin,
shares) is decided in `services/access.py`, which needs the stored resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stratopt.security.errors import PermissionDeniedError
from stratopt.security.roles import ROLE_PERMISSIONS, Permission, Role

AuthMethod = Literal["jwt", "api_key"]


@dataclass(frozen=True)
class Principal:
    """Who is calling and how.

    `scopes` is None for JWT callers (the role alone decides) and the key's scopes for API
    key callers; effective permissions are always role ∩ scopes, so a key can never do more
    than its owner's *current* role.
    """

    user_id: str
    username: str
    role: Role
    via: AuthMethod
    key_id: str | None = None
    scopes: frozenset[Permission] | None = None
    session_id: str | None = None
    # The API key's public prefix, for audit entries and logs (never the secret).
    key_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.via == "api_key" and (self.key_id is None or self.scopes is None):
            raise ValueError("an api_key principal needs key_id and scopes")
        if self.via == "jwt" and (
            self.key_id is not None or self.scopes is not None or self.key_prefix is not None
        ):
            raise ValueError("a jwt principal has no key_id or scopes")

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def permissions(self) -> frozenset[Permission]:
        granted = ROLE_PERMISSIONS[self.role]
        return granted if self.scopes is None else granted & self.scopes

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDeniedError(permission, "not granted to role or key scopes")
