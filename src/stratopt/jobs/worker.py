"""Workers: loops that claim jobs from the database and run them, in any number of processes.

The server runs `settings.workers` of them; `stratopt worker` runs more anywhere that can
reach the database and the dataset files. An idle worker first resumes orphaned jobs, then
starts queued ones, then helps with a running shareable job that still has trials left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from stratopt.data.storage import DatasetStore
from stratopt.jobs.events import EventBus
from stratopt.jobs.repo import JobRepo
from stratopt.jobs.runner import JobRunner, RunnerContext
from stratopt.optimize.rdb import StudyStorage
from stratopt.store.db import Database
from stratopt.store.outages import FailureLog

log = logging.getLogger("stratopt.jobs.worker")

LEASE_S = 10.0
"""A worker silent for this long is presumed dead and its work is taken over."""
POLL_S = 0.5
MAX_RUNNING_PER_OWNER = 2
"""Jobs of one user that run at once; the others wait in the queue (they are not rejected)."""


@dataclass(frozen=True)
class WorkerConfig:
    lease_s: float = LEASE_S
    poll_s: float = POLL_S
    max_running_per_owner: int = MAX_RUNNING_PER_OWNER
    join_running: bool = True


DEFAULT_CONFIG = WorkerConfig()


def worker_name(prefix: str = "") -> str:
    return f"{prefix or socket.gethostname()}:{os.getpid()}"


class WorkerPool:
    def __init__(
        self,
        db: Database,
        studies: StudyStorage,
        datasets: DatasetStore,
        bus: EventBus,
        size: int,
        *,
        name: str = "",
        config: WorkerConfig = DEFAULT_CONFIG,
    ) -> None:
        self.repo = JobRepo(db, studies, config.lease_s)
        self.studies = studies
        self.datasets = datasets
        self.bus = bus
        self.size = size
        self.name = name or worker_name()
        self.config = config
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Task[None] | None = None

    def worker_ids(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.size)]

    async def start(self) -> None:
        """Starts the loops; they begin claiming once the storage and kernels are loaded."""
        if self.size <= 0:
            return
        self._ready = asyncio.create_task(asyncio.to_thread(_warm, self.studies))
        self._tasks = [asyncio.create_task(self._loop(w)) for w in self.worker_ids()]
        log.info("workers started", extra={"workers": self.size, "worker_name": self.name})

    async def stop(self) -> None:
        """Cancels the loops; each running job is handed back to the queue."""
        for t in self._tasks:
            t.cancel()
        if self._ready is not None:
            await asyncio.gather(self._ready, return_exceptions=True)
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("worker ended with an error")
        self._tasks = []

    async def _loop(self, worker_id: str) -> None:
        ctx = RunnerContext(
            self.repo,
            self.studies,
            self.datasets,
            self.bus,
            worker_id,
            heartbeat_s=self.config.lease_s / 5,
        )
        cfg = self.config
        if self._ready is not None:
            await self._ready
        failing = FailureLog(log, "claiming jobs failed")
        while True:
            try:
                claim = await self.repo.claim(worker_id, cfg.max_running_per_owner)
                if claim is None and cfg.join_running:
                    claim = await self.repo.join(worker_id)
            except Exception:
                failing.failed()
                await asyncio.sleep(cfg.poll_s)
                continue
            failing.recovered()
            if claim is None:
                await self.bus.wait_for_work(cfg.poll_s)
                continue
            log.info("running job", extra={"job_id": claim.job.id, "worker": worker_id})
            await JobRunner(ctx).run(claim)
            if not claim.started and claim.job.started_at is not None:
                await asyncio.sleep(cfg.poll_s)  # after helping out: do not hammer the queue


def _warm(studies: StudyStorage) -> None:
    """Opens the study storage and loads the compiled kernels before the first job."""
    from stratopt.optimize import warm_up

    try:
        studies.storage  # noqa: B018 - opening is the point
        warm_up()
    except Exception:  # the first job will retry and report what is wrong
        log.warning("optimization warm-up failed", exc_info=True)
