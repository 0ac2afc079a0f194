"""Roles, permissions and the table that joins them.

Permissions say *which kind of action* a role may perform. Whether the action applies to a
particular resource (a trader may modify *their own* strategies, not a colleague's) is an
ownership question answered by `services/access.py`, not by this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    ANALYST = "analyst"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ_STRATEGIES = "read_strategies"
    WRITE_STRATEGIES = "write_strategies"
    EXECUTE_STRATEGIES = "execute_strategies"
    DELETE_STRATEGIES = "delete_strategies"
    SHARE_STRATEGIES = "share_strategies"
    MANAGE_USERS = "manage_users"
    VIEW_PERFORMANCE = "view_performance"
    RUN_BACKTESTS = "run_backtests"
    RUN_OPTIMIZATIONS = "run_optimizations"
    EXPORT = "export"
    READ_DATA = "read_data"
    WRITE_DATA = "write_data"
    MANAGE_SYSTEM = "manage_system"
    VIEW_AUDIT = "view_audit"


_P = Permission

_VIEWER = frozenset({_P.READ_STRATEGIES, _P.READ_DATA, _P.VIEW_PERFORMANCE})

# Analysts study strategies (backtest, compare, report) but never change or run them live.
# EXPORT is granted whole; restricting analysts to report formats (no Pine Script) is a
# per-format decision the export servicer makes with `EXPORT_REPORTS_ONLY_ROLES`.
_ANALYST = _VIEWER | {_P.RUN_BACKTESTS, _P.EXPORT}

# Traders own the full strategy lifecycle; "ensembles" are strategies, so no extra permission.
_TRADER = _ANALYST | {
    _P.WRITE_STRATEGIES,
    _P.EXECUTE_STRATEGIES,
    _P.DELETE_STRATEGIES,
    _P.SHARE_STRATEGIES,
    _P.RUN_OPTIMIZATIONS,
    _P.WRITE_DATA,
}

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Permission),
        Role.TRADER: frozenset(_TRADER),
        Role.ANALYST: frozenset(_ANALYST),
        Role.VIEWER: _VIEWER,
    }
)

EXPORT_REPORTS_ONLY_ROLES: frozenset[Role] = frozenset({Role.ANALYST})
"""Roles whose EXPORT covers reports (JSON/CSV/HTML/PDF) but not Pine Script."""


def has_permission(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def parse_role(value: str) -> Role:
    """Accept "trader", "TRADER" or the proto spelling "ROLE_TRADER"; ValueError otherwise."""
    name = value.strip().lower().removeprefix("role_")
    try:
        return Role(name)
    except ValueError:
        raise ValueError(f"unknown role {value!r}") from None


def parse_permission(value: str) -> Permission:
    """Accept "export", "EXPORT" or "PERMISSION_EXPORT"; ValueError otherwise."""
    name = value.strip().lower().removeprefix("permission_")
    try:
        return Permission(name)
    except ValueError:
        raise ValueError(f"unknown permission {value!r}") from None
