"""Wiring of paper trading for one server: repository, notifier, manager, services."""

from __future__ import annotations

from dataclasses import dataclass

from stratopt.live.hub import DEFAULT_MAXSIZE
from stratopt.live.manager import LiveManager
from stratopt.live.notify import Notifier
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.live import LiveService
from stratopt.services.notifications import NotificationService
from stratopt.store.db import Database
from stratopt.store.live_repo import LiveRepo


@dataclass
class LiveRuntime:
    manager: LiveManager
    notifier: Notifier
    service: LiveService
    notifications: NotificationService

    async def start(self) -> None:
        """Starts webhook delivery, then resumes the strategies that were running."""
        self.notifier.start()
        await self.manager.start()

    async def stop(self) -> None:
        """Flushes what ran; running strategies stay recorded as running and resume later."""
        await self.manager.close()
        await self.notifier.stop()


def build_live(
    db: Database,
    datasets: DatasetCatalog,
    *,
    allow_private_webhooks: bool,
    queue_size: int = DEFAULT_MAXSIZE,
) -> LiveRuntime:
    repo = LiveRepo(db)
    notifier = Notifier(repo, allow_private_webhooks=allow_private_webhooks)
    manager = LiveManager(repo, datasets.files.load, notifier.notify, queue_size=queue_size)
    return LiveRuntime(
        manager=manager,
        notifier=notifier,
        service=LiveService(db, repo, manager, datasets),
        notifications=NotificationService(repo, notifier),
    )
