"""StrategyService: converts messages, calls the catalog, converts back. No logic here."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from stratopt.api import audit
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
    fields_from_pb,
    strategy_dict_to_pb,
    strategy_to_pb,
    strategy_type_to_pb,
)
from stratopt.errors import FieldViolation, InvalidArgument, NotFound
from stratopt.services import templates
from stratopt.services.access import Access
from stratopt.services.sharing import Share, StrategySharing
from stratopt.services.strategies import StrategyCatalog, StrategyQuery
from stratopt.services.users import usernames
from stratopt.services.validation import ENSEMBLE_TYPE, UPDATABLE
from stratopt.strategies import registry
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


class StrategyServicer(pbg.StrategyServiceServicer):
    def __init__(self, catalog: StrategyCatalog) -> None:
        self.catalog = catalog

    async def ListStrategyTypes(
        self, request: pb.ListStrategyTypesRequest, context: Ctx
    ) -> pb.ListStrategyTypesResponse:
        category = enum_from_pb(request.category, CATEGORY_FROM_PB, "category")
        risk = enum_from_pb(request.risk_level, RISK_FROM_PB, "risk_level")
        types = [
            strategy_type_to_pb(t)
            for t in registry.all()
            if (not category or t.category == category) and (not risk or t.risk_level == risk)
        ]
        return pb.ListStrategyTypesResponse(strategy_types=types)

    async def GetStrategyType(
        self, request: pb.GetStrategyTypeRequest, context: Ctx
    ) -> pb.GetStrategyTypeResponse:
        if not request.name:
            raise InvalidArgument.field("name", "required")
        try:
            t = registry.get(request.name)
        except KeyError:
            raise NotFound("strategy type", request.name) from None
        return pb.GetStrategyTypeResponse(strategy_type=strategy_type_to_pb(t))

    async def ListStrategyTemplates(
        self, request: pb.ListStrategyTemplatesRequest, context: Ctx
    ) -> pb.ListStrategyTemplatesResponse:
        category = enum_from_pb(request.category, CATEGORY_FROM_PB, "category")
        out = pb.ListStrategyTemplatesResponse()
        for t in templates.templates():
            if request.strategy_type and t.strategy_type != request.strategy_type:
                continue
            if category and registry.get(t.strategy_type).category != category:
                continue
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
        counts = await self.catalog.category_counts(current_principal())
        type_counts: dict[str, int] = {}
        for t in registry.all():
            type_counts[t.category] = type_counts.get(t.category, 0) + 1
        out = pb.ListCategoriesResponse()
        for name, number in CATEGORY_TO_PB.items():
            out.categories.add(
                category=number,
                strategy_type_count=type_counts.get(name, 0),
                strategy_count=counts.get(name, 0),
            )
        return out

    async def CreateStrategy(
        self, request: pb.CreateStrategyRequest, context: Ctx
    ) -> pb.CreateStrategyResponse:
        p = current_principal()
        if not request.HasField("strategy"):
            raise InvalidArgument.field("strategy", "required")
        fields = fields_from_pb(request.strategy)
        if request.template_id:
            t = templates.get(request.template_id)
            if t is None:
                raise InvalidArgument.field(
                    "template_id", "unknown template; see ListStrategyTemplates"
                )
            fields.strategy_type = fields.strategy_type or t.strategy_type
            if fields.strategy_type == t.strategy_type:
                fields.parameters = {**t.parameters, **fields.parameters}
            fields.execution = {**t.execution, **fields.execution}
            fields.tags = fields.tags or list(t.tags)
        row = await self.catalog.create(p, fields)
        return pb.CreateStrategyResponse(strategy=strategy_to_pb(row, p.username))

    async def CreateEnsemble(
        self, request: pb.CreateEnsembleRequest, context: Ctx
    ) -> pb.CreateEnsembleResponse:
        """An ensemble is a strategy of type "ensemble"; this is CreateStrategy's shortcut."""
        p = current_principal()
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
            row = await self.catalog.create(p, fields)
        except InvalidArgument as e:
            raise InvalidArgument(
                e.message,
                [FieldViolation(_ensemble_field(v.field), v.description) for v in e.violations],
            ) from None
        return pb.CreateEnsembleResponse(strategy=strategy_to_pb(row, p.username))

    async def GetStrategy(
        self, request: pb.GetStrategyRequest, context: Ctx
    ) -> pb.GetStrategyResponse:
        _require_id(request.strategy_id)
        row = await self.catalog.get(current_principal(), request.strategy_id)
        names = await usernames(self.catalog.db, [row.owner_id])
        return pb.GetStrategyResponse(strategy=strategy_to_pb(row, names.get(row.owner_id, "")))

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Ctx
    ) -> pb.ListStrategiesResponse:
        q = StrategyQuery(
            category=enum_from_pb(request.category, CATEGORY_FROM_PB, "category"),
            status=enum_from_pb(request.status, STATUS_FROM_PB, "status"),
            risk_level=enum_from_pb(request.risk_level, RISK_FROM_PB, "risk_level"),
            tags=tuple(sorted({t.strip().lower() for t in request.tags if t.strip()})),
            query=request.query.strip(),
            strategy_type=request.strategy_type.strip(),
            order_by=request.order_by,
            owner_id=request.owner_id,
        )
        page = await self.catalog.list_page(
            current_principal(), q, request.page_size, request.page_token
        )
        names = await usernames(self.catalog.db, [r.owner_id for r in page.rows])
        return pb.ListStrategiesResponse(
            strategies=[strategy_to_pb(r, names.get(r.owner_id, "")) for r in page.rows],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def UpdateStrategy(
        self, request: pb.UpdateStrategyRequest, context: Ctx
    ) -> pb.UpdateStrategyResponse:
        p = current_principal()
        _require_id(request.strategy.id, "strategy.id")
        paths = list(request.update_mask.paths)
        fields = fields_from_pb(request.strategy)
        if not paths:
            paths = list(UPDATABLE)
        row = await self.catalog.update(
            p, request.strategy.id, fields, paths, request.strategy.etag
        )
        names = await usernames(self.catalog.db, [row.owner_id])
        return pb.UpdateStrategyResponse(strategy=strategy_to_pb(row, names.get(row.owner_id, "")))

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
        if not request.access:
            raise InvalidArgument.field("access", "grant at least one access")
        access = [_access_from_pb(a, i) for i, a in enumerate(request.access)]
        share = await StrategySharing(self.catalog.db).share(
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
        await StrategySharing(self.catalog.db).unshare(
            current_principal(), request.strategy_id, request.username
        )
        audit.annotate(detail=f"removed the share of {request.username.strip().lower()}")
        return pb.UnshareStrategyResponse()

    async def ListStrategyShares(
        self, request: pb.ListStrategySharesRequest, context: Ctx
    ) -> pb.ListStrategySharesResponse:
        _require_id(request.strategy_id)
        shares = await StrategySharing(self.catalog.db).list_shares(
            current_principal(), request.strategy_id
        )
        return pb.ListStrategySharesResponse(shares=[_share_to_pb(sh) for sh in shares])


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
