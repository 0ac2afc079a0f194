"""Wiring of paper trading for one server: repository, notifier, manager, services."""

from __future__ import annotations

from dataclasses import dataclass

from stratopt.fanout import DEFAULT_MAXSIZE
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

    async def stop_runs(self) -> None:
        """Stops the strategies running here and flushes what they did; they stay recorded
        as running and resume at the next start. Ends their streams with UNAVAILABLE
        (clients resume with after_sequence)."""
        await self.manager.close()

    async def end_streams(self) -> None:
        """`stop_runs`, and ends the notification streams too (a server about to drain its
        calls); notifications can still be written and sent to webhooks."""
        await self.stop_runs()
        self.notifier.end_streams()

    async def stop(self) -> None:
        """`stop_runs` (if not done yet), then stops webhook delivery."""
        await self.manager.close()
        await self.notifier.stop()


def build_live(
    db: Database,
    datasets: DatasetCatalog,
    *,
    allow_private_webhooks: bool,
    queue_size: int = DEFAULT_MAXSIZE,
    runner: str = "",
) -> LiveRuntime:
    repo = LiveRepo(db)
    notifier = Notifier(repo, allow_private_webhooks=allow_private_webhooks)
    manager = LiveManager(
        repo, datasets.files.load, notifier.notify, queue_size=queue_size, runner=runner
    )
    return LiveRuntime(
        manager=manager,
        notifier=notifier,
        service=LiveService(db, repo, manager, datasets),
        notifications=NotificationService(repo, notifier),
    )
