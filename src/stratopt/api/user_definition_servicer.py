"""UserDefinitionService: converts messages, calls services/user_definitions.py, converts back.

No logic here: access, compiling and storing are the service's; malformed rule text
arrives as InvalidArgument whose field violations read "line:column: problem".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.convert import KIND_TO_PB, enum_from_pb, param_to_pb, ts_to_pb
from stratopt.services.user_definitions import DefinitionFields, DefinitionView, UserDefinitions
from stratopt.strategies.params import ParamSpec
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import rules_pb2 as pb
from stratopt.v1 import rules_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext

DEFINITION_KIND_TO_PB = {
    "strategy": pb.USER_DEFINITION_KIND_STRATEGY,
    "indicator": pb.USER_DEFINITION_KIND_INDICATOR,
}
DEFINITION_KIND_FROM_PB = {v: k for k, v in DEFINITION_KIND_TO_PB.items()}


def params_to_pb(params: Iterable[ParamSpec]) -> list[c.ParameterSpec]:
    out = []
    for p in params:
        spec = c.ParameterSpec(
            name=p.name,
            kind=KIND_TO_PB[p.kind],  # type: ignore[arg-type]
            min=float(p.low) if p.low is not None else 0.0,
            max=float(p.high) if p.high is not None else 0.0,
            step=float(p.step) if p.step is not None else 0.0,
            choices=list(p.choices),
            log_scale=bool(p.log),
            description=p.description,
        )
        spec.default_value.CopyFrom(param_to_pb(p.default))
        out.append(spec)
    return out


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


def fields_from_pb(d: pb.UserDefinition) -> DefinitionFields:
    return DefinitionFields(
        kind=enum_from_pb(d.kind, DEFINITION_KIND_FROM_PB, "definition.kind"),
        name=d.name,
        description=d.description,
        source=d.source,
        etag=d.etag,
    )


class UserDefinitionServicer(pbg.UserDefinitionServiceServicer):
    def __init__(self, definitions: UserDefinitions) -> None:
        self.definitions = definitions

    async def ValidateUserDefinition(
        self, request: pb.ValidateUserDefinitionRequest, context: Ctx
    ) -> pb.ValidateUserDefinitionResponse:
        out = await self.definitions.validate(
            current_principal(),
            enum_from_pb(request.kind, DEFINITION_KIND_FROM_PB, "kind"),
            request.source,
            request.name,
        )
        return pb.ValidateUserDefinitionResponse(
            valid=out.valid,
            problems=[
                pb.DefinitionProblem(line=p.line, column=p.column, message=p.message)
                for p in out.problems
            ],
            parameters=params_to_pb(out.params),
            indicators=list(out.indicators),
        )

    async def CreateUserDefinition(
        self, request: pb.CreateUserDefinitionRequest, context: Ctx
    ) -> pb.CreateUserDefinitionResponse:
        view = await self.definitions.create(
            current_principal(), fields_from_pb(request.definition)
        )
        return pb.CreateUserDefinitionResponse(definition=definition_to_pb(view))

    async def GetUserDefinition(
        self, request: pb.GetUserDefinitionRequest, context: Ctx
    ) -> pb.GetUserDefinitionResponse:
        view = await self.definitions.get(current_principal(), request.definition_id)
        return pb.GetUserDefinitionResponse(definition=definition_to_pb(view))

    async def ListUserDefinitions(
        self, request: pb.ListUserDefinitionsRequest, context: Ctx
    ) -> pb.ListUserDefinitionsResponse:
        views, token = await self.definitions.list_page(
            current_principal(),
            enum_from_pb(request.kind, DEFINITION_KIND_FROM_PB, "kind"),
            request.page_size,
            request.page_token,
        )
        return pb.ListUserDefinitionsResponse(
            definitions=[definition_to_pb(v) for v in views], next_page_token=token
        )

    async def UpdateUserDefinition(
        self, request: pb.UpdateUserDefinitionRequest, context: Ctx
    ) -> pb.UpdateUserDefinitionResponse:
        view = await self.definitions.update(
            current_principal(),
            request.definition.id,
            fields_from_pb(request.definition),
            list(request.update_mask.paths),
        )
        return pb.UpdateUserDefinitionResponse(definition=definition_to_pb(view))

    async def DeleteUserDefinition(
        self, request: pb.DeleteUserDefinitionRequest, context: Ctx
    ) -> pb.DeleteUserDefinitionResponse:
        await self.definitions.delete(current_principal(), request.definition_id)
        return pb.DeleteUserDefinitionResponse()

    async def ShareUserDefinition(
        self, request: pb.ShareUserDefinitionRequest, context: Ctx
    ) -> pb.ShareUserDefinitionResponse:
        view = await self.definitions.share(
            current_principal(), request.definition_id, request.username
        )
        return pb.ShareUserDefinitionResponse(definition=definition_to_pb(view))

    async def UnshareUserDefinition(
        self, request: pb.UnshareUserDefinitionRequest, context: Ctx
    ) -> pb.UnshareUserDefinitionResponse:
        await self.definitions.unshare(current_principal(), request.definition_id, request.username)
        return pb.UnshareUserDefinitionResponse()
