"""The access table covers the whole contract and encodes the roles the product promises."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf.descriptor import Descriptor

from stratopt.api.authz import (
    AUTHENTICATED,
    PUBLIC,
    RULES,
    contract_methods,
    method_path,
    rule_for,
)
from stratopt.security.principal import Principal
from stratopt.security.ratelimit import Category
from stratopt.security.roles import Permission, Role

METHODS = {method_path(m): m for m in contract_methods()}


def jwt(role: Role) -> Principal:
    return Principal(user_id="u", username="u", role=role, via="jwt")


def allowed(role: Role, short: str) -> bool:
    (path,) = [p for p in RULES if p.endswith("/" + short)]
    return RULES[path].allows(jwt(role))


def test_every_rpc_of_the_contract_has_exactly_one_rule() -> None:
    missing = sorted(set(METHODS) - set(RULES))
    stale = sorted(set(RULES) - set(METHODS))
    assert not missing, f"RPCs without an access rule (add them to api/authz.py): {missing}"
    assert not stale, f"rules for RPCs that do not exist: {stale}"
    assert len(METHODS) >= 60  # the walk found the services, not an empty package


def test_unknown_methods_fail_closed_but_infrastructure_is_public() -> None:
    assert rule_for("/stratopt.v1.StrategyService/NoSuchThing") is None
    assert rule_for("/other.Service/Method") is None
    health = rule_for("/grpc.health.v1.Health/Check")
    assert health is not None and health.public and health.category is None
    refl = rule_for("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert refl is not None and refl.public


def _field_exists(message: Descriptor, path: str) -> bool:
    for name in path.split("."):
        field = message.fields_by_name.get(name)
        if field is None:
            return False
        if field.message_type is not None:
            message = field.message_type
    return True


def test_audit_id_paths_name_real_fields() -> None:
    for path, rule in RULES.items():
        m = METHODS[path]
        if rule.id_field:
            assert _field_exists(m.input_type, rule.id_field), (path, rule.id_field)
        if rule.response_id_field:
            assert _field_exists(m.output_type, rule.response_id_field), path


def test_only_login_and_token_exchange_are_public() -> None:
    public = sorted(p.rsplit("/", 1)[1] for p, r in RULES.items() if r.access == PUBLIC)
    assert public == ["Login", "Logout", "RefreshToken"]


def test_streaming_rpcs_are_checked_like_unary_ones() -> None:
    streams = [p for p, m in METHODS.items() if m.server_streaming]
    assert streams, "the contract has server-streaming RPCs"
    for path in streams:
        assert RULES[path].access != PUBLIC, path


def test_admin_may_call_everything() -> None:
    assert all(rule.allows(jwt(Role.ADMIN)) for rule in RULES.values())


def test_viewer_reads_but_changes_nothing_except_their_own_credentials() -> None:
    self_service = {
        "Login", "RefreshToken", "Logout", "ChangePassword",
        "CreateApiKey", "RevokeApiKey", "RotateApiKey",
        # Where one's own notifications are delivered: nothing shared changes.
        "CreateWebhook", "DeleteWebhook",
    }  # fmt: skip
    for path, rule in RULES.items():
        name = path.rsplit("/", 1)[1]
        if rule.mutating and name not in self_service:
            assert not rule.allows(jwt(Role.VIEWER)), name
    for name in ("GetStrategy", "ListStrategies", "ListDatasets", "ReadBars", "GetBacktest"):
        assert allowed(Role.VIEWER, name), name


def test_analyst_backtests_and_compares_but_does_not_trade_or_optimize() -> None:
    for name in ("RunBacktest", "CompareStrategies", "GetPerformance", "CreateReport"):
        assert allowed(Role.ANALYST, name), name
    for name in (
        "CreateStrategy", "UpdateStrategy", "StartStrategy", "StartOptimization",
        "ExportPineScript", "ShareStrategy", "DeleteStrategy", "ListUsers",
    ):  # fmt: skip
        assert not allowed(Role.ANALYST, name), name


def test_trader_owns_the_strategy_lifecycle_but_not_users_or_audit() -> None:
    for name in (
        "CreateStrategy", "UpdateStrategy", "DeleteStrategy", "StartStrategy", "StopStrategy",
        "CreateEnsemble", "ShareStrategy", "RunBacktest", "StartOptimization", "CancelJob",
        "ExportPineScript", "CreateReport", "ImportBars",
    ):  # fmt: skip
        assert allowed(Role.TRADER, name), name
    for name in ("CreateUser", "ListUsers", "UpdateUser", "DeleteUser", "ListAuditEvents"):
        assert not allowed(Role.TRADER, name), name


def test_api_key_scopes_narrow_and_cannot_mint_keys() -> None:
    key = Principal(
        "u", "u", Role.TRADER, via="api_key", key_id="k",
        scopes=frozenset({Permission.READ_STRATEGIES}),
    )  # fmt: skip
    get = RULES["/stratopt.v1.StrategyService/GetStrategy"]
    create = RULES["/stratopt.v1.StrategyService/CreateStrategy"]
    me = RULES["/stratopt.v1.AuthService/GetCurrentUser"]
    assert get.allows(key) and me.allows(key) and not create.allows(key)
    for name in ("CreateApiKey", "RotateApiKey"):
        assert not RULES[f"/stratopt.v1.AuthService/{name}"].allows(key)


def test_categories_put_heavy_work_in_its_own_bucket() -> None:
    def cat(name: str) -> Category | None:
        (path,) = [p for p in RULES if p.endswith("/" + name)]
        return RULES[path].category

    assert cat("RunBacktest") is Category.BACKTEST
    assert cat("CompareStrategies") is Category.BACKTEST
    assert cat("StartOptimization") is Category.OPTIMIZATION
    assert cat("ExportPineScript") is Category.EXPORT
    assert cat("ImportBars") is Category.DATA
    assert cat("Login") is Category.AUTH
    assert cat("GetStrategy") is Category.GENERAL
    assert all(r.category is not None for r in RULES.values())
    assert all(r.access in (PUBLIC, AUTHENTICATED) or isinstance(r.access, Permission)
               for r in RULES.values())  # fmt: skip


def test_the_security_page_lists_every_rpc_as_the_table_does() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "security.md").read_text()
    rows = dict(
        (m["rpc"], (m["access"], m["category"]))
        for m in re.finditer(
            r"^\| `(?P<rpc>\w+\.\w+)` \| (?P<access>\w+) \| (?P<category>\w+) \|", doc, re.M
        )
    )
    want = {}
    for path, rule in RULES.items():
        service, method = path.strip("/").split("/")
        access = rule.access.value if isinstance(rule.access, Permission) else rule.access
        assert rule.category is not None
        want[f"{service.rsplit('.', 1)[1]}.{method}"] = (access, rule.category.value)
    assert rows == want, "docs/security.md 'Every RPC' is out of date with api/authz.py"
