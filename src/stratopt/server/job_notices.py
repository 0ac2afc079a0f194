"""Tells a job's owner when the job succeeded, failed or was cancelled.

A listener on the job-event bus of every process that runs workers or cancels jobs: the
server, and each `stratopt worker`. Whichever process moved the job to its terminal state
publishes that state, and only that one, because the move is a conditional update in
`jobs/repo.py` that one caller wins. So each job end is notified once, whichever of many
workers ran it, and sent to the owner's webhooks from that process.
"""

from __future__ import annotations

import asyncio
import logging

from stratopt.jobs.events import JobEvent
from stratopt.jobs.views import CANCELLED, FAILED, SUCCEEDED
from stratopt.live.notify import Notifier

log = logging.getLogger("stratopt.notify")

ENDED = {SUCCEEDED: "finished", FAILED: "failed", CANCELLED: "was cancelled"}
DRAIN_S = 2.0
"""How long a stopping process waits for the notices still being written."""


class JobEndNotices:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._pending: set[asyncio.Task[object]] = set()

    def __call__(self, event: JobEvent) -> None:
        job = event.job
        if event.type != "state" or not job.terminal:
            return
        detail = job.error if job.state == FAILED else _best(job.best_value)
        task = asyncio.get_running_loop().create_task(
            self.notifier.notify(
                job.owner_id,
                f"job.{job.state}",
                "error" if job.state == FAILED else "info",
                f"Optimization {ENDED.get(job.state, job.state)}",
                f"{job.trials_completed}/{job.trials_total} trials. {detail}".strip(),
                f"jobs/{job.id}",
            )
        )
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("job notification not written: %s", e)

    async def drain(self, timeout: float = DRAIN_S) -> None:
        """Waits for the notifications still being written (a process about to stop)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)


def _best(value: float | None) -> str:
    return "" if value is None else f"Best objective {value:.6g}."
