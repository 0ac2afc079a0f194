"""StrategyService: converts messages, calls the catalog, converts back. No logic here."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from stratopt.api import audit
from stratopt.api.compare_convert import comparison_spec_from_pb, comparison_to_pb
from stratopt.api.context import current_principal
from stratopt.api.convert import (
    CATEGORY_FROM_PB,
    CATEGORY_TO_PB,
    RISK_FROM_PB,
    enum_from_pb,
    execution_to_pb,
    fill_params,
    ts_to_pb,
)
from stratopt.api.strategy_convert import (
    HISTORY_TO_PB,
    STATUS_FROM_PB,
    StrategyMessages,
    fields_from_pb,
    strategy_dict_to_pb,
    strategy_to_pb,
    strategy_type_to_pb,
)
from stratopt.api.strategy_live import LiveStrategyMethods
from stratopt.api.user_definition_convert import compiled_to_pb
from stratopt.errors import FieldViolation, InvalidArgument, Unimplemented
from stratopt.services import templates
from stratopt.services.access import Access
from stratopt.services.compare import StrategyComparison
from stratopt.services.live import LiveService
from stratopt.services.sharing import Share, StrategySharing
from stratopt.services.strategies import (
    StrategyCatalog,
    StrategyQuery,
    strategy_type,
    strategy_types,
)
from stratopt.services.user_definitions import UserDefinitions
from stratopt.services.validation import ENSEMBLE_TYPE
from stratopt.strategies.user_types import is_user_type, user_types_match
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


class StrategyServicer(LiveStrategyMethods, pbg.StrategyServiceServicer):
    """Paper-trading RPCs live in `api.strategy_live`."""

    def __init__(
        self,
        catalog: StrategyCatalog,
        sharing: StrategySharing,
        live: LiveService,
        compare: StrategyComparison | None = None,
        definitions: UserDefinitions | None = None,
    ) -> None:
        self.catalog = catalog
        self.sharing = sharing
        self.live = live
        self.compare = compare
        self.definitions = definitions
        self._messages = StrategyMessages()

    async def ListStrategyTypes(
        self, request: pb.ListStrategyTypesRequest, context: Ctx
    ) -> pb.ListStrategyTypesResponse:
        category = enum_from_pb(request.category, CATEGORY_FROM_PB, "category")
        risk_level = enum_from_pb(request.risk_level, RISK_FROM_PB, "risk_level")
        out = [strategy_type_to_pb(t) for t in strategy_types(category, risk_level)]
        # The caller's own and shared user types follow the built-ins, filed like them.
        if self.definitions is not None and user_types_match(category, risk_level):
            views = await self.definitions.strategy_types(current_principal())
            out += [t for t in map(compiled_to_pb, views) if t is not None]
        return pb.ListStrategyTypesResponse(strategy_types=out)

    async def GetStrategyType(
        self, request: pb.GetStrategyTypeRequest, context: Ctx
    ) -> pb.GetStrategyTypeResponse:
        if not request.name:
            raise InvalidArgument.field("name", "required")
        if self.definitions is not None and is_user_type(request.name):
            view = await self.definitions.strategy_type(current_principal(), request.name)
            return pb.GetStrategyTypeResponse(strategy_type=compiled_to_pb(view))
        t = strategy_type(request.name)
        return pb.GetStrategyTypeResponse(strategy_type=strategy_type_to_pb(t))

    async def ListStrategyTemplates(
        self, request: pb.ListStrategyTemplatesRequest, context: Ctx
    ) -> pb.ListStrategyTemplatesResponse:
        category = enum_from_pb(request.category, CATEGORY_FROM_PB, "category")
        out = pb.ListStrategyTemplatesResponse()
        for t in templates.list_templates(request.strategy_type, category):
            msg = out.templates.add(
                id=t.id,
                display_name=t.display_name,
                description=t.description,
                strategy_type=t.strategy_type,
                execution=execution_to_pb(t.execution),
                tags=list(t.tags),
            )
            fill_params(msg.parameters, t.parameters)
        return out

    async def ListCategories(
        self, request: pb.ListCategoriesRequest, context: Ctx
    ) -> pb.ListCategoriesResponse:
        out = pb.ListCategoriesResponse()
        for c in await self.catalog.categories(current_principal()):
            out.categories.add(
                category=CATEGORY_TO_PB[c.category],  # type: ignore[arg-type]
                strategy_type_count=c.strategy_type_count,
                strategy_count=c.strategy_count,
            )
        return out

    async def CreateStrategy(
        self, request: pb.CreateStrategyRequest, context: Ctx
    ) -> pb.CreateStrategyResponse:
        if not request.HasField("strategy"):
            raise InvalidArgument.field("strategy", "required")
        view = await self.catalog.create(
            current_principal(), fields_from_pb(request.strategy), request.template_id
        )
        return pb.CreateStrategyResponse(strategy=strategy_to_pb(view))

    async def CreateEnsemble(
        self, request: pb.CreateEnsembleRequest, context: Ctx
    ) -> pb.CreateEnsembleResponse:
        """An ensemble is a strategy of type "ensemble"; this is CreateStrategy's shortcut."""
        fields = fields_from_pb(
            pb.Strategy(
                name=request.name,
                description=request.description,
                strategy_type=ENSEMBLE_TYPE,
                ensemble_members=request.members,
                ensemble_method=request.method,
                tags=request.tags,
            )
        )
        try:
            view = await self.catalog.create(current_principal(), fields)
        except InvalidArgument as e:
            raise InvalidArgument(
                e.message,
                [FieldViolation(_ensemble_field(v.field), v.description) for v in e.violations],
            ) from None
        return pb.CreateEnsembleResponse(strategy=strategy_to_pb(view))

    async def GetStrategy(
        self, request: pb.GetStrategyRequest, context: Ctx
    ) -> pb.GetStrategyResponse:
        _require_id(request.strategy_id)
        view = await self.catalog.get(current_principal(), request.strategy_id)
        return pb.GetStrategyResponse(strategy=self._messages.of(view))

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Ctx
    ) -> pb.ListStrategiesResponse:
        q = StrategyQuery(
            category=enum_from_pb(request.category, CATEGORY_FROM_PB, "category"),
            status=enum_from_pb(request.status, STATUS_FROM_PB, "status"),
            risk_level=enum_from_pb(request.risk_level, RISK_FROM_PB, "risk_level"),
            tags=tuple(request.tags),
            query=request.query,
            strategy_type=request.strategy_type,
            order_by=request.order_by,
            owner_id=request.owner_id,
        )
        page = await self.catalog.list_page(
            current_principal(), q, request.page_size, request.page_token
        )
        return pb.ListStrategiesResponse(
            strategies=[strategy_to_pb(v) for v in page.rows],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def UpdateStrategy(
        self, request: pb.UpdateStrategyRequest, context: Ctx
    ) -> pb.UpdateStrategyResponse:
        _require_id(request.strategy.id, "strategy.id")
        view = await self.catalog.update(
            current_principal(),
            request.strategy.id,
            fields_from_pb(request.strategy),
            list(request.update_mask.paths),
            request.strategy.etag,
        )
        return pb.UpdateStrategyResponse(strategy=strategy_to_pb(view))

    async def DeleteStrategy(
        self, request: pb.DeleteStrategyRequest, context: Ctx
    ) -> pb.DeleteStrategyResponse:
        _require_id(request.strategy_id)
        await self.catalog.delete(current_principal(), request.strategy_id)
        return pb.DeleteStrategyResponse()

    async def ListStrategyHistory(
        self, request: pb.ListStrategyHistoryRequest, context: Ctx
    ) -> pb.ListStrategyHistoryResponse:
        _require_id(request.strategy_id)
        rows, token = await self.catalog.history(
            current_principal(), request.strategy_id, request.page_size, request.page_token
        )
        out = pb.ListStrategyHistoryResponse(next_page_token=token)
        for h in rows:
            out.events.add(
                id=h.id,
                strategy_id=h.strategy_id,
                action=HISTORY_TO_PB.get(h.action, 0),  # type: ignore[arg-type]
                time=ts_to_pb(h.time),
                actor_id=h.actor_id,
                actor_username=h.actor_username,
                version=h.version,
                changed_fields=list(h.changed_fields),
                snapshot=strategy_dict_to_pb(h.snapshot),
            )
        return out

    async def ShareStrategy(
        self, request: pb.ShareStrategyRequest, context: Ctx
    ) -> pb.ShareStrategyResponse:
        _require_id(request.strategy_id)
        access = [_access_from_pb(a, i) for i, a in enumerate(request.access)]
        share = await self.sharing.share(
            current_principal(), request.strategy_id, request.username, access
        )
        audit.annotate(
            detail=f"granted {', '.join(a.value for a in share.access)} to {share.username}"
        )
        return pb.ShareStrategyResponse(share=_share_to_pb(share))

    async def UnshareStrategy(
        self, request: pb.UnshareStrategyRequest, context: Ctx
    ) -> pb.UnshareStrategyResponse:
        _require_id(request.strategy_id)
        username = await self.sharing.unshare(
            current_principal(), request.strategy_id, request.username
        )
        audit.annotate(detail=f"removed the share of {username}")
        return pb.UnshareStrategyResponse()

    async def ListStrategyShares(
        self, request: pb.ListStrategySharesRequest, context: Ctx
    ) -> pb.ListStrategySharesResponse:
        _require_id(request.strategy_id)
        shares = await self.sharing.list_shares(current_principal(), request.strategy_id)
        return pb.ListStrategySharesResponse(shares=[_share_to_pb(sh) for sh in shares])

    async def CompareStrategies(
        self, request: pb.CompareStrategiesRequest, context: Ctx
    ) -> pb.CompareStrategiesResponse:
        if self.compare is None:
            raise Unimplemented("StrategyService.CompareStrategies is not configured")
        result = await self.compare.compare(current_principal(), comparison_spec_from_pb(request))
        return comparison_to_pb(result)


_ACCESS_TO_PB = {a: pb.StrategyAccess.Value(f"STRATEGY_ACCESS_{a.name}") for a in Access}
_ACCESS_FROM_PB = {v: k for k, v in _ACCESS_TO_PB.items()}


def _access_from_pb(value: int, index: int) -> Access:
    try:
        return _ACCESS_FROM_PB[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument.field(
            f"access[{index}]", "READ, WRITE, EXECUTE, DELETE or SHARE"
        ) from None


def _share_to_pb(share: Share) -> pb.StrategyShare:
    return pb.StrategyShare(
        strategy_id=share.strategy_id,
        user_id=share.user_id,
        username=share.username,
        access=[_ACCESS_TO_PB[a] for a in share.access],
        create_time=ts_to_pb(share.created_at),
    )


def _ensemble_field(path: str) -> str:
    """strategy.ensemble_members[0].weight -> members[0].weight, in CreateEnsemble's terms."""
    path = path.removeprefix("strategy.")
    for ours, theirs in (("ensemble_members", "members"), ("ensemble_method", "method")):
        if path.startswith(ours):
            return theirs + path[len(ours) :]
    return path


def _require_id(value: str, field: str = "strategy_id") -> None:
    if not value:
        raise InvalidArgument.field(field, "required")
    if len(value) > 64:
        raise InvalidArgument.field(field, "too long")
