"""Watching a job: a snapshot first, then every event, until the job ends.

One producer per watched job, shared by every watcher in this process (`JobFeeds`). Two
hundred watchers of one job once cost it four times its run time, because each watcher
polled the job row on its own and the polls competed with the worker for the database.
Now the producer is the only one that listens to the bus and reads the row:

- Events published in this process arrive at once through the bus. Work done elsewhere
  (a `stratopt worker`, another replica) is picked up by reading the job row whenever the
  bus has been quiet for POLL_S: if its `progress_seq` moved, the producer emits what
  changed (the state, or the latest trial). Sequence numbers make the two sources agree,
  so nothing is sent twice.
- Trial events are paced: at most one every TRIAL_INTERVAL_S, the newest (the job in it
  counts every trial). State changes are never delayed or dropped by the pacing.
- The producer publishes to a `stratopt.fanout.Topic`: a bounded queue per watcher. A
  slow watcher loses its oldest queued events, never the newest (every event carries the
  whole job, so the newest one is the latest snapshot, and the final state always
  arrives); it never slows the producer or the other watchers.
- The producer starts with the first watcher and stops when the last one leaves (or the
  job ends). A reconnecting client simply starts over from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from stratopt.fanout import Event, Topic
from stratopt.jobs.events import EventBus, JobEvent, Subscription
from stratopt.jobs.repo import JobRepo
from stratopt.jobs.views import JobView

log = logging.getLogger(__name__)

POLL_S = 0.25
# Trial events go out at most this often, the newest one each time: a progress stream, not
# a trial log (ListTrials has every trial). Sending each of a fast job's hundreds of trials
# per second to every watcher is what slowed the job. State changes go out at once.
TRIAL_INTERVAL_S = 0.2
# Events queued per watcher before its oldest are dropped. A watcher that keeps up reads
# every trial; one that falls this far behind still ends with the final state.
WATCHER_QUEUE = 256


@dataclass(eq=False)
class _Feed:
    """One job's producer and the topic its watchers read."""

    job_id: str
    topic: Topic[Event[JobEvent]] = field(default_factory=lambda: Topic(maxsize=WATCHER_QUEUE))
    # The newest state of the job the producer knows: a late watcher's snapshot.
    latest: asyncio.Future[JobView | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    current: JobView | None = None
    error: BaseException | None = None
    task: asyncio.Task[None] | None = None


class JobFeeds:
    """Watchers of jobs in this process, with one producer per job."""

    def __init__(
        self,
        repo: JobRepo,
        bus: EventBus,
        *,
        poll_s: float = POLL_S,
        trial_interval_s: float = TRIAL_INTERVAL_S,
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.poll_s = poll_s
        self.trial_interval_s = trial_interval_s
        self._feeds: dict[str, _Feed] = {}
        # Producers ever started, for tests and metrics ("one producer per job").
        self.producers_started = 0

    def producers(self, job_id: str | None = None) -> int:
        """Running producers (for `job_id`, or all of them)."""
        if job_id is None:
            return len(self._feeds)
        return 1 if job_id in self._feeds else 0

    def watchers(self, job_id: str) -> int:
        feed = self._feeds.get(job_id)
        return feed.topic.subscriber_count if feed is not None else 0

    async def watch(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's snapshot, then its events until it ends (nothing if it does not exist)."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._start(job_id)
        # Subscribed before the snapshot is taken: nothing published after it is missed.
        sub = feed.topic.subscribe()
        try:
            job = feed.current if feed.current is not None else await asyncio.shield(feed.latest)
            if job is None:
                if feed.error is not None:
                    raise feed.error
                return
            yield JobEvent("snapshot", job, job.progress_seq, trial=job.last_trial)
            seq, state = job.progress_seq, job.state
            while not job.terminal:
                delivery = await anext(sub, None)
                if delivery is None:  # the producer ended without a final event
                    if feed.error is not None:
                        raise feed.error
                    return
                event = delivery.event.payload
                if event.seq <= seq and event.job.state == state:
                    continue
                seq, state, job = max(seq, event.seq), event.job.state, event.job
                yield event
        finally:
            sub.close()

    def _start(self, job_id: str) -> _Feed:
        feed = _Feed(job_id)
        self._feeds[job_id] = feed
        self.producers_started += 1
        feed.task = asyncio.create_task(self._produce(feed), name=f"job-feed-{job_id}")
        return feed

    async def _produce(self, feed: _Feed) -> None:
        sub = self.bus.subscribe(feed.job_id)  # before the first read, like a watcher
        sequence = 0
        try:
            job = await self.repo.view(feed.job_id)
            feed.current = job
            feed.latest.set_result(job)
            if job is None:
                return
            seq, state = job.progress_seq, job.state
            loop = asyncio.get_running_loop()
            pending: JobEvent | None = None  # the newest trial not sent yet
            sent = -self.trial_interval_s
            while not job.terminal and feed.topic.subscriber_count:
                if pending is None:
                    wait = self.poll_s
                else:
                    wait = max(0.0, sent + self.trial_interval_s - loop.time())
                event = await self._next(sub, wait)
                if sub.lagged:
                    sub.lagged = False
                    event = await _from_row(self.repo, feed.job_id, seq, state)
                elif event is None:
                    if pending is not None:  # its turn has come
                        event, pending = pending, None
                    else:
                        event = await _from_row(self.repo, feed.job_id, seq, state)
                if event is None or (event.seq <= seq and event.job.state == state):
                    continue
                if event.type == "trial" and loop.time() < sent + self.trial_interval_s:
                    pending = event  # a newer trial replaces the one waiting
                    continue
                pending = None  # a state change carries the whole job: it supersedes it
                seq, state, job = max(seq, event.seq), event.job.state, event.job
                feed.current = job
                sequence += 1
                sent = loop.time()
                feed.topic.publish(Event(sequence, event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("watching job %s failed: %s", feed.job_id, exc)
            feed.error = exc
            if not feed.latest.done():
                feed.latest.set_result(None)
        finally:
            self.bus.unsubscribe(sub)
            if self._feeds.get(feed.job_id) is feed:
                del self._feeds[feed.job_id]
            feed.topic.close()
            if not feed.latest.done():
                feed.latest.set_result(None)

    async def _next(self, sub: Subscription, wait: float) -> JobEvent | None:
        if not sub.queue.empty():
            return sub.queue.get_nowait()
        try:
            return await asyncio.wait_for(sub.queue.get(), wait)
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Stops every producer (their watchers end)."""
        tasks = [f.task for f in self._feeds.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _from_row(repo: JobRepo, job_id: str, seq: int, state: str) -> JobEvent | None:
    job = await repo.view(job_id)
    if job is None or job.progress_seq <= seq:
        return None
    if job.state != state:
        return JobEvent("state", job, job.progress_seq)
    return JobEvent("trial", job, job.progress_seq, trial=job.last_trial)
