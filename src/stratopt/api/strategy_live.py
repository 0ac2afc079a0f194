"""StrategyService's paper-trading RPCs: translate, call `services.live`, translate back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.convert import execution_from_pb, pb_to_ns
from stratopt.api.live_convert import alert_to_pb, fill_to_pb, performance_to_pb, signal_to_pb
from stratopt.api.strategy_convert import strategy_to_pb
from stratopt.errors import InvalidArgument, Unavailable
from stratopt.live.events import Kind, LiveEvent
from stratopt.services.live import LiveService, StartRequest
from stratopt.services.strategies import StrategyCatalog
from stratopt.v1 import strategy_pb2 as pb

Ctx: TypeAlias = grpc.aio.ServicerContext
_PageRequest: TypeAlias = pb.ListSignalsRequest | pb.ListFillsRequest | pb.ListAlertsRequest

MIN_INTERVAL_S, MAX_INTERVAL_S = 1, 60

# A signal goes to every subscriber of its strategy at once: its message is built once and
# the same (never modified) object is handed to each stream, instead of one conversion per
# subscriber. Keyed by (strategy, sequence, dropped); the oldest entries go first.
_RESPONSE_CACHE_SIZE = 256
_SIGNAL_RESPONSES: dict[tuple[str, int, int], pb.StreamSignalsResponse] = {}


class LiveStrategyMethods:
    """Mixed into StrategyServicer; needs `catalog` and `live`."""

    catalog: StrategyCatalog
    live: LiveService

    async def StartStrategy(
        self, request: pb.StartStrategyRequest, context: Ctx
    ) -> pb.StartStrategyResponse:
        principal = current_principal()
        req = StartRequest(
            strategy_id=request.strategy_id.strip(),
            dataset_id=request.dataset_id.strip(),
            feed_id=request.feed_id.strip(),
            symbol=request.symbol,
            start_ns=pb_to_ns(request.start_time) if request.HasField("start_time") else 0,
            bars_per_second=request.bars_per_second,
            warmup_bars=request.warmup_bars,
            execution=execution_from_pb(request.execution, "execution")
            if request.HasField("execution")
            else None,
        )
        strategy_id = await self.live.start(principal, req)
        view = await self.catalog.get(principal, strategy_id)
        return pb.StartStrategyResponse(strategy=strategy_to_pb(view))

    async def StopStrategy(
        self, request: pb.StopStrategyRequest, context: Ctx
    ) -> pb.StopStrategyResponse:
        principal = current_principal()
        strategy_id = await self.live.stop(
            principal, _required(request.strategy_id), request.close_position
        )
        view = await self.catalog.get(principal, strategy_id)
        return pb.StopStrategyResponse(strategy=strategy_to_pb(view))

    async def ListSignals(
        self, request: pb.ListSignalsRequest, context: Ctx
    ) -> pb.ListSignalsResponse:
        events, token = await self._page(request, "signal")
        return pb.ListSignalsResponse(
            signals=[signal_to_pb(e) for e in events], next_page_token=token
        )

    async def ListFills(self, request: pb.ListFillsRequest, context: Ctx) -> pb.ListFillsResponse:
        events, token = await self._page(request, "fill")
        return pb.ListFillsResponse(fills=[fill_to_pb(e) for e in events], next_page_token=token)

    async def ListAlerts(
        self, request: pb.ListAlertsRequest, context: Ctx
    ) -> pb.ListAlertsResponse:
        events, token = await self._page(request, "alert")
        return pb.ListAlertsResponse(alerts=[alert_to_pb(e) for e in events], next_page_token=token)

    async def _page(self, request: _PageRequest, kind: Kind) -> tuple[list[LiveEvent], str]:
        """One page of a strategy's recorded events of one kind (the three List calls)."""
        return await self.live.events(
            current_principal(),
            _required(request.strategy_id),
            kind,
            request.page_size,
            request.page_token,
        )

    async def GetPerformance(
        self, request: pb.GetPerformanceRequest, context: Ctx
    ) -> pb.GetPerformanceResponse:
        view = await self.live.performance(current_principal(), _required(request.strategy_id))
        return pb.GetPerformanceResponse(performance=performance_to_pb(view))

    async def StreamSignals(
        self, request: pb.StreamSignalsRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamSignalsResponse]:
        stream = await self.live.stream(
            current_principal(), _required(request.strategy_id), "signal", request.after_sequence
        )
        async for d in stream:
            key = (d.event.strategy_id, d.event.sequence, d.dropped)
            response = _SIGNAL_RESPONSES.get(key)
            if response is None:
                response = pb.StreamSignalsResponse(signal=signal_to_pb(d.event), dropped=d.dropped)
                _SIGNAL_RESPONSES[key] = response
                if len(_SIGNAL_RESPONSES) > _RESPONSE_CACHE_SIZE:
                    del _SIGNAL_RESPONSES[next(iter(_SIGNAL_RESPONSES))]
            yield response

    async def StreamAlerts(
        self, request: pb.StreamAlertsRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamAlertsResponse]:
        stream = await self.live.stream(
            current_principal(), _required(request.strategy_id), "alert", request.after_sequence
        )
        async for d in stream:
            yield pb.StreamAlertsResponse(alert=alert_to_pb(d.event), dropped=d.dropped)

    async def StreamPerformance(
        self, request: pb.StreamPerformanceRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamPerformanceResponse]:
        """A snapshot now, then one per interval while it runs (only when something changed)."""
        interval = request.interval_seconds or MIN_INTERVAL_S
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise InvalidArgument.field(
                "interval_seconds", f"{MIN_INTERVAL_S}..{MAX_INTERVAL_S} seconds"
            )
        principal = current_principal()
        strategy_id = _required(request.strategy_id)
        last = -1
        while True:
            if self.live.manager.closing:
                raise Unavailable(
                    "the server is shutting down; the strategy resumes when it is back"
                )
            view = await self.live.performance(principal, strategy_id)
            if view.bars_processed != last or view.run.status != "running":
                last = view.bars_processed
                yield pb.StreamPerformanceResponse(performance=performance_to_pb(view))
            if view.run.status != "running":
                return
            await asyncio.sleep(interval)


def _required(strategy_id: str) -> str:
    value = strategy_id.strip()
    if not value:
        raise InvalidArgument.field("strategy_id", "required")
    return value
