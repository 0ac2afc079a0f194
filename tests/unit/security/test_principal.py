from __future__ import annotations

import pytest

from stratopt.security.errors import PermissionDeniedError
from stratopt.security.principal import Principal
from stratopt.security.roles import ROLE_PERMISSIONS, Permission, Role

P = Permission


def jwt_user(role: Role, user_id: str = "u1") -> Principal:
    return Principal(user_id=user_id, username=user_id, role=role, via="jwt")


def key_user(role: Role, scopes: set[Permission]) -> Principal:
    return Principal(
        user_id="u1", username="u1", role=role, via="api_key", key_id="k1", scopes=frozenset(scopes)
    )


def test_jwt_principal_gets_role_permissions() -> None:
    trader = jwt_user(Role.TRADER)
    assert trader.permissions == ROLE_PERMISSIONS[Role.TRADER]
    assert trader.can(P.RUN_OPTIMIZATIONS)
    assert not trader.can(P.MANAGE_USERS)


def test_api_key_scopes_narrow_the_role() -> None:
    key = key_user(Role.TRADER, {P.READ_STRATEGIES, P.RUN_BACKTESTS})
    assert key.can(P.RUN_BACKTESTS)
    assert not key.can(P.WRITE_STRATEGIES)


def test_api_key_never_exceeds_current_role() -> None:
    """A key made while the user was a trader, used after demotion to viewer."""
    key = key_user(Role.VIEWER, {P.READ_STRATEGIES, P.WRITE_STRATEGIES})
    assert key.permissions == {P.READ_STRATEGIES}


def test_require_raises_permission_denied() -> None:
    with pytest.raises(PermissionDeniedError) as info:
        jwt_user(Role.VIEWER).require(P.RUN_BACKTESTS)
    assert info.value.permission is P.RUN_BACKTESTS
    jwt_user(Role.ANALYST).require(P.RUN_BACKTESTS)


def test_principal_shape_is_validated() -> None:
    with pytest.raises(ValueError):
        Principal("u", "u", Role.ADMIN, via="api_key")
    with pytest.raises(ValueError):
        Principal("u", "u", Role.ADMIN, via="jwt", key_id="k", scopes=frozenset())
