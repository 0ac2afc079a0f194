"""Watching a job: a snapshot first, then every event, until the job ends.

Events published in this process arrive at once through the bus. Work done elsewhere (a
`stratopt worker`, another replica) is picked up by reading the job row whenever the bus
has been quiet for POLL_S: if its `progress_seq` moved, the watcher emits what changed (the
state, or the latest trial). Sequence numbers make the two sources agree, so nothing is
sent twice and a reconnecting client simply starts over from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from stratopt.jobs.events import EventBus, JobEvent
from stratopt.jobs.repo import JobRepo

POLL_S = 0.25


async def watch_job(repo: JobRepo, bus: EventBus, job_id: str) -> AsyncIterator[JobEvent]:
    sub = bus.subscribe(job_id)  # before the snapshot: nothing published after it is missed
    try:
        job = await repo.view(job_id)
        if job is None:
            return
        yield JobEvent("snapshot", job, job.progress_seq, trial=job.last_trial)
        seq, state = job.progress_seq, job.state
        while not job.terminal:
            event = await _next(sub.queue)
            if event is None or sub.lagged:
                sub.lagged = False
                event = await _from_row(repo, job_id, seq, state)
            if event is None or (event.seq <= seq and event.job.state == state):
                continue
            seq, state, job = max(seq, event.seq), event.job.state, event.job
            yield event
    finally:
        bus.unsubscribe(sub)


async def _next(queue: asyncio.Queue[JobEvent]) -> JobEvent | None:
    try:
        return await asyncio.wait_for(queue.get(), POLL_S)
    except TimeoutError:
        return None


async def _from_row(repo: JobRepo, job_id: str, seq: int, state: str) -> JobEvent | None:
    job = await repo.view(job_id)
    if job is None or job.progress_seq <= seq:
        return None
    if job.state != state:
        return JobEvent("state", job, job.progress_seq)
    return JobEvent("trial", job, job.progress_seq, trial=job.last_trial)
