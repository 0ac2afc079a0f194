"""`JobFeeds` on a real SQLite job queue: one producer per job, whatever the watcher count.

The producer is the only reader of the job row and the only listener on the bus; watchers
read bounded queues. These tests count the row reads and the producers, and check that a
watcher that never reads does not hold the others (or memory) back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratopt.jobs.events import EventBus, JobEvent
from stratopt.jobs.repo import JobRepo
from stratopt.jobs.views import JobView
from stratopt.jobs.watch import WATCHER_QUEUE, JobFeeds
from stratopt.optimize.rdb import StudyStorage
from stratopt.store import migrate
from stratopt.store.db import Database
from tests.integration.jobs.test_queue import add, record


class CountingRepo(JobRepo):
    """The real repository, counting how often the job row is read."""

    reads = 0

    async def view(self, job_id: str) -> JobView | None:
        self.reads += 1
        return await super().view(job_id)


@pytest.fixture()
async def repo(tmp_path: Path) -> AsyncIterator[CountingRepo]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    await migrate.upgrade(db)
    studies = StudyStorage(db.url)
    yield CountingRepo(db, studies, lease_s=30)
    studies.close()
    await db.dispose()


async def collect(feeds: JobFeeds, job_id: str) -> list[JobEvent]:
    return [event async for event in feeds.watch(job_id)]


async def until(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_one_producer_serves_a_hundred_watchers_of_work_done_elsewhere(
    repo: CountingRepo,
) -> None:
    # Progress written straight to the database, as a `stratopt worker` would: only the
    # producer's polls can see it.
    feeds = JobFeeds(repo, EventBus(), poll_s=0.05)
    job_id = await add(repo, total=30)
    claim = await repo.claim("w", max_running_per_owner=5)
    assert claim is not None
    watchers = [asyncio.create_task(collect(feeds, job_id)) for _ in range(100)]
    await until(lambda: feeds.watchers(job_id) == 100)
    assert feeds.producers(job_id) == 1 and feeds.producers_started == 1
    reads_before = repo.reads
    for i in range(3):
        await repo.record(job_id, "w", record(10, float(i), i * 10 + 9))
        await asyncio.sleep(0.15)
    await repo.finish(job_id, "succeeded")
    streams = await asyncio.wait_for(asyncio.gather(*watchers), 10)

    for events in streams:
        assert events[0].type == "snapshot"
        assert events[-1].type == "state" and events[-1].job.state == "succeeded"
        assert events[-1].job.trials_completed == 30
    # About one read per poll for the whole crowd (0.45 s at 0.05 s), not one per watcher.
    assert repo.reads - reads_before < 40, repo.reads - reads_before
    assert feeds.producers_started == 1
    await until(lambda: feeds.producers() == 0)


async def test_the_producer_stops_with_its_last_watcher_and_restarts_for_the_next(
    repo: CountingRepo,
) -> None:
    feeds = JobFeeds(repo, EventBus(), poll_s=0.05)
    job_id = await add(repo)
    first = asyncio.create_task(collect(feeds, job_id))
    second = asyncio.create_task(collect(feeds, job_id))
    await until(lambda: feeds.watchers(job_id) == 2)
    first.cancel()
    await asyncio.sleep(0.2)
    assert feeds.producers(job_id) == 1  # one watcher is left
    second.cancel()
    await until(lambda: feeds.producers() == 0)
    third = asyncio.create_task(collect(feeds, job_id))
    await until(lambda: feeds.watchers(job_id) == 1)
    assert feeds.producers_started == 2
    third.cancel()
    await until(lambda: feeds.producers() == 0)


async def test_a_watcher_that_never_reads_stays_bounded_and_others_see_every_state(
    repo: CountingRepo,
) -> None:
    bus = EventBus()
    feeds = JobFeeds(repo, bus, poll_s=0.05, trial_interval_s=0)
    job_id = await add(repo, total=5_000)
    claim = await repo.claim("w", max_running_per_owner=5)
    assert claim is not None
    stuck = feeds.watch(job_id)
    snapshot = await anext(stuck)  # subscribed, then never read again
    reader = asyncio.create_task(collect(feeds, job_id))
    await until(lambda: feeds.watchers(job_id) == 2)
    view = snapshot.job
    for n in range(1, 2_001):  # published in this process, like an in-process worker
        bus.publish(JobEvent("trial", view, view.progress_seq + n))
        if n % 100 == 0:
            await asyncio.sleep(0)
    final = await repo.finish(job_id, "cancelled")
    assert final is not None
    bus.publish(JobEvent("state", final, final.progress_seq))
    events = await asyncio.wait_for(reader, 10)
    assert events[-1].job.state == "cancelled"
    queued = [t for t in asyncio.all_tasks() if t.get_name().startswith("job-feed")]
    assert not queued or all(t.done() for t in queued)
    # The stuck watcher holds at most a queue's worth, and its last event is the final one.
    rest = [event async for event in stuck]
    assert len(rest) <= WATCHER_QUEUE
    assert rest[-1].job.state == "cancelled"
