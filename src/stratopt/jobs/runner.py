"""Running one optimization job on one worker: reserve, sample and score, write, record.

The loop runs on the event loop; the blocking steps (sampling, the numba sweep, Optuna's
tables) run in threads. A batch is written to the study before it is counted, and counted
before it is announced, so watchers never see a trial a crash could take back.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from stratopt.data.bars import Bars
from stratopt.data.errors import DataError
from stratopt.data.resample import resample
from stratopt.data.storage import DatasetStore
from stratopt.engine import infer_periods_per_year
from stratopt.errors import StratoptError
from stratopt.jobs.events import EventBus, JobEvent
from stratopt.jobs.pace import Pace
from stratopt.jobs.repo import BatchRecord, Claim, JobRepo, Reservation
from stratopt.jobs.views import CANCELLED, FAILED, SUCCEEDED, JobView, TrialView
from stratopt.optimize.analysis import feasible_metric, is_better
from stratopt.optimize.evaluate import Problem
from stratopt.optimize.optimizer import Finished, Optimizer
from stratopt.optimize.optuna_private import trial_id
from stratopt.optimize.rdb import StudyStorage, study_name
from stratopt.optimize.selection_bias import SelectionBias, selection_bias
from stratopt.optimize.space import build_space
from stratopt.optimize.spec import StudySpec
from stratopt.optimize.validation import in_sample_bars, validate
from stratopt.store.models import utcnow
from stratopt.store.outages import FailureLog

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger("stratopt.jobs")
IDLE_WAIT_S = 0.05


def failure_text(e: Exception, job_id: str) -> str:
    """What `Job.error` tells the user: the message of an error meant for users (a domain
    or data error), otherwise a plain sentence pointing at the server log. Never a class
    name, memory address or traceback (those are in the log, under the job id)."""
    if isinstance(e, StratoptError | DataError):
        text = e.message if isinstance(e, StratoptError) else str(e)
        return text[:1000]
    return (
        "the optimization stopped on an internal error; "
        f"the server log has the details (job {job_id})"
    )


def batch_size(spec: StudySpec) -> int:
    """Trials per ask/score/write round: a pure function of the spec, so a seeded study has
    the same batch boundaries (and therefore the same trials) wherever and whenever it runs."""
    return min(16, max(4, spec.budget // 25))


def job_seed(spec: StudySpec, job_id: str) -> int:
    return spec.seed if spec.seed is not None else int(job_id[:12], 16)


@dataclass
class StudyRun:
    """One worker's working state for one job."""

    spec: StudySpec
    study_id: int
    optimizer: Optimizer
    bars: Bars
    watermark: int = -1
    own: set[int] = field(default_factory=set)
    pace: Pace = field(default_factory=lambda: Pace(utcnow(), 0))


@dataclass(frozen=True)
class RunnerContext:
    repo: JobRepo
    studies: StudyStorage
    datasets: DatasetStore
    bus: EventBus
    worker_id: str
    heartbeat_s: float


class JobRunner:
    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx

    async def run(self, claim: Claim) -> None:
        ctx = self.ctx
        job = claim.job
        if claim.started or job.terminal:
            self._publish("state", job)
        if job.terminal:  # claimed only to be given up on (too many interruptions)
            return
        beat = asyncio.create_task(self._heartbeat(job.id))
        try:
            await self._run(job)
        except asyncio.CancelledError:
            requeued = await asyncio.shield(ctx.repo.leave(job.id, ctx.worker_id, requeue=True))
            if requeued is not None:
                self._publish("state", requeued)
            raise
        except Exception as e:
            log.exception("job failed", extra={"job_id": job.id})
            await self._end(job.id, FAILED, error=failure_text(e, job.id))
        finally:
            beat.cancel()

    async def _run(self, job: JobView) -> None:
        ctx = self.ctx
        run = await asyncio.to_thread(self._prepare, job)
        if job.study_id is None:
            await ctx.repo.set_study(job.id, run.study_id)
        run.pace = Pace(utcnow(), job.trials_completed)
        while True:
            r = await ctx.repo.reserve(job.id, ctx.worker_id, batch_size(run.spec))
            if r.stop or r.granted == 0:
                if await self._stop(job, r, run):
                    return
                await asyncio.sleep(IDLE_WAIT_S)
                continue
            finished = await asyncio.to_thread(self._batch, run, r.granted)
            if not await ctx.repo.fence(job.id, ctx.worker_id):
                continue  # presumed dead meanwhile: the next reserve says "lost"
            ids = await asyncio.to_thread(
                ctx.studies.write_trials, run.study_id, [f.trial for f in finished]
            )
            run.own.update(tid for tid, _ in ids)
            await self._record(job, run, finished, [n for _, n in ids])

    async def _stop(self, job: JobView, r: Reservation, run: StudyRun) -> bool:
        """Acts on a stop reason; False means "nothing granted yet, ask again shortly" (the
        rest of the budget is reserved by other workers, or by one about to be presumed dead).
        """
        if r.stop == "cancelled":
            await self._end(job.id, CANCELLED)
            return True
        if r.stop in ("gone", "lost"):
            return True
        if r.stop:
            await self._finalize(job, run, r.stop)
            return True
        return False

    def _prepare(self, job: JobView) -> StudyRun:
        ctx = self.ctx
        spec = job.spec
        strategy = spec.strategy()
        full = load_bars(ctx.datasets, spec)
        # The stored spec carries the resolved options; the whole period's bar spacing
        # fixes periods_per_year once, so in-sample and held-out metrics agree.
        cfg = spec.execution
        if cfg.periods_per_year is None:
            cfg = cfg.replace(periods_per_year=infer_periods_per_year(full.ts))
        cut = in_sample_bars(len(full.ts), spec.validation)
        problem = Problem(
            build_space(strategy, spec.overrides),
            full.slice(0, cut),
            cfg,
            spec.objectives,
            spec.bounds,
        )
        study_id = job.study_id or ctx.studies.ensure_study(study_name(job.id), problem.directions)
        optimizer = Optimizer(
            problem,
            spec.sampler,
            seed=job_seed(spec, job.id),
            salt=zlib.crc32(ctx.worker_id.encode()) if spec.shareable else 0,
            worker_id=ctx.worker_id,
            baseline=spec.baseline,
        )
        run = StudyRun(spec, study_id, optimizer, full)
        self._sync(run)
        return run

    def _sync(self, run: StudyRun) -> None:
        """Pulls in trials written since the last look (by others, or by a past attempt).

        Only their ids are read first: the trials this worker wrote itself are not loaded
        again (that cost about 0.5 ms a trial).
        """
        studies = self.ctx.studies
        ids = studies.trial_ids_after(run.study_id, run.watermark)
        if not ids:
            return
        others = [i for i in ids if i not in run.own]
        if len(others) == len(ids):  # none of ours (a resumed or shared study): read them all
            fresh = studies.read_trials(run.study_id, run.watermark)
        else:
            fresh = studies.trials_by_id(run.study_id, others)
        run.watermark = max([*ids, *(trial_id(t) for t in fresh)])
        run.optimizer.absorb(fresh)
        run.own = {i for i in run.own if i > run.watermark}

    def _batch(self, run: StudyRun, k: int) -> list[Finished]:
        self._sync(run)
        return run.optimizer.run_batch(k)

    async def _record(
        self,
        job: JobView,
        run: StudyRun,
        finished: list[Finished],
        numbers: list[int],
    ) -> None:
        fixed = run.optimizer.problem.space.fixed
        views = [
            replace(TrialView.from_frozen(f.trial, fixed), number=n)
            for f, n in zip(finished, numbers, strict=True)
        ]
        direction = run.spec.objectives[0].direction
        best: TrialView | None = None
        for v in views:
            if v.feasible and (best is None or is_better(v.values[0], best.values[0], direction)):
                best = v
        record = BatchRecord(
            count=len(views),
            best_value=best.values[0] if best else None,
            best_params=best.params if best else {},
            best_trial=best.number if best else None,
            direction=direction,
            last_trial=views[-1],
            pace=run.pace,
        )
        recorded = await self.ctx.repo.record(job.id, self.ctx.worker_id, record)
        if recorded is None:
            return
        view, run.pace = recorded.view, recorded.pace
        first_seq = view.progress_seq - len(views)
        for i, v in enumerate(views):
            self.ctx.bus.publish(JobEvent("trial", view, first_seq + i + 1, trial=v))

    async def _finalize(self, job: JobView, run: StudyRun, reason: str) -> None:
        ctx = self.ctx
        if not await ctx.repo.begin_finalize(job.id, ctx.worker_id):
            return
        result = await asyncio.to_thread(self._validation, run, reason)
        await self._end(job.id, SUCCEEDED, result=result)

    def _validation(self, run: StudyRun, reason: str) -> dict[str, object]:
        spec = run.spec
        problem = run.optimizer.problem
        best = self.ctx.studies.best_trial(run.study_id, spec.objectives[0].direction)
        result: dict[str, object] = {"stop_reason": reason, "validation": None}
        if best is None:
            result["note"] = "no trial satisfied every constraint"
            return result
        if spec.validation.requested:
            params = problem.space.full_params(best.params)
            assert problem.config.periods_per_year is not None
            report = validate(
                run.bars,
                problem.space.strategy,
                params,
                problem.config,
                spec.validation,
                spec.objectives[0].metric,
                problem.config.periods_per_year,
            )
            result["validation"] = report.to_dict()
        try:
            result["selection_bias"] = self._selection_bias(run, best).to_dict()
        except Exception:  # a diagnostic: never fail a finished search over it
            log.exception("deflated Sharpe ratio failed", extra={"study_id": run.study_id})
        return result

    def _selection_bias(self, run: StudyRun, best: FrozenTrial) -> SelectionBias:
        """The deflated Sharpe ratio of the winner among every trial, on the in-sample bars."""
        problem = run.optimizer.problem
        assert problem.config.periods_per_year is not None
        sharpes = feasible_metric(self.ctx.studies.read_trials(run.study_id), "sharpe")
        in_sample = run.bars.slice(0, in_sample_bars(len(run.bars), run.spec.validation))
        return selection_bias(
            in_sample,
            problem.space.strategy,
            problem.space.full_params(best.params),
            problem.config,
            problem.config.periods_per_year,
            sharpes,
        )

    async def _end(self, job_id: str, state: str, **kw: object) -> None:
        try:
            view = await self.ctx.repo.finish(job_id, state, **kw)  # type: ignore[arg-type]
        except Exception:
            log.exception("could not record the end of job %s", job_id)
            return
        if view is not None:
            self._publish("state", view)

    def _publish(self, kind: str, view: JobView) -> None:
        self.ctx.bus.publish(JobEvent(kind, view, view.progress_seq))  # type: ignore[arg-type]

    async def _heartbeat(self, job_id: str) -> None:
        failing = FailureLog(log, "heartbeat failed", extra={"job_id": job_id})
        while True:
            await asyncio.sleep(self.ctx.heartbeat_s)
            try:
                if not await self.ctx.repo.heartbeat(job_id, self.ctx.worker_id):
                    return
            except Exception:
                failing.failed()
                continue
            failing.recovered()


def load_bars(store: DatasetStore, spec: StudySpec) -> Bars:
    """The job's period, read straight from the dataset files and resampled when the job asks
    for another timeframe than the dataset's.

    Not through the dataset service: visibility was checked when the job was created, and a
    `stratopt worker` on another machine has no caller to check it for. The files must
    therefore be reachable from every worker (one machine, or a shared folder).
    """
    bars = store.load(spec.dataset_id)
    if spec.start_ns or spec.end_ns:
        bars = bars.between(spec.start_ns or None, spec.end_ns or None)
    if spec.timeframe and spec.timeframe != spec.dataset_timeframe:
        bars = resample(bars, spec.timeframe)
    return bars
