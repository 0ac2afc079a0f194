"""The access table: for every RPC, who may call it, its rate-limit category, and what the
audit trail records. One table, so an RPC cannot be authorized in one place and forgotten in
another, and a unit test fails when an RPC of the contract has no entry here.

An entry's `access` is a `Permission` (the role, intersected with an API key's scopes, must
grant it), `AUTHENTICATED` (any valid caller; the servicer scopes what it returns to the
caller) or `PUBLIC` (no credential: login and token exchange). Ownership is the domain's job:
a permission says "may edit strategies", the catalog says "this one is yours (or shared)".

Methods outside the table are refused (fail closed), except health and reflection.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import grpc
from google.protobuf.descriptor import MethodDescriptor
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.context import current_principal
from stratopt.errors import PermissionDenied
from stratopt.security.principal import Principal
from stratopt.security.ratelimit import Category
from stratopt.security.roles import EXPORT_REPORTS_ONLY_ROLES, Permission, Role

PUBLIC: Literal["public"] = "public"
AUTHENTICATED: Literal["authenticated"] = "authenticated"
Access = Permission | Literal["public", "authenticated"]

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
PACKAGE = "stratopt.v1"


@dataclass(frozen=True)
class Rule:
    access: Access
    category: Category | None = Category.GENERAL
    # Mutating calls are always audited; reads only when refused.
    mutating: bool = False
    # What the audit trail names as the resource, and where its id is (a dotted path in the
    # request, or in the response for calls that create it).
    resource: str = ""
    id_field: str = ""
    response_id_field: str = ""
    # Only with an interactive login (JWT), never with an API key: a leaked key must not be
    # able to mint further keys and outlive its own revocation.
    jwt_only: bool = False
    # Roles refused even though their permissions include `access` (see roles.py).
    deny_roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def public(self) -> bool:
        return self.access == PUBLIC

    def allows(self, principal: Principal) -> bool:
        if self.jwt_only and principal.via != "jwt":
            return False
        if principal.role in self.deny_roles:
            return False
        if isinstance(self.access, Permission):
            return principal.can(self.access)
        return True


_P = Permission
_C = Category


def _read(access: Access, resource: str = "", id_field: str = "", **kw: Any) -> Rule:
    return Rule(access, resource=resource, id_field=id_field, **kw)


def _write(access: Access, resource: str, id_field: str = "", **kw: Any) -> Rule:
    return Rule(access, mutating=True, resource=resource, id_field=id_field, **kw)


_AUTH = {
    "Login": _write(PUBLIC, "user", category=_C.AUTH),
    "RefreshToken": _write(PUBLIC, "session", category=_C.AUTH_IP),
    "Logout": _write(PUBLIC, "session", category=_C.AUTH_IP),
    "GetCurrentUser": _read(AUTHENTICATED),
    # Guessing a password through this call shares the login budget of the username.
    "ChangePassword": _write(AUTHENTICATED, "user", category=_C.AUTH),
    "CreateApiKey": _write(AUTHENTICATED, "api_key", response_id_field="api_key.id", jwt_only=True),
    "ListApiKeys": _read(AUTHENTICATED),
    "RevokeApiKey": _write(AUTHENTICATED, "api_key", "key_id"),
    "RotateApiKey": _write(AUTHENTICATED, "api_key", "key_id", jwt_only=True),
    "CreateUser": _write(_P.MANAGE_USERS, "user", response_id_field="user.id"),
    "GetUser": _read(AUTHENTICATED, "user", "user_id"),
    "ListUsers": _read(_P.MANAGE_USERS),
    "UpdateUser": _write(_P.MANAGE_USERS, "user", "user.id"),
    "DeleteUser": _write(_P.MANAGE_USERS, "user", "user_id"),
    "ListAuditEvents": _read(_P.VIEW_AUDIT),
}

_STRATEGY = {
    "ListStrategyTypes": _read(_P.READ_STRATEGIES),
    "GetStrategyType": _read(_P.READ_STRATEGIES),
    "ListStrategyTemplates": _read(_P.READ_STRATEGIES),
    "ListCategories": _read(_P.READ_STRATEGIES),
    "CreateStrategy": _write(_P.WRITE_STRATEGIES, "strategy", response_id_field="strategy.id"),
    "GetStrategy": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "ListStrategies": _read(_P.READ_STRATEGIES),
    "UpdateStrategy": _write(_P.WRITE_STRATEGIES, "strategy", "strategy.id"),
    "DeleteStrategy": _write(_P.DELETE_STRATEGIES, "strategy", "strategy_id"),
    "ListStrategyHistory": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "ShareStrategy": _write(_P.SHARE_STRATEGIES, "strategy", "strategy_id"),
    "UnshareStrategy": _write(_P.SHARE_STRATEGIES, "strategy", "strategy_id"),
    "ListStrategyShares": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "CreateEnsemble": _write(_P.WRITE_STRATEGIES, "strategy", response_id_field="strategy.id"),
    "CompareStrategies": _read(_P.RUN_BACKTESTS, category=_C.BACKTEST),
    "StartStrategy": _write(_P.EXECUTE_STRATEGIES, "strategy", "strategy_id"),
    "StopStrategy": _write(_P.EXECUTE_STRATEGIES, "strategy", "strategy_id"),
    "ListSignals": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "ListFills": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "ListAlerts": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "StreamSignals": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
    "GetPerformance": _read(_P.VIEW_PERFORMANCE, "strategy", "strategy_id"),
    "StreamPerformance": _read(_P.VIEW_PERFORMANCE, "strategy", "strategy_id"),
    "StreamAlerts": _read(_P.READ_STRATEGIES, "strategy", "strategy_id"),
}

_MARKET_DATA = {
    "ImportBars": _write(
        _P.WRITE_DATA, "dataset", response_id_field="dataset.id", category=_C.DATA
    ),
    "GenerateSyntheticDataset": _write(
        _P.WRITE_DATA, "dataset", response_id_field="dataset.id", category=_C.DATA
    ),
    "GetDataset": _read(_P.READ_DATA, "dataset", "dataset_id"),
    "ListDatasets": _read(_P.READ_DATA),
    "DeleteDataset": _write(_P.WRITE_DATA, "dataset", "dataset_id"),
    "ReadBars": _read(_P.READ_DATA, "dataset", "dataset_id", category=_C.DATA),
    # A feed is market data its owner brings in; strategies run on it with EXECUTE rights.
    "CreateFeed": _write(_P.WRITE_DATA, "feed", response_id_field="feed.id", category=_C.DATA),
    "GetFeed": _read(_P.READ_DATA, "feed", "feed_id"),
    "ListFeeds": _read(_P.READ_DATA),
    "DeleteFeed": _write(_P.WRITE_DATA, "feed", "feed_id"),
    "PushBars": _write(_P.WRITE_DATA, "feed", "feed_id", category=_C.DATA),
}

_BACKTEST = {
    "RunBacktest": _write(
        _P.RUN_BACKTESTS, "backtest", response_id_field="backtest.id", category=_C.BACKTEST
    ),
    "GetBacktest": _read(_P.VIEW_PERFORMANCE, "backtest", "backtest_id"),
    "ListBacktests": _read(_P.VIEW_PERFORMANCE),
    "ListBacktestTrades": _read(_P.VIEW_PERFORMANCE, "backtest", "backtest_id"),
    "DeleteBacktest": _write(_P.RUN_BACKTESTS, "backtest", "backtest_id"),
}

_OPTIMIZATION = {
    "StartOptimization": _write(
        _P.RUN_OPTIMIZATIONS, "job", response_id_field="job.id", category=_C.OPTIMIZATION
    ),
    "BatchStartOptimizations": _write(
        _P.RUN_OPTIMIZATIONS, "job_batch", response_id_field="batch_id", category=_C.OPTIMIZATION
    ),
    "GetJob": _read(_P.VIEW_PERFORMANCE, "job", "job_id"),
    "ListJobs": _read(_P.VIEW_PERFORMANCE),
    "CancelJob": _write(_P.RUN_OPTIMIZATIONS, "job", "job_id"),
    "WatchJob": _read(_P.VIEW_PERFORMANCE, "job", "job_id"),
    "GetOptimizationResult": _read(_P.VIEW_PERFORMANCE, "job", "job_id"),
    "ListTrials": _read(_P.VIEW_PERFORMANCE, "job", "job_id"),
}

_EXPORT = {
    # Analysts export reports but not Pine Script (roles.EXPORT_REPORTS_ONLY_ROLES).
    "ExportPineScript": _write(
        _P.EXPORT,
        "export",
        response_id_field="file.id",
        category=_C.EXPORT,
        deny_roles=EXPORT_REPORTS_ONLY_ROLES,
    ),
    "CreateReport": _write(_P.EXPORT, "export", response_id_field="file.id", category=_C.EXPORT),
    "ListExportFiles": _read(_P.EXPORT),
    "GetExportFile": _read(_P.EXPORT, "export", "export_id"),
    "DownloadExportFile": _read(_P.EXPORT, "export", "export_id", category=_C.EXPORT),
    "DeleteExportFile": _write(_P.EXPORT, "export", "export_id"),
}

# User strategy types and indicators (rules.proto) are strategies' kin: reading and using one
# is READ_STRATEGIES, writing (and a dry validation, which compiles) WRITE_STRATEGIES;
# whether this definition is yours or shared with you is services/access.py's call.
_USER_DEFINITION = {
    "ValidateUserDefinition": _read(_P.WRITE_STRATEGIES),
    "CreateUserDefinition": _write(
        _P.WRITE_STRATEGIES, "user_definition", response_id_field="definition.id"
    ),
    "GetUserDefinition": _read(_P.READ_STRATEGIES, "user_definition", "definition_id"),
    "ListUserDefinitions": _read(_P.READ_STRATEGIES),
    "UpdateUserDefinition": _write(_P.WRITE_STRATEGIES, "user_definition", "definition.id"),
    "DeleteUserDefinition": _write(_P.DELETE_STRATEGIES, "user_definition", "definition_id"),
    "ShareUserDefinition": _write(_P.SHARE_STRATEGIES, "user_definition", "definition_id"),
    "UnshareUserDefinition": _write(_P.SHARE_STRATEGIES, "user_definition", "definition_id"),
}

_SYSTEM = {
    "GetOverview": _read(AUTHENTICATED),
    "ListNotifications": _read(AUTHENTICATED),
    "StreamNotifications": _read(AUTHENTICATED),
    # Webhooks carry one's own notifications out; any caller may manage their own.
    "CreateWebhook": _write(AUTHENTICATED, "webhook", response_id_field="webhook.id"),
    "ListWebhooks": _read(AUTHENTICATED),
    "DeleteWebhook": _write(AUTHENTICATED, "webhook", "webhook_id"),
}


def _service(name: str, rules: Mapping[str, Rule]) -> dict[str, Rule]:
    return {f"/{PACKAGE}.{name}/{method}": rule for method, rule in rules.items()}


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        **_service("AuthService", _AUTH),
        **_service("StrategyService", _STRATEGY),
        **_service("MarketDataService", _MARKET_DATA),
        **_service("BacktestService", _BACKTEST),
        **_service("OptimizationService", _OPTIMIZATION),
        **_service("ExportService", _EXPORT),
        **_service("SystemService", _SYSTEM),
        **_service("UserDefinitionService", _USER_DEFINITION),
    }
)
"""Full method name ("/stratopt.v1.StrategyService/GetStrategy") -> Rule."""

_INFRASTRUCTURE = Rule(PUBLIC, category=None)


def contract_methods() -> list[MethodDescriptor]:
    """Every RPC of every service in the generated `stratopt.v1` package, found by walking
    the modules, so a service or RPC added to the protos is covered without a code change."""
    import stratopt.v1 as package

    methods: list[MethodDescriptor] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                methods.extend(service.methods)
    return methods


def method_path(method: MethodDescriptor) -> str:
    """The path interceptors see, e.g. "/stratopt.v1.StrategyService/GetStrategy"."""
    return f"/{method.containing_service.full_name}/{method.name}"


def rule_for(method_name: str) -> Rule | None:
    """The method's rule; health and reflection are public and unlimited; None = unknown."""
    rule = RULES.get(method_name)
    if rule is None and method_name.startswith(PUBLIC_PREFIXES):
        return _INFRASTRUCTURE
    return rule


def is_public(method_name: str) -> bool:
    rule = rule_for(method_name)
    return rule is not None and rule.public


def denial_reason(rule: Rule, principal: Principal) -> str:
    """What the client is told: which permission is missing (not secret; it helps fix the
    client) but nothing about other users or resources."""
    if rule.jwt_only and principal.via != "jwt":
        return "permission denied: this call needs an interactive login, not an API key"
    if isinstance(rule.access, Permission):
        if principal.role in rule.deny_roles:
            return f"permission denied: not available to the {principal.role.value} role"
        source = "your role and API key scopes" if principal.scopes is not None else "your role"
        return f"permission denied: {rule.access.value} is not granted to {source}"
    return "permission denied"


class AuthorizationInterceptor(AsyncServerInterceptor):
    """Checks the table entry against the principal the auth interceptor set."""

    def __init__(self, rules: Callable[[str], Rule | None] = rule_for) -> None:
        self._rule_for = rules

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        rule = self._rule_for(method_name)
        if rule is None:
            raise PermissionDenied("permission denied: no access rule for this method")
        if not rule.public:
            principal = current_principal()
            if not rule.allows(principal):
                raise PermissionDenied(denial_reason(rule, principal))
        result = method(request_or_iterator, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result
