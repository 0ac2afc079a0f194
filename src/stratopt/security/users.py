"""User accounts: creation under the password policy, login, password change, admin edits.

The rules live here, storage behind `UserRepo` (SQL in `store/`, a dict here for tests):
usernames are case-insensitive (stored lower-cased) so "Alice" cannot impersonate "alice";
a login for an unknown or disabled user still pays for one scrypt derivation, so response
time does not tell which usernames exist; and the last enabled admin can be neither demoted,
disabled nor deleted, so a deployment can never lock itself out of user management.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from stratopt.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from stratopt.security.clock import WallClock, utc_now
from stratopt.security.errors import AuthenticationError
from stratopt.security.passwords import (
    MAX_PASSWORD_LENGTH,
    PasswordHasher,
    check_password_policy,
)
from stratopt.security.roles import Role

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_DISPLAY_NAME = 200
MAX_EMAIL = 320
UPDATABLE_FIELDS = ("display_name", "email", "role", "disabled")
UNKNOWN_USER = "unknown username"
"""The `AuthenticationError.reason` of a login for a name that is no user: callers must not
echo that name anywhere, since people type their password into the username field."""


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    username: str
    role: Role
    password_hash: str = field(repr=False)
    display_name: str = ""
    email: str = ""
    disabled: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login_at: datetime | None = None

    @property
    def is_active_admin(self) -> bool:
        return self.role is Role.ADMIN and not self.disabled


class UserExistsError(Exception):
    """The username is taken."""


class LastAdminError(Exception):
    """The change would leave no enabled admin."""


class UserRepo(Protocol):
    """Storage for users. `update` and `delete` must refuse (LastAdminError) to demote,
    disable or delete the last enabled admin, checked in the same transaction as the change.
    Other changes never check, so a deployment without any admin can still log in."""

    async def get(self, user_id: str) -> UserRecord | None: ...

    async def get_by_username(self, username: str) -> UserRecord | None: ...

    async def add(self, record: UserRecord) -> None:
        """Insert; raise `UserExistsError` if the username is taken."""
        ...

    async def update(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord | None:
        """Apply column changes; None when the user does not exist."""
        ...

    async def delete(self, user_id: str) -> bool: ...


class InMemoryUserRepo:
    """Dict-backed `UserRepo` for tests."""

    def __init__(self) -> None:
        self.records: dict[str, UserRecord] = {}

    async def get(self, user_id: str) -> UserRecord | None:
        return self.records.get(user_id)

    async def get_by_username(self, username: str) -> UserRecord | None:
        return next((r for r in self.records.values() if r.username == username), None)

    async def add(self, record: UserRecord) -> None:
        if await self.get_by_username(record.username) is not None:
            raise UserExistsError(record.username)
        self.records[record.user_id] = record

    async def update(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord | None:
        record = self.records.get(user_id)
        if record is None:
            return None
        updated = dataclasses.replace(record, **changes)
        if record.is_active_admin and not updated.is_active_admin:
            self._check_admins({**self.records, user_id: updated})
        self.records[user_id] = updated
        return updated

    async def delete(self, user_id: str) -> bool:
        record = self.records.get(user_id)
        if record is None:
            return False
        if record.is_active_admin:
            self._check_admins({k: v for k, v in self.records.items() if k != user_id})
        del self.records[user_id]
        return True

    @staticmethod
    def _check_admins(after: Mapping[str, UserRecord]) -> None:
        if not any(r.is_active_admin for r in after.values()):
            raise LastAdminError


def normalize_username(username: str) -> str:
    return username.strip().lower()


def username_problems(username: str) -> list[str]:
    if USERNAME_RE.fullmatch(username) is None:
        return ["must be 3-64 characters: lowercase letters, digits, '.', '_' or '-'"]
    return []


def profile_violations(display_name: str | None, email: str | None) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if display_name is not None and len(display_name) > MAX_DISPLAY_NAME:
        out.append(FieldViolation("display_name", f"at most {MAX_DISPLAY_NAME} characters"))
    if email and (len(email) > MAX_EMAIL or EMAIL_RE.fullmatch(email) is None):
        out.append(FieldViolation("email", "not an email address"))
    return out


class UserService:
    """Account rules over a `UserRepo`; hashing runs off the event loop via `hasher`."""

    def __init__(
        self, repo: UserRepo, hasher: PasswordHasher, *, clock: WallClock = utc_now
    ) -> None:
        self.repo = repo
        self.hasher = hasher
        self._clock = clock

    async def get(self, user_id: str) -> UserRecord:
        record = await self.repo.get(user_id)
        if record is None:
            raise NotFound("user", user_id)
        return record

    async def create(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        display_name: str = "",
        email: str = "",
        disabled: bool = False,
    ) -> UserRecord:
        name = normalize_username(username)
        violations = [FieldViolation("user.username", p) for p in username_problems(name)]
        violations += [
            FieldViolation("password", p) for p in check_password_policy(password, username=name)
        ]
        violations += [
            FieldViolation("user." + v.field, v.description)
            for v in profile_violations(display_name, email.strip())
        ]
        if violations:
            raise InvalidArgument.of(violations)
        now = self._clock()
        record = UserRecord(
            user_id=uuid.uuid4().hex,
            username=name,
            role=role,
            password_hash=await self.hasher.hash(password),
            display_name=display_name.strip() or name,
            email=email.strip(),
            disabled=disabled,
            created_at=now,
            updated_at=now,
        )
        try:
            await self.repo.add(record)
        except UserExistsError:
            raise AlreadyExists(f"username {name!r} is taken") from None
        return record

    async def authenticate(self, username: str, password: str) -> UserRecord:
        """The user for a correct username and password; `AuthenticationError` otherwise,
        with the same cost and message whatever was wrong."""
        if len(password) > MAX_PASSWORD_LENGTH:
            raise AuthenticationError("password too long")
        record = await self.repo.get_by_username(normalize_username(username))
        stored = record.password_hash if record is not None else None
        ok = await self.hasher.verify(password, stored)
        if record is None:
            raise AuthenticationError(UNKNOWN_USER)
        if not ok:
            raise AuthenticationError("wrong password")
        if record.disabled:
            raise AuthenticationError("user disabled")
        changes: dict[str, Any] = {"last_login_at": self._clock()}
        if self.hasher.needs_rehash(record.password_hash):
            # Parameters were raised since this hash was made; upgrade while we hold the
            # plaintext, which is the only moment we can.
            changes["password_hash"] = await self.hasher.hash(password)
        return await self._update(record.user_id, changes)

    async def change_password(self, user_id: str, current: str, new: str) -> UserRecord:
        record = await self.get(user_id)
        if len(current) > MAX_PASSWORD_LENGTH or not await self.hasher.verify(
            current, record.password_hash
        ):
            # Not UNAUTHENTICATED: the caller's credentials are fine, this field is wrong.
            raise InvalidArgument.field("current_password", "incorrect")
        problems = check_password_policy(new, username=record.username)
        if new == current:
            problems.append("must differ from the current password")
        if problems:
            raise InvalidArgument.of(FieldViolation("new_password", p) for p in problems)
        return await self._update(
            user_id, {"password_hash": await self.hasher.hash(new), "updated_at": self._clock()}
        )

    async def update(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord:
        unknown = [name for name in changes if name not in UPDATABLE_FIELDS]
        if unknown:
            raise InvalidArgument.of(
                FieldViolation(
                    "update_mask",
                    f"{name!r} cannot be updated; updatable: display_name, email, role, disabled",
                )
                for name in unknown
            )
        violations = profile_violations(changes.get("display_name"), changes.get("email"))
        if violations:
            raise InvalidArgument.of(
                FieldViolation("user." + v.field, v.description) for v in violations
            )
        return await self._update(user_id, {**changes, "updated_at": self._clock()})

    async def delete(self, user_id: str) -> None:
        try:
            found = await self.repo.delete(user_id)
        except LastAdminError:
            raise FailedPrecondition("cannot delete the last enabled admin") from None
        if not found:
            raise NotFound("user", user_id)

    async def _update(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord:
        try:
            record = await self.repo.update(user_id, changes)
        except LastAdminError:
            raise FailedPrecondition(
                "this would leave no enabled admin; promote another admin first"
            ) from None
        if record is None:
            raise NotFound("user", user_id)
        return record
