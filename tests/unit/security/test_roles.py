from __future__ import annotations

import pytest

from stratopt.security.roles import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    has_permission,
    parse_permission,
    parse_role,
)

P = Permission
ADMIN_ONLY = {P.MANAGE_USERS, P.MANAGE_SYSTEM, P.VIEW_AUDIT}


def test_admin_has_everything() -> None:
    assert all(has_permission(Role.ADMIN, p) for p in Permission)


def test_roles_are_nested() -> None:
    viewer, analyst, trader, admin = (
        ROLE_PERMISSIONS[r] for r in (Role.VIEWER, Role.ANALYST, Role.TRADER, Role.ADMIN)
    )
    assert viewer < analyst < trader < admin


def test_viewer_is_read_only() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {P.READ_STRATEGIES, P.READ_DATA, P.VIEW_PERFORMANCE}


def test_analyst_studies_but_never_changes() -> None:
    analyst = ROLE_PERMISSIONS[Role.ANALYST]
    assert {P.READ_STRATEGIES, P.RUN_BACKTESTS, P.VIEW_PERFORMANCE, P.READ_DATA, P.EXPORT} <= (
        analyst
    )
    forbidden = {
        P.WRITE_STRATEGIES,
        P.EXECUTE_STRATEGIES,
        P.DELETE_STRATEGIES,
        P.SHARE_STRATEGIES,
        P.RUN_OPTIMIZATIONS,
        P.WRITE_DATA,
    }
    assert not analyst & forbidden
    assert not analyst & ADMIN_ONLY


def test_trader_owns_the_lifecycle_but_not_the_system() -> None:
    trader = ROLE_PERMISSIONS[Role.TRADER]
    assert trader == set(Permission) - ADMIN_ONLY


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("trader", Role.TRADER),
        ("ADMIN", Role.ADMIN),
        ("ROLE_VIEWER", Role.VIEWER),
        (" analyst ", Role.ANALYST),
    ],
)
def test_parse_role(text: str, role: Role) -> None:
    assert parse_role(text) is role


def test_parse_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        parse_role("root")
    with pytest.raises(ValueError):
        parse_permission("sudo")
    assert parse_permission("PERMISSION_EXPORT") is P.EXPORT
    assert Role("trader") == "trader"  # str values: safe in JSON, JWT claims and SQL
