"""Wiring of the optimization service for one process (the server or `stratopt worker`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from stratopt.data.storage import DatasetStore
from stratopt.jobs.events import EventBus
from stratopt.jobs.worker import DEFAULT_CONFIG, WorkerConfig, WorkerPool
from stratopt.live.notify import Notifier
from stratopt.optimize.rdb import StudyStorage
from stratopt.server.job_notices import JobEndNotices
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.optimization_jobs import OptimizationJobs
from stratopt.store.db import Database
from stratopt.store.live_repo import LiveRepo


@dataclass
class OptimizationRuntime:
    jobs: OptimizationJobs
    pool: WorkerPool
    studies: StudyStorage
    bus: EventBus

    async def start(self) -> None:
        await self.pool.start()

    async def end_watches(self) -> None:
        """Ends every WatchJob stream (a server about to drain its calls); the jobs run on,
        and their watchers start again from a snapshot on the next server."""
        await self.jobs.feeds.close()

    async def stop(self) -> None:
        """Hands running jobs back to the queue, then closes the study storage."""
        await self.jobs.feeds.close()
        await self.pool.stop()
        await asyncio.to_thread(self.studies.close)


def build_optimization(
    db: Database, datasets: DatasetCatalog, workers: int, config: WorkerConfig = DEFAULT_CONFIG
) -> OptimizationRuntime:
    studies = StudyStorage(db.url)
    bus = EventBus()
    jobs = OptimizationJobs(
        db,
        datasets,
        studies,
        bus,
        lease_s=config.lease_s,
        running_limit=config.max_running_per_owner,
    )
    pool = WorkerPool(db, studies, datasets.files, bus, workers, config=config)
    return OptimizationRuntime(jobs, pool, studies, bus)


def build_worker_pool(
    db: Database,
    data_root: DatasetStore,
    workers: int,
    *,
    name: str = "",
    config: WorkerConfig = DEFAULT_CONFIG,
) -> tuple[WorkerPool, StudyStorage]:
    """Workers without the API: what `stratopt worker` runs."""
    studies = StudyStorage(db.url)
    return WorkerPool(
        db, studies, data_root, EventBus(), workers, name=name, config=config
    ), studies


async def run_workers(
    db: Database,
    data_root: DatasetStore,
    workers: int,
    *,
    name: str = "",
    config: WorkerConfig = DEFAULT_CONFIG,
    allow_private_webhooks: bool = False,
) -> None:
    """`stratopt worker`: claims and runs jobs until SIGTERM/SIGINT, then hands them back.
    The owners of the jobs that end here are notified from here (server/job_notices.py)."""
    import signal

    from stratopt.store import migrate

    await migrate.upgrade(db)
    pool, studies = build_worker_pool(db, data_root, workers, name=name, config=config)
    notifier = Notifier(LiveRepo(db), allow_private_webhooks=allow_private_webhooks)
    notices = JobEndNotices(notifier)
    pool.bus.listen(notices)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notifier.start()
    await pool.start()
    try:
        await stop.wait()
    finally:
        await pool.stop()
        await notices.drain()
        await notifier.stop()
        await asyncio.to_thread(studies.close)
        await db.dispose()
