"""Domain errors, raised by any package and turned into gRPC statuses in one place (api/).

Each error maps to exactly one status code, so a servicer never chooses codes itself and a
new failure mode cannot leak out as INTERNAL.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass

ECHO_MAX = 64
"""How much of a caller's value an error message repeats (ids are 32 characters)."""


def clip(text: str, limit: int = ECHO_MAX) -> str:
    """`text`, shortened to about `limit` characters with a note of how much was cut, so
    an error about a hostile value never carries the value whole."""
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 20, 1)]}... ({len(text):,} characters)"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class StratoptError(Exception):
    """Base of every error a client is meant to see; the message is safe to show."""

    code_name = "INTERNAL"
    reason = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(StratoptError):
    code_name = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)

    @classmethod
    def of(cls, violations: Iterable[FieldViolation]) -> InvalidArgument:
        vs = list(violations)
        summary = "; ".join(f"{clip(v.field, 100)}: {clip(v.description, 200)}" for v in vs[:3])
        more = f" (and {len(vs) - 3} more)" if len(vs) > 3 else ""
        return cls(f"invalid request: {summary}{more}", vs)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls.of([FieldViolation(field, description)])


class NotFound(StratoptError):
    code_name = "NOT_FOUND"
    reason = "NOT_FOUND"

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"{resource_type} {clip(resource_id)!r} not found")
        self.resource_type = resource_type
        self.resource_id = resource_id


class AlreadyExists(StratoptError):
    code_name = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class PermissionDenied(StratoptError):
    code_name = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class Unauthenticated(StratoptError):
    code_name = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class FailedPrecondition(StratoptError):
    code_name = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class Aborted(StratoptError):
    code_name = "ABORTED"
    reason = "ABORTED"


class ResourceExhausted(StratoptError):
    code_name = "RESOURCE_EXHAUSTED"
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_seconds: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unimplemented(StratoptError):
    code_name = "UNIMPLEMENTED"
    reason = "UNIMPLEMENTED"


class Unavailable(StratoptError):
    """A dependency (the database, a shutting-down server) is out for a while: the same call
    will work later, and the status carries a RetryInfo saying when to try again."""

    code_name = "UNAVAILABLE"
    reason = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_seconds: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class StorageFull(ResourceExhausted):
    """The server's disk (or a file size limit) refused a write: nothing partial was kept,
    and the call may succeed once an operator frees space."""

    reason = "STORAGE_FULL"


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""OSError numbers that mean "no room to write": disk full, quota, file size limit."""


def storage_full(exc: BaseException) -> StorageFull | None:
    """The client-facing error for a write the disk refused, or None for any other error."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return StorageFull(
            "the server has no room to write this (disk full); nothing was stored, "
            "try again later or ask the operator to free space",
            retry_after_seconds=60.0,
        )
    return None
