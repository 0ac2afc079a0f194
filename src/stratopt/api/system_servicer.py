"""SystemService: overview figures for dashboards, notifications and webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from google.protobuf import duration_pb2

from stratopt.api.context import current_principal
from stratopt.api.convert import ts_to_pb
from stratopt.api.live_convert import notification_to_pb, webhook_to_pb
from stratopt.services.notifications import NotificationService
from stratopt.services.overview import SystemOverview
from stratopt.v1 import system_pb2 as pb
from stratopt.v1 import system_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


class SystemServicer(pbg.SystemServiceServicer):
    def __init__(self, overview: SystemOverview, notifications: NotificationService) -> None:
        self.overview = overview
        self.notifications = notifications

    async def GetOverview(
        self, request: pb.GetOverviewRequest, context: Ctx
    ) -> pb.GetOverviewResponse:
        o = await self.overview.get(current_principal())
        return pb.GetOverviewResponse(
            version=o.version,
            uptime=duration_pb2.Duration(seconds=int(o.uptime_s)),
            strategy_count=o.strategy_count,
            running_strategy_count=o.running_strategy_count,
            dataset_count=o.dataset_count,
            backtest_count=o.backtest_count,
            queued_job_count=o.queued_job_count,
            running_job_count=o.running_job_count,
            engine_ready=o.engine_ready,
            database_backend=o.database_backend,
            server_time=ts_to_pb(o.server_time),
            trades_today=o.trades_today,
            paper_portfolio_value=o.paper_portfolio_value,
            open_stream_count=o.open_stream_count,
        )

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Ctx
    ) -> pb.ListNotificationsResponse:
        rows, token, newest = await self.notifications.page(
            current_principal(), request.page_size, request.page_token
        )
        return pb.ListNotificationsResponse(
            notifications=[notification_to_pb(r) for r in rows],
            next_page_token=token,
            newest_sequence=newest,
        )

    async def StreamNotifications(
        self, request: pb.StreamNotificationsRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamNotificationsResponse]:
        rows = self.notifications.stream(
            current_principal(), request.after_sequence, include_stored=request.include_stored
        )
        async for row in rows:
            yield pb.StreamNotificationsResponse(notification=notification_to_pb(row))

    async def CreateWebhook(
        self, request: pb.CreateWebhookRequest, context: Ctx
    ) -> pb.CreateWebhookResponse:
        hook = await self.notifications.create_webhook(
            current_principal(), request.webhook.url.strip(), list(request.webhook.kinds)
        )
        return pb.CreateWebhookResponse(webhook=webhook_to_pb(hook, with_secret=True))

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: Ctx
    ) -> pb.ListWebhooksResponse:
        hooks = await self.notifications.webhooks(current_principal())
        return pb.ListWebhooksResponse(webhooks=[webhook_to_pb(h) for h in hooks])

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context: Ctx
    ) -> pb.DeleteWebhookResponse:
        await self.notifications.delete_webhook(current_principal(), request.webhook_id.strip())
        return pb.DeleteWebhookResponse()
