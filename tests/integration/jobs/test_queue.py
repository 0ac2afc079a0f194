"""The job queue on a real (SQLite) database: claim order, limits, reservations, leases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from stratopt.jobs.pace import Pace
from stratopt.jobs.repo import MAX_ATTEMPTS, BatchRecord, JobRepo
from stratopt.jobs.views import TrialView
from stratopt.optimize.rdb import StudyStorage
from stratopt.optimize.spec import StudySpec
from stratopt.services.optimization_jobs import wait_reason
from stratopt.store import migrate, models
from stratopt.store.db import Database
from stratopt.store.models import new_id, utcnow

SPEC = StudySpec(strategy_type="sma_crossover", dataset_id="d", trials=20)


@pytest.fixture()
async def repo(tmp_path: Path) -> AsyncIterator[JobRepo]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/q.db")
    await migrate.upgrade(db)
    studies = StudyStorage(db.url)
    yield JobRepo(db, studies, lease_s=5)
    studies.close()
    await db.dispose()


async def add(
    repo: JobRepo,
    owner: str = "u1",
    priority: int = 2,
    total: int = 20,
    spec: StudySpec = SPEC,
    age_s: float = 0,
) -> str:
    job = models.Job(
        id=new_id(),
        owner_id=owner,
        state="queued",
        priority=priority,
        spec=spec.to_dict(),
        shareable=spec.shareable,
        trials_total=total,
        created_at=utcnow() - timedelta(seconds=age_s),
    )
    await repo.create([job])
    return job.id


def record(
    count: int, value: float | None = None, number: int | None = None, pace: Pace | None = None
) -> BatchRecord:
    trial = TrialView(number or 0, "complete", {}, (value or 0.0,), {}, True, None, 0.0)
    return BatchRecord(
        count,
        value,
        {"fast": 1} if value is not None else {},
        number,
        "maximize",
        trial,
        pace or Pace(utcnow() - timedelta(seconds=1), 0),
    )


async def test_claims_follow_priority_then_age_and_the_owner_limit(repo: JobRepo) -> None:
    low_old = await add(repo, priority=1, age_s=30)
    high = await add(repo, priority=3)
    normal_old = await add(repo, priority=2, age_s=20)
    normal_new = await add(repo, priority=2, age_s=10)
    other = await add(repo, owner="u2", priority=1, age_s=1)
    order = [(await repo.claim(f"w{i}", max_running_per_owner=2)) for i in range(4)]
    assert [c.job.id if c else None for c in order] == [high, normal_old, other, None]
    assert all(c is not None and c.started for c in order[:3])
    view = await repo.view(normal_new)
    assert view is not None and view.state == "queued" and low_old


async def test_reservations_never_overshoot_and_dead_workers_give_theirs_back(
    repo: JobRepo,
) -> None:
    job_id = await add(repo, total=20)
    assert await repo.claim("a", 2) is not None
    assert (await repo.reserve(job_id, "a", 16)).granted == 16
    joined = await repo.join("b")
    assert joined is not None and joined.job.id == job_id and not joined.started
    assert (await repo.reserve(job_id, "b", 16)).granted == 4
    assert await repo.join("c") is None, "nothing left to share"
    await repo.record(job_id, "b", record(4, 1.5, 3))
    assert (await repo.reserve(job_id, "b", 16)).granted == 0
    # a falls silent: past its lease, b's next reservation voids a's and takes the rest.
    async with repo.db.transaction() as s:
        await s.execute(
            update(models.JobWorker)
            .where(models.JobWorker.worker_id == "a")
            .values(heartbeat_at=utcnow() - timedelta(seconds=60))
        )
    assert (await repo.reserve(job_id, "b", 16)).granted == 16
    assert not await repo.fence(job_id, "a"), "a was presumed dead: it must not write"
    assert (await repo.reserve(job_id, "a", 16)).stop == "lost"
    after = await repo.record(job_id, "b", record(16, 2.5, 19))
    assert after is not None
    assert after.view.trials_completed == 20 and after.view.best_value == 2.5
    assert (await repo.reserve(job_id, "b", 16)).stop == "budget"
    assert await repo.begin_finalize(job_id, "b") and not await repo.begin_finalize(job_id, "a")
    done = await repo.finish(job_id, "succeeded", result={"stop_reason": "budget"})
    assert done is not None and done.state == "succeeded" and done.result["stop_reason"] == "budget"


async def test_seeded_jobs_are_not_shared(repo: JobRepo) -> None:
    job_id = await add(repo, spec=SPEC.with_(seed=3))
    assert (await repo.claim("a", 2)) is not None
    assert await repo.join("b") is None
    assert (await repo.reserve(job_id, "a", 8)).granted == 8


async def test_orphans_are_resumed_first_and_count_as_attempts(repo: JobRepo) -> None:
    queued = await add(repo, priority=4)
    orphan = await add(repo, priority=1)
    assert (c := await repo.claim("dead", 2)) is not None and c.job.id == queued
    assert (c := await repo.claim("dead", 2)) is not None and c.job.id == orphan
    async with repo.db.transaction() as s:
        await s.execute(
            update(models.Job)
            .where(models.Job.id == orphan)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    fresh = await add(repo, priority=4)
    resumed = await repo.claim("alive", 5)
    assert resumed is not None and resumed.job.id == orphan and resumed.job.attempts == 1
    assert not resumed.started
    assert (await repo.claim("alive", 5)).job.id == fresh  # type: ignore[union-attr]


async def test_cancel_queued_at_once_and_running_through_the_worker(repo: JobRepo) -> None:
    running = await add(repo)
    queued = await add(repo)
    await repo.claim("a", 1)
    view, ended = await repo.cancel(queued)
    assert ended and view.state == "cancelled"
    view, ended = await repo.cancel(running)
    assert not ended and view.state == "running" and view.cancel_requested
    assert (await repo.reserve(running, "a", 8)).stop == "cancelled"


async def test_early_stopping_and_timeout_end_the_search(repo: JobRepo) -> None:
    patient = await add(repo, spec=SPEC.with_(patience=5), total=100)
    await repo.claim("a", 2)
    await repo.record(patient, "a", record(3, 1.0, 2))
    assert (await repo.reserve(patient, "a", 4)).granted == 4
    await repo.record(patient, "a", record(5, 0.5, 7))
    assert (await repo.reserve(patient, "a", 4)).stop == "early_stopping"
    timed = await add(repo, spec=SPEC.with_(trials=0, timeout_s=30), total=100_000)
    await repo.claim("b", 2)
    async with repo.db.transaction() as s:
        await s.execute(
            update(models.Job)
            .where(models.Job.id == timed)
            .values(started_at=utcnow() - timedelta(seconds=31))
        )
    assert (await repo.reserve(timed, "b", 4)).stop == "timeout"


def test_the_pace_is_a_time_weighted_rate_whoever_did_the_trials() -> None:
    t0 = utcnow()

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    steady = Pace(t0, 0)
    for i in range(1, 50):
        steady = steady.advance(40 * i, at(i * 0.4))
    assert steady.rate == pytest.approx(100.0)
    # Two workers' records interleave unevenly (0.1 s, then 0.9 s); each sees the job's count.
    a, b = Pace(t0, 0), Pace(t0, 0)
    done = 0
    for i in range(20):
        done += 16
        a = a.advance(done, at(i + 0.1))
        done += 16
        b = b.advance(done, at(i + 1.0))
    assert b.rate == pytest.approx(32.0, rel=0.05), "not 89/s, the mean of 160/s and 18/s"


async def test_the_eta_follows_the_recent_rate_after_a_slowdown(repo: JobRepo) -> None:
    job_id = await add(repo, total=10_000)
    assert await repo.claim("a", 2) is not None
    # 60 s at 100 trials/s, then 60 s at 10 trials/s, one record a second; the last record
    # (10 more trials in the last second) goes through the repository.
    t0 = utcnow() - timedelta(seconds=120)
    pace, done = Pace(t0, 0), 0
    for s in range(1, 120):
        done += 100 if s <= 60 else 10
        pace = pace.advance(done, t0 + timedelta(seconds=s))
    after = await repo.record(job_id, "a", record(done + 10, 1.0, 3, pace))
    assert after is not None
    job = after.view
    assert job.trials_completed == 6_600
    average = job.trials_completed / 120
    assert average > 50, "the average since the start is still high"
    assert 9 < job.throughput < 12, job.throughput
    assert job.eta_seconds is not None
    assert job.eta_seconds > (10_000 - 6_600) / 12, "the ETA is at the recent rate"
    assert after.pace.completed == 6_600 and after.pace.rate == job.throughput


async def test_a_queued_job_says_why_it_waits(repo: JobRepo) -> None:
    def reason(job_id: str, viewer: str = "u1") -> str:
        job = next(v for v in views if v.id == job_id)
        return wait_reason(job, queue, 2, viewer)

    first = await add(repo, age_s=50)
    assert (await repo.claim("w1", 2)) is not None
    second = await add(repo, age_s=40)
    third = await add(repo, age_s=30)
    other = await add(repo, owner="u2", age_s=20)
    views = [v for v in [await repo.view(i) for i in (second, third, other)] if v]
    queue = await repo.queue_state()
    assert queue.running == {"u1": 1} and queue.busy_workers == 1
    assert reason(second) == "waiting for a free worker (1 busy)"
    assert reason(third) == "waiting for a free worker (1 busy, 1 job ahead in the queue)"
    assert reason(other, "u2") == "waiting for a free worker (1 busy, 2 jobs ahead in the queue)"

    assert (await repo.claim("w2", 2)) is not None  # u1's second job: u1 is at the limit
    queue = await repo.queue_state()
    assert reason(third) == "waiting: you have 2 jobs running (limit 2)"
    assert reason(third, "admin") == "waiting: its owner has 2 jobs running (limit 2)"
    assert reason(other, "u2") == "waiting for a free worker (2 busy)", "u1's jobs are skipped"

    for job_id in (first, second):
        await repo.finish(job_id, "succeeded")
    queue = await repo.queue_state()
    assert queue.busy_workers == 0
    assert reason(third) == "waiting for a worker to claim it"
    assert reason(other, "u2") == "waiting for a worker to claim it (1 job ahead in the queue)"


async def test_clean_hand_backs_never_exhaust_the_attempts_but_crashes_do(repo: JobRepo) -> None:
    """A job handed back at each graceful shutdown (a deploy) resumes however often that
    happens; one whose worker keeps dying is given up on after MAX_ATTEMPTS."""
    deployed = await add(repo)
    for n in range(1, MAX_ATTEMPTS + 3):
        claim = await repo.claim(f"w{n}", 2)
        assert claim is not None and claim.job.id == deployed and claim.job.state == "running"
        assert claim.job.attempts == n - 1
        requeued = await repo.leave(deployed, f"w{n}", requeue=True)
        assert requeued is not None and requeued.state == "queued"
    assert (await repo.cancel(deployed))[1], "out of the way of the next part"

    crashing = await add(repo, owner="u2")
    for n in range(1, MAX_ATTEMPTS + 1):
        claim = await repo.claim(f"c{n}", 2)
        assert claim is not None and claim.job.id == crashing
        async with repo.db.transaction() as s:  # its worker dies: the lease runs out
            await s.execute(
                update(models.Job)
                .where(models.Job.id == crashing)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
    last = await repo.claim("c-last", 2)
    assert last is not None and last.job.state == "failed"
    assert "interrupted" in (last.job.error or "")
