"""UserDefinition <-> proto, and a user strategy type as the StrategyType message that
GetStrategyType shows for built-ins (used by both servicers that answer with one)."""

from __future__ import annotations

from collections.abc import Iterable

from stratopt.api.convert import (
    CATEGORY_TO_PB,
    RISK_TO_PB,
    enum_from_pb,
    param_spec_to_pb,
    ts_to_pb,
)
from stratopt.services.user_definitions import DefinitionFields, DefinitionView
from stratopt.strategies.params import Constraint, ParamSpec
from stratopt.strategies.user_types import CATEGORY, RISK_LEVEL
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import rules_pb2 as pb
from stratopt.v1 import strategy_pb2 as s_pb

DEFINITION_KIND_TO_PB = {
    "strategy": pb.USER_DEFINITION_KIND_STRATEGY,
    "indicator": pb.USER_DEFINITION_KIND_INDICATOR,
}
DEFINITION_KIND_FROM_PB = {v: k for k, v in DEFINITION_KIND_TO_PB.items()}


def params_to_pb(params: Iterable[ParamSpec]) -> list[c.ParameterSpec]:
    return [param_spec_to_pb(p) for p in params]


def definition_to_pb(v: DefinitionView) -> pb.UserDefinition:
    return pb.UserDefinition(
        id=v.id,
        kind=DEFINITION_KIND_TO_PB[v.kind],  # type: ignore[arg-type]
        name=v.name,
        description=v.description,
        source=v.source,
        strategy_type=v.strategy_type,
        parameters=params_to_pb(v.params),
        owner_id=v.owner_id,
        owner_username=v.owner_username,
        shared_with=list(v.shared_with),
        version=v.version,
        etag=v.etag,
        create_time=ts_to_pb(v.created_at),
        update_time=ts_to_pb(v.updated_at),
        indicators=list(v.indicators),
    )


def compiled_to_pb(v: DefinitionView) -> s_pb.StrategyType | None:
    """A strategy definition's type as GetStrategyType shows built-ins; None for indicators."""
    if v.kind != "strategy":
        return None
    return s_pb.StrategyType(
        name=v.strategy_type,
        display_name=v.name,
        description=v.description,
        category=CATEGORY_TO_PB[CATEGORY],  # type: ignore[arg-type]
        risk_level=RISK_TO_PB[RISK_LEVEL],  # type: ignore[arg-type]
        parameters=params_to_pb(v.params),
        constraints=constraints_to_pb(v.constraints),
    )


def constraints_to_pb(constraints: Iterable[Constraint]) -> list[c.ParameterConstraint]:
    return [c.ParameterConstraint(left=x.left, op=x.op, right=x.right) for x in constraints]


def fields_from_pb(d: pb.UserDefinition) -> DefinitionFields:
    return DefinitionFields(
        kind=enum_from_pb(d.kind, DEFINITION_KIND_FROM_PB, "definition.kind"),
        name=d.name,
        description=d.description,
        source=d.source,
        etag=d.etag,
    )
