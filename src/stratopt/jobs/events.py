"""In-process fan-out of job events, and the wake-up signal for idle workers.

Watchers in the process that runs a job get every event the moment it is published. Events
from other processes (a `stratopt worker`, another replica) reach watchers through polling
of the job row instead (see `jobs.watch`); both carry the row's `progress_seq`, which is how
a watcher drops what it has already seen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from stratopt.jobs.views import JobView, TrialView
from stratopt.store.models import utcnow

EventType = Literal["snapshot", "state", "trial"]
QUEUE_LIMIT = 1_000


@dataclass(frozen=True)
class JobEvent:
    type: EventType
    job: JobView
    seq: int
    trial: TrialView | None = None
    time: datetime = field(default_factory=utcnow)


@dataclass(eq=False)
class Subscription:
    job_id: str
    queue: asyncio.Queue[JobEvent] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    # Set when events were dropped because the watcher fell behind: it re-reads the row.
    lagged: bool = False


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._work = asyncio.Event()
        self._listeners: list[Callable[[JobEvent], None]] = []

    def subscribe(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        self._subs[job_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    def listen(self, listener: Callable[[JobEvent], None]) -> None:
        """Calls `listener` with every event of every job (e.g. to notify owners)."""
        self._listeners.append(listener)

    def publish(self, event: JobEvent) -> None:
        for listener in self._listeners:
            listener(event)
        for sub in list(self._subs.get(event.job.id, ())):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagged = True

    def watchers(self, job_id: str) -> int:
        return len(self._subs.get(job_id, ()))

    def notify_work(self) -> None:
        """A job was queued in this process: idle workers look now instead of at their poll."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
