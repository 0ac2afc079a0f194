"""The job queue in the database: claiming, leases, trial reservations, progress, endings.

Rules that make "exactly N completed trials, none lost, none duplicated" hold with any
number of workers and crashes:

* A worker adds trials only inside a reservation: `reserve` (job row locked) grants
  k <= total - completed - reservations of live workers.
* After writing its batch to the Optuna study, the worker releases the reservation and adds
  the trials to `trials_completed` in one transaction (`record`), so completed + reserved
  never undercounts what exists or may soon exist.
* A worker whose heartbeat is older than the lease is dead: whoever notices deletes its
  row (voiding its reservation) and recounts `trials_completed` from the study itself,
  which also counts a batch that was written just before the crash.
* Before writing, a worker checks its row is still there (`fence`); one that was presumed
  dead discards its batch instead of overshooting.

Every transaction locks the job row before any of its `job_workers` rows, so concurrent
workers (and one worker's heartbeat next to its own batch) never deadlock.

Claiming takes the most urgent, oldest job. On PostgreSQL that is `FOR UPDATE SKIP LOCKED`
plus a per-owner advisory lock for the concurrency limit; on SQLite (one writer at a time)
a single compare-and-set UPDATE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.jobs.pace import Pace, eta_seconds
from stratopt.jobs.views import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    TERMINAL,
    JobView,
    TrialView,
)
from stratopt.optimize.analysis import is_better
from stratopt.optimize.rdb import StudyStorage
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import utcnow
from stratopt.store.paging import Keyset, query_hash

J = models.Job
W = models.JobWorker
MAX_ATTEMPTS = 5
OPTIMIZING = "optimizing"
FINALIZING = "finalizing"


@dataclass(frozen=True)
class Claim:
    job: JobView
    # True when the claim moved the job from QUEUED to RUNNING (watchers get an event).
    started: bool


@dataclass(frozen=True)
class Reservation:
    """Trials granted for the next batch, or why the worker should stop adding trials.

    stop: "" (go on), "budget" / "timeout" / "early_stopping" (finalize), "cancelled",
    "gone" (the job ended or moved on), "lost" (this worker was presumed dead).
    """

    granted: int
    stop: str = ""


@dataclass(frozen=True)
class BatchRecord:
    """What one written batch changes on the job row."""

    count: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    direction: str
    last_trial: TrialView
    # This worker's view of the job's pace at its previous record (or when it started).
    pace: Pace


@dataclass(frozen=True)
class Recorded:
    """The job after a batch, and the worker's pace to carry to its next record."""

    view: JobView
    pace: Pace


@dataclass(frozen=True)
class QueueState:
    """A snapshot of what the queue is waiting on."""

    running: dict[str, int]
    """Running jobs per owner."""
    busy_workers: int
    """Workers (any process) taking part in a running job, heartbeat within the lease."""
    queued: list[tuple[str, str]]
    """(job id, owner id) of the queued jobs, in the order workers claim them."""

    def ahead(self, job_id: str, limit: int) -> int:
        """Queued jobs a worker would claim before `job_id` (owners at `limit` are skipped)."""
        count = 0
        for other, owner in self.queued:
            if other == job_id:
                return count
            if self.running.get(owner, 0) < limit:
                count += 1
        return count


class JobRepo:
    def __init__(self, db: Database, studies: StudyStorage, lease_s: float) -> None:
        self.db = db
        self.studies = studies
        self.lease = timedelta(seconds=lease_s)

    @property
    def postgres(self) -> bool:
        return self.db.backend == "postgresql"

    # -- reading ------------------------------------------------------------------------

    async def view(self, job_id: str) -> JobView | None:
        row = await self.db.get(J, job_id)
        return JobView.from_row(row) if row is not None else None

    async def list_jobs(
        self, owner_id: str | None, state: str, batch_id: str, requested: int, token: str
    ) -> tuple[list[JobView], str]:
        stmt = select(J)
        if owner_id is not None:
            stmt = stmt.where(J.owner_id == owner_id)
        if state:
            stmt = stmt.where(J.state == state)
        if batch_id:
            stmt = stmt.where(J.batch_id == batch_id)
        qhash = query_hash(u=owner_id, s=state, b=batch_id)
        rows, out = await Keyset(J.created_at, J.id, requested, token, qhash).scan(self.db, stmt)
        return [JobView.from_row(r) for r in rows], out

    async def count_active(self, owner_id: str) -> int:
        stmt = (
            select(func.count())
            .select_from(J)
            .where(J.owner_id == owner_id, J.state.in_((QUEUED, RUNNING)))
        )
        async with self.db.session() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def queue_state(self) -> QueueState:
        """What queued jobs wait for: running jobs per owner, busy workers, the queue."""
        now = utcnow()
        running = select(J.owner_id, func.count()).where(J.state == RUNNING).group_by(J.owner_id)
        busy = (
            select(func.count(func.distinct(W.worker_id)))
            .join(J, J.id == W.job_id)
            .where(J.state == RUNNING, W.heartbeat_at >= now - self.lease)
        )
        queued = (
            select(J.id, J.owner_id)
            .where(J.state == QUEUED)
            .order_by(J.priority.desc(), J.created_at, J.id)
        )
        async with self.db.session() as s:
            per_owner = {o: int(n) for o, n in await s.execute(running)}
            workers = int((await s.execute(busy)).scalar_one())
            order = [(str(i), str(o)) for i, o in await s.execute(queued)]
        return QueueState(per_owner, workers, order)

    # -- creating and cancelling --------------------------------------------------------

    async def create(self, rows: Sequence[models.Job]) -> list[JobView]:
        async with self.db.transaction() as s:
            s.add_all(rows)
        return [JobView.from_row(r) for r in rows]

    async def set_study(self, job_id: str, study_id: int) -> None:
        async with self.db.transaction() as s:
            await s.execute(
                update(J).where(J.id == job_id, J.study_id.is_(None)).values(study_id=study_id)
            )

    async def cancel(self, job_id: str) -> tuple[JobView, bool]:
        """Cancels a queued job at once; flags a running one for its worker (True = ended now).

        A running job whose workers are all dead is cancelled at once too.
        """
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            if row is None:
                raise LookupError(job_id)
            if row.state in TERMINAL:
                return JobView.from_row(row), False
            orphan = row.state == RUNNING and (
                row.lease_expires_at is None or row.lease_expires_at < now
            )
            if row.state == QUEUED or orphan:
                self._end(row, CANCELLED, now)
                await s.execute(delete(W).where(W.job_id == job_id))
                await s.flush()
                return JobView.from_row(row), True
            row.cancel_requested = True
            await s.flush()
            return JobView.from_row(row), False

    # -- claiming -----------------------------------------------------------------------

    async def claim(self, worker_id: str, max_running_per_owner: int) -> Claim | None:
        """The job this worker should start or resume: orphans first, then the queue."""
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._pick(s, now, max_running_per_owner)
            if row is None:
                return None
            started = row.state == QUEUED
            await self._take(s, row, worker_id, now)
            return Claim(JobView.from_row(row), started)

    async def join(self, worker_id: str) -> Claim | None:
        """A running, shareable job with trials left that this worker can help with."""
        now = utcnow()
        mine = exists().where(W.job_id == J.id, W.worker_id == worker_id)
        reserved = (
            select(func.coalesce(func.sum(W.reserved), 0)).where(W.job_id == J.id).scalar_subquery()
        )
        stmt = (
            select(J.id)
            .where(
                J.state == RUNNING,
                J.phase == OPTIMIZING,
                J.shareable.is_(True),
                J.cancel_requested.is_(False),
                J.lease_expires_at >= now,
                J.trials_total - J.trials_completed > reserved,
                ~mine,
            )
            .order_by(J.priority.desc(), J.created_at)
            .limit(1)
        )
        async with self.db.transaction() as s:
            job_id = (await s.execute(stmt)).scalar_one_or_none()
            if job_id is None:
                return None
            s.add(W(job_id=job_id, worker_id=worker_id, joined_at=now, heartbeat_at=now))
            row = await s.get(J, job_id)
            assert row is not None
            return Claim(JobView.from_row(row), False)

    async def _pick(self, s: AsyncSession, now: datetime, limit: int) -> models.Job | None:
        if self.postgres:
            return await self._pick_postgres(s, now, limit)
        return await self._pick_sqlite(s, now, limit)

    async def _pick_postgres(self, s: AsyncSession, now: datetime, limit: int) -> models.Job | None:
        orphan = (
            select(J)
            .where(J.state == RUNNING, J.lease_expires_at < now)
            .order_by(J.priority.desc(), J.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await s.execute(orphan)).scalar_one_or_none()
        if row is not None:
            return row
        queued = (
            select(J)
            .where(J.state == QUEUED)
            .order_by(J.priority.desc(), J.created_at, J.id)
            .limit(8)
            .with_for_update(skip_locked=True)
        )
        for candidate in (await s.execute(queued)).scalars():
            # Serializes the limit check per owner across workers (released at commit).
            await s.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:o))"), {"o": candidate.owner_id}
            )
            if await self._running_count(s, candidate.owner_id) < limit:
                return candidate
        return None

    async def _pick_sqlite(self, s: AsyncSession, now: datetime, limit: int) -> models.Job | None:
        jobs = cast(Table, J.__table__)
        cand = jobs.alias("cand")
        other = jobs.alias("other")
        running = (
            select(func.count())
            .select_from(other)
            .where(other.c.owner_id == cand.c.owner_id, other.c.state == RUNNING)
            .correlate(cand)
            .scalar_subquery()
        )
        eligible = or_(
            and_(cand.c.state == RUNNING, cand.c.lease_expires_at < now),
            and_(cand.c.state == QUEUED, running < limit),
        )
        pick = (
            select(cand.c.id)
            .where(eligible)
            .order_by(
                (cand.c.state == RUNNING).desc(),
                cand.c.priority.desc(),
                cand.c.created_at,
                cand.c.id,
            )
            .limit(1)
            .correlate(None)
            .scalar_subquery()
        )
        # One statement = one atomic compare-and-set under SQLite's single writer lock.
        claimed = await s.execute(
            update(jobs).where(jobs.c.id == pick).values(updated_at=now).returning(jobs.c.id)
        )
        job_id = claimed.scalar_one_or_none()
        return await s.get(J, job_id) if job_id is not None else None

    async def _running_count(self, s: AsyncSession, owner_id: str) -> int:
        stmt = select(func.count()).select_from(J).where(J.owner_id == owner_id, J.state == RUNNING)
        return int((await s.execute(stmt)).scalar_one())

    async def _take(self, s: AsyncSession, row: models.Job, worker_id: str, now: datetime) -> None:
        # RUNNING here means its worker went silent past the lease (crashed, killed); a worker
        # that shut down cleanly handed the job back as QUEUED. Both count as attempts, but
        # only crashes can end in giving up: a job that survives any number of deploys
        # (SIGTERM, hand-back, resume) must not fail because of them.
        crashed = row.state == RUNNING
        resumed = crashed or row.started_at is not None
        if row.state == RUNNING:
            await s.execute(delete(W).where(W.job_id == row.id))
        if row.study_id is not None:
            # The study is the truth: a batch written just before a crash or a hand-back counts.
            row.trials_completed = await asyncio.to_thread(
                self.studies.count_complete, row.study_id
            )
        if resumed:
            row.attempts += 1
        if crashed and row.attempts >= MAX_ATTEMPTS:
            row.error = f"the job was interrupted {row.attempts} times; giving up"
            self._end(row, FAILED, now)
            await s.flush()
            return
        if row.state == QUEUED:
            row.progress_seq += 1
        row.state = RUNNING
        row.phase = OPTIMIZING
        row.lease_owner = worker_id
        row.lease_expires_at = now + self.lease
        row.started_at = row.started_at or now
        row.updated_at = now
        s.add(W(job_id=row.id, worker_id=worker_id, joined_at=now, heartbeat_at=now))
        await s.flush()

    # -- running ------------------------------------------------------------------------

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        """False when this worker's participation was voided (presumed dead)."""
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            alive = await s.execute(
                update(W)
                .where(W.job_id == job_id, W.worker_id == worker_id)
                .values(heartbeat_at=now)
            )
            if row is None or alive.rowcount == 0:  # type: ignore[attr-defined]
                return False
            if row.state == RUNNING:
                row.lease_expires_at = now + self.lease
            return True

    async def reserve(self, job_id: str, worker_id: str, want: int) -> Reservation:
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            if row is None or row.state != RUNNING or row.phase != OPTIMIZING:
                return Reservation(0, "gone")
            if row.cancel_requested:
                return Reservation(0, "cancelled")
            workers = list((await s.execute(select(W).where(W.job_id == job_id))).scalars())
            me = next((w for w in workers if w.worker_id == worker_id), None)
            if me is None:
                return Reservation(0, "lost")
            await self._expire(s, row, [w for w in workers if w is not me], worker_id, now)
            me.heartbeat_at = now
            row.lease_expires_at = now + self.lease
            reason = self._stop_reason(row, now)
            if reason:
                return Reservation(0, reason)
            others = sum(
                w.reserved for w in workers if w is not me and w.heartbeat_at >= now - self.lease
            )
            me.reserved = max(0, min(want, row.trials_total - row.trials_completed - others))
            return Reservation(me.reserved)

    async def _expire(
        self,
        s: AsyncSession,
        row: models.Job,
        others: list[models.JobWorker],
        worker_id: str,
        now: datetime,
    ) -> None:
        dead = [w for w in others if w.heartbeat_at < now - self.lease]
        if not dead:
            return
        for w in dead:
            await s.delete(w)
        if row.study_id is not None:
            row.trials_completed = await asyncio.to_thread(
                self.studies.count_complete, row.study_id
            )
        if row.lease_owner in {w.worker_id for w in dead}:
            row.lease_owner = worker_id

    @staticmethod
    def _stop_reason(row: models.Job, now: datetime) -> str:
        spec = row.spec
        if row.trials_completed >= row.trials_total:
            return "budget"
        timeout = float(spec.get("timeout_s") or 0)
        if (
            timeout
            and row.started_at is not None
            and (now - row.started_at).total_seconds() >= timeout
        ):
            return "timeout"
        patience = int(spec.get("patience") or 0)
        best = row.best_trial if row.best_trial is not None else -1
        if patience and row.trials_completed - 1 - best >= patience:
            return "early_stopping"
        return ""

    async def fence(self, job_id: str, worker_id: str) -> bool:
        """True if this worker may write the batch it reserved (its lease is still valid)."""
        return await self.heartbeat(job_id, worker_id)

    async def record(self, job_id: str, worker_id: str, batch: BatchRecord) -> Recorded | None:
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            if row is None:
                return None
            me = await s.get(W, (job_id, worker_id))
            if me is None and row.study_id is not None:
                # Presumed dead and recounted meanwhile: the study is the truth.
                row.trials_completed = await asyncio.to_thread(
                    self.studies.count_complete, row.study_id
                )
            else:
                row.trials_completed += batch.count
            if me is not None:
                me.reserved = 0
                me.trials_done += batch.count
                me.heartbeat_at = now
            if batch.best_value is not None and is_better(
                batch.best_value, row.best_value, batch.direction
            ):
                row.best_value = batch.best_value
                row.best_params = batch.best_params
                row.best_trial = batch.best_trial
            row.progress_seq += batch.count
            row.last_trial = batch.last_trial.to_dict()
            pace = batch.pace.advance(row.trials_completed, now)
            row.throughput = pace.rate
            row.eta_seconds = _eta(row, pace.rate, now)
            row.lease_expires_at = now + self.lease
            await s.flush()
            return Recorded(JobView.from_row(row), pace)

    async def begin_finalize(self, job_id: str, worker_id: str) -> bool:
        """Exactly one worker validates and closes a job; True if it is this one."""
        now = utcnow()
        async with self.db.transaction() as s:
            done = await s.execute(
                update(J)
                .where(J.id == job_id, J.state == RUNNING, J.phase == OPTIMIZING)
                .values(
                    phase=FINALIZING,
                    lease_owner=worker_id,
                    lease_expires_at=now + self.lease,
                    updated_at=now,
                )
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def finish(
        self, job_id: str, state: str, *, result: dict[str, Any] | None = None, error: str = ""
    ) -> JobView | None:
        """Ends a running job (no-op if it already ended); returns the final snapshot."""
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            if row is None:
                return None
            if row.state in TERMINAL:
                return JobView.from_row(row)
            self._end(row, state, now)
            if result is not None:
                row.result = {**(row.result or {}), **result}
            if error:
                row.error = error[:4000]
            await s.execute(delete(W).where(W.job_id == job_id))
            await s.flush()
            return JobView.from_row(row)

    async def save_result(self, job_id: str, extra: dict[str, Any]) -> None:
        """Caches derived results (importances) on a job."""
        async with self.db.transaction() as s:
            row = await s.get(J, job_id)
            if row is not None:
                row.result = {**(row.result or {}), **extra}

    async def leave(self, job_id: str, worker_id: str, *, requeue: bool) -> JobView | None:
        """Stops taking part. With `requeue`, a job nobody else is working on goes back to the
        queue at once (graceful shutdown) instead of waiting for its lease to expire."""
        now = utcnow()
        async with self.db.transaction() as s:
            row = await self._lock(s, job_id, now)
            await s.execute(delete(W).where(W.job_id == job_id, W.worker_id == worker_id))
            if not requeue:
                return None
            live = await s.execute(
                select(func.count())
                .select_from(W)
                .where(W.job_id == job_id, W.heartbeat_at >= now - self.lease)
            )
            if row is None or row.state != RUNNING or live.scalar_one():
                return None
            row.state = QUEUED
            row.phase = ""
            row.lease_owner = ""
            row.lease_expires_at = None
            row.progress_seq += 1
            await s.flush()
            return JobView.from_row(row)

    # -- helpers ------------------------------------------------------------------------

    async def _lock(self, s: AsyncSession, job_id: str, now: datetime) -> models.Job | None:
        """The job row, write-locked for the rest of the transaction on both backends.

        An UPDATE takes the row lock on PostgreSQL and the database write lock on SQLite, so
        the read that follows cannot interleave with another worker's read-modify-write.
        """
        await s.execute(update(J).where(J.id == job_id).values(updated_at=now))
        return (await s.execute(select(J).where(J.id == job_id))).scalar_one_or_none()

    @staticmethod
    def _end(row: models.Job, state: str, now: datetime) -> None:
        row.state = state
        row.phase = ""
        row.ended_at = now
        row.updated_at = now
        row.lease_owner = ""
        row.lease_expires_at = None
        row.eta_seconds = None
        row.progress_seq += 1


def _eta(row: models.Job, rate: float, now: datetime) -> float | None:
    """Seconds left at the recent rate, or to the job's timeout if that comes first."""
    timeout = float(row.spec.get("timeout_s") or 0)
    timeout_left = None
    if timeout and row.started_at is not None:
        timeout_left = max(0.0, timeout - (now - row.started_at).total_seconds())
    return eta_seconds(rate, row.trials_total - row.trials_completed, timeout_left)
