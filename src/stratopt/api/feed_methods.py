"""MarketDataService's feed RPCs: translate, call `services.live`, translate back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.live_convert import (
    feed_draft_from_pb,
    feed_to_pb,
    live_bars_from_pb,
    rejected_to_pb,
)
from stratopt.errors import InvalidArgument
from stratopt.live.bars import LiveBar
from stratopt.services.live import LiveService
from stratopt.v1 import market_data_pb2 as pb

Ctx: TypeAlias = grpc.aio.ServicerContext


class FeedMethods:
    """Mixed into MarketDataServicer; needs `live`."""

    live: LiveService

    async def CreateFeed(
        self, request: pb.CreateFeedRequest, context: Ctx
    ) -> pb.CreateFeedResponse:
        view = await self.live.create_feed(current_principal(), feed_draft_from_pb(request.feed))
        return pb.CreateFeedResponse(feed=feed_to_pb(view))

    async def GetFeed(self, request: pb.GetFeedRequest, context: Ctx) -> pb.GetFeedResponse:
        view = await self.live.get_feed(current_principal(), _required(request.feed_id))
        return pb.GetFeedResponse(feed=feed_to_pb(view))

    async def ListFeeds(self, request: pb.ListFeedsRequest, context: Ctx) -> pb.ListFeedsResponse:
        views, token = await self.live.list_feeds(
            current_principal(), request.page_size, request.page_token
        )
        return pb.ListFeedsResponse(feeds=[feed_to_pb(v) for v in views], next_page_token=token)

    async def DeleteFeed(
        self, request: pb.DeleteFeedRequest, context: Ctx
    ) -> pb.DeleteFeedResponse:
        await self.live.delete_feed(current_principal(), _required(request.feed_id))
        return pb.DeleteFeedResponse()

    async def PushBars(
        self, request_iterator: AsyncIterator[pb.PushBarsRequest], context: Ctx
    ) -> pb.PushBarsResponse:
        async def batches() -> AsyncIterator[tuple[str, Sequence[LiveBar]]]:
            async for msg in request_iterator:
                yield msg.feed_id.strip(), live_bars_from_pb(msg.bars)

        out = await self.live.push_bars(current_principal(), batches())
        return pb.PushBarsResponse(
            accepted=out.accepted,
            rejected=out.rejected,
            rejections=[rejected_to_pb(i, bar, reason) for i, bar, reason in out.rejections],
        )


def _required(feed_id: str) -> str:
    value = feed_id.strip()
    if not value:
        raise InvalidArgument.field("feed_id", "required")
    return value
