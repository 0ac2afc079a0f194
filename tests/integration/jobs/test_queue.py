"""The job queue on a real (SQLite) database: claim order, limits, reservations, leases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from stratopt.jobs.repo import BatchRecord, JobRepo
from stratopt.jobs.views import TrialView
from stratopt.optimize.rdb import StudyStorage
from stratopt.optimize.spec import StudySpec
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


def record(count: int, value: float | None = None, number: int | None = None) -> BatchRecord:
    trial = TrialView(number or 0, "complete", {}, (value or 0.0,), {}, True, None, 0.0)
    return BatchRecord(
        count,
        value,
        {"fast": 1} if value is not None else {},
        number,
        "maximize",
        trial,
        (utcnow() - timedelta(seconds=1), 0),
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
    view = await repo.record(job_id, "b", record(16, 2.5, 19))
    assert view is not None and view.trials_completed == 20 and view.best_value == 2.5
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
