"""UserDefinitionService: converts messages, calls services/user_definitions.py, converts back.

No logic here: access, compiling and storing are the service's; malformed rule text
arrives as InvalidArgument whose field violations read "line:column: problem".
"""

from __future__ import annotations

from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.convert import enum_from_pb
from stratopt.api.user_definition_convert import (
    DEFINITION_KIND_FROM_PB,
    compiled_to_pb,
    constraints_to_pb,
    definition_to_pb,
    fields_from_pb,
    params_to_pb,
)
from stratopt.services.user_definitions import UserDefinitions
from stratopt.v1 import rules_pb2 as pb
from stratopt.v1 import rules_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


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
            constraints=constraints_to_pb(out.constraints),
        )

    async def CreateUserDefinition(
        self, request: pb.CreateUserDefinitionRequest, context: Ctx
    ) -> pb.CreateUserDefinitionResponse:
        view = await self.definitions.create(
            current_principal(), fields_from_pb(request.definition)
        )
        return pb.CreateUserDefinitionResponse(
            definition=definition_to_pb(view), strategy_type=compiled_to_pb(view)
        )

    async def GetUserDefinition(
        self, request: pb.GetUserDefinitionRequest, context: Ctx
    ) -> pb.GetUserDefinitionResponse:
        view = await self.definitions.get(current_principal(), request.definition_id)
        return pb.GetUserDefinitionResponse(
            definition=definition_to_pb(view), strategy_type=compiled_to_pb(view)
        )

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
        return pb.UpdateUserDefinitionResponse(
            definition=definition_to_pb(view), strategy_type=compiled_to_pb(view)
        )

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
