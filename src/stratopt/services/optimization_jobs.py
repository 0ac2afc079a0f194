"""Optimization jobs as the API sees them: submit, read, cancel, watch, results, trials.

Everything a worker needs is resolved here, once, with the caller's rights: the strategy
(a type, or a stored strategy the caller may read), the dataset (one the caller may see),
defaults (objective, sampler) and the trial budget. The job row then holds a complete spec,
so workers anywhere can run it without asking who submitted it.

Limits per user: at most MAX_ACTIVE_PER_OWNER queued or running jobs (more is
RESOURCE_EXHAUSTED), of which the workers run MAX_RUNNING_PER_OWNER at a time (the rest
wait in the queue, in priority order).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from stratopt.engine import METRICS, ExecutionOptions, infer_periods_per_year
from stratopt.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
)
from stratopt.export.pine import Provenance, period_text
from stratopt.jobs.events import EventBus, JobEvent
from stratopt.jobs.repo import JobRepo, QueueState
from stratopt.jobs.views import QUEUED, JobView, TrialView
from stratopt.jobs.watch import JobFeeds
from stratopt.jobs.worker import LEASE_S, MAX_RUNNING_PER_OWNER
from stratopt.optimize.analysis import best_trial, importances, pareto_front
from stratopt.optimize.checks import check_spec
from stratopt.optimize.rdb import StudyStorage, TrialOrder
from stratopt.optimize.samplers import default_sampler
from stratopt.optimize.selection_bias import SelectionBias
from stratopt.optimize.space import build_space
from stratopt.optimize.spec import Objective, StudySpec
from stratopt.optimize.validation import ValidationReport, plan_problem
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy, owner_scope, require_owner
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.type_resolution import resolve, resolve_in
from stratopt.services.validation import ENSEMBLE_TYPE
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id
from stratopt.store.paging import (
    Cursor,
    decode_token,
    encode_token,
    page_size,
    query_hash,
    token_float,
    token_int,
)
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType

MAX_ACTIVE_PER_OWNER = 100
MAX_BATCH_ITEMS = 500
MIN_BARS = 20
DEFAULT_OBJECTIVE = Objective("sharpe", "maximize")
TRIAL_ORDERS: dict[str, TrialOrder] = {
    "": "number",
    "number": "number",
    "number asc": "number",
    "value": "value",
    "value asc": "value",
    "value desc": "value desc",
}


@dataclass(frozen=True)
class OptimizationResult:
    job: JobView
    best: TrialView | None
    pareto_front: list[TrialView]
    importances: dict[str, float]
    validation: ValidationReport | None
    selection_bias: SelectionBias | None = None


class OptimizationJobs:
    def __init__(
        self,
        db: Database,
        datasets: DatasetCatalog,
        studies: StudyStorage,
        bus: EventBus,
        *,
        lease_s: float = LEASE_S,
        running_limit: int = MAX_RUNNING_PER_OWNER,
    ) -> None:
        self.db = db
        self.datasets = datasets
        self.studies = studies
        self.bus = bus
        self.repo = JobRepo(db, studies, lease_s)
        # One producer per watched job, shared by all its watchers in this process.
        self.feeds = JobFeeds(self.repo, bus)
        self.running_limit = running_limit

    # -- submitting ---------------------------------------------------------------------

    async def start(self, principal: Principal, spec: StudySpec, priority: int) -> JobView:
        resolved = await self._resolve(principal, spec, "spec")
        await self._check_quota(principal, 1)
        row = self._row(principal, resolved, priority, "")
        (view,) = await self.repo.create([row])
        self.bus.notify_work()
        (view,) = await self._explain(principal, [view])
        return view

    async def batch_start(
        self,
        principal: Principal,
        base: StudySpec,
        strategy_types: Sequence[str],
        strategy_ids: Sequence[str],
        dataset_ids: Sequence[str],
        timeframes: Sequence[str],
        priority: int,
    ) -> tuple[str, list[JobView]]:
        """One job per strategy x dataset x timeframe; all are created, or none."""
        strategies = [("strategy_type", t) for t in strategy_types] + [
            ("strategy_id", i) for i in strategy_ids
        ]
        v = []
        if not strategies:
            v.append(
                FieldViolation("strategy_types", "give at least one strategy type or strategy id")
            )
        if not dataset_ids:
            v.append(FieldViolation("dataset_ids", "give at least one dataset"))
        count = len(strategies) * len(dataset_ids) * max(1, len(timeframes))
        if count > MAX_BATCH_ITEMS:
            v.append(FieldViolation("dataset_ids", f"{count} combinations (max {MAX_BATCH_ITEMS})"))
        if v:
            raise InvalidArgument.of(v)
        specs = []
        for kind, ref in strategies:
            for dataset_id in dataset_ids:
                for timeframe in timeframes or [""]:
                    item = replace(
                        base,
                        dataset_id=dataset_id,
                        timeframe=timeframe,
                        strategy_type=ref if kind == "strategy_type" else "",
                        strategy_id=ref if kind == "strategy_id" else "",
                    )
                    specs.append(await self._resolve(principal, item, "spec"))
        await self._check_quota(principal, len(specs))
        batch_id = new_id()
        views = await self.repo.create([self._row(principal, s, priority, batch_id) for s in specs])
        self.bus.notify_work()
        return batch_id, await self._explain(principal, views)

    async def _check_quota(self, principal: Principal, adding: int) -> None:
        active = await self.repo.count_active(principal.user_id)
        if active + adding > MAX_ACTIVE_PER_OWNER:
            raise ResourceExhausted(
                f"you have {active} queued or running jobs; at most {MAX_ACTIVE_PER_OWNER} at once",
                retry_after_seconds=30.0,
            )

    @staticmethod
    def _row(principal: Principal, spec: StudySpec, priority: int, batch_id: str) -> models.Job:
        budget = spec.budget
        if spec.sampler == "grid":
            space = build_space(spec.strategy(), spec.overrides)
            budget = min(budget, space.grid_size())
        return models.Job(
            id=new_id(),
            owner_id=principal.user_id,
            batch_id=batch_id,
            state=QUEUED,
            priority=priority,
            spec=json.loads(json.dumps(spec.to_dict())),
            shareable=spec.shareable,
            trials_total=budget,
            trials_completed=0,
            best_params={},
            last_trial={},
            result={},
            error="",
            progress_seq=0,
            attempts=0,
            cancel_requested=False,
            phase="",
            lease_owner="",
            throughput=0.0,
        )

    async def _resolve(self, principal: Principal, spec: StudySpec, prefix: str) -> StudySpec:
        spec, strategy = await self._strategy(principal, spec, prefix)
        spec = _with_defaults(spec)
        v = check_spec(spec, strategy, prefix)
        if not spec.dataset_id:
            v.append(FieldViolation(f"{prefix}.dataset_id", "required"))
        if v:
            raise InvalidArgument.of(v)
        row, bars = await self.datasets.load(
            principal, spec.dataset_id, spec.start_ns, spec.end_ns, spec.timeframe
        )
        if len(bars) < MIN_BARS:
            raise FailedPrecondition(
                f"the selected period has {len(bars)} bars; optimizing needs at least {MIN_BARS}"
            )
        problem = plan_problem(len(bars), spec.validation)
        if problem:
            raise InvalidArgument.field(f"{prefix}.validation", problem)
        # Every option is stored explicit, periods_per_year too (the runner would infer the
        # same value from the same bars), so a job echoes what it runs with from the start.
        execution = spec.execution.resolved()
        if execution.periods_per_year is None:
            execution = execution.replace(periods_per_year=infer_periods_per_year(bars.ts))
        return replace(spec, dataset_timeframe=row.timeframe, execution=execution)

    async def _strategy(
        self, principal: Principal, spec: StudySpec, prefix: str
    ) -> tuple[StudySpec, StrategyType]:
        if spec.strategy_id and spec.strategy_type:
            raise InvalidArgument.field(
                f"{prefix}.strategy_type", "give strategy_type or strategy_id, not both"
            )
        if spec.strategy_id:
            async with self.db.session() as s:
                stored = await load_strategy(s, principal, spec.strategy_id, Access.READ)
                if stored.strategy_type == ENSEMBLE_TYPE:
                    raise InvalidArgument.field(
                        f"{prefix}.strategy_id",
                        "ensembles cannot be optimized; optimize their members",
                    )
                try:
                    # A user type as the strategy's owner sees it (type_resolution.py).
                    found = await resolve_in(s, stored.strategy_type, user_id=stored.owner_id)
                except KeyError:
                    raise FailedPrecondition(
                        f"the strategy's type {stored.strategy_type!r} is no longer available"
                    ) from None
            strategy = found.stype
            baseline = dict(
                strategy.resolve(
                    {
                        k: v
                        for k, v in stored.parameters.items()
                        if k in {p.name for p in strategy.params}
                    }
                )
            )
            return replace(
                spec,
                strategy_type=strategy.name,
                definition=found.source.to_dict() if found.source else {},
                baseline=baseline,
                execution=spec.execution.over(ExecutionOptions.from_dict(stored.execution)),
            ), strategy
        if not spec.strategy_type:
            raise InvalidArgument.field(
                f"{prefix}.strategy_type", "give strategy_type or strategy_id"
            )
        try:
            found = await resolve(
                self.db, spec.strategy_type, user_id=principal.user_id, is_admin=principal.is_admin
            )
            definition = found.source.to_dict() if found.source else {}
            return replace(spec, definition=definition), found.stype
        except KeyError:
            raise InvalidArgument.field(
                f"{prefix}.strategy_type",
                f"unknown strategy type {spec.strategy_type!r}; "
                f"one of {', '.join(registry.names())}",
            ) from None

    # -- reading and cancelling ---------------------------------------------------------

    async def get(self, principal: Principal, job_id: str) -> JobView:
        view = await self.repo.view(job_id) if job_id else None
        (view,) = await self._explain(principal, [require_owner(principal, view, "job", job_id)])
        return view

    async def list_jobs(
        self, principal: Principal, state: str, batch_id: str, requested: int, token: str
    ) -> tuple[list[JobView], str]:
        views, out = await self.repo.list_jobs(
            owner_scope(principal), state, batch_id, requested, token
        )
        return await self._explain(principal, views), out

    async def cancel(self, principal: Principal, job_id: str) -> JobView:
        await self.get(principal, job_id)
        view, ended = await self.repo.cancel(job_id)
        if ended:
            self.bus.publish(JobEvent("state", view, view.progress_seq))
        return view

    async def watch(self, principal: Principal, job_id: str) -> AsyncIterator[JobEvent]:
        await self.get(principal, job_id)
        async for event in self.feeds.watch(job_id):
            if event.job.state == QUEUED:
                (job,) = await self._explain(principal, [event.job])
                event = replace(event, job=job)
            yield event

    async def _explain(self, principal: Principal, views: list[JobView]) -> list[JobView]:
        """Fills in why each queued job waits (one look at the queue for all of them)."""
        if not any(v.state == QUEUED for v in views):
            return views
        queue = await self.repo.queue_state()
        return [
            replace(v, state_reason=wait_reason(v, queue, self.running_limit, principal.user_id))
            if v.state == QUEUED
            else v
            for v in views
        ]

    # -- results ------------------------------------------------------------------------

    async def best_parameters(
        self, principal: Principal, job_id: str
    ) -> tuple[StrategyType, dict[str, Any], ExecutionOptions, Provenance]:
        """(strategy type, full best parameters, execution, provenance): what an export needs
        of a job; the provenance names the dataset, the period and the best objective values.
        A user type is the definition the job optimized, even if it was edited since."""
        job = await self.get(principal, job_id)
        if not job.best_params:
            raise FailedPrecondition("the job has no completed feasible trial yet")
        spec = job.spec
        stype = await asyncio.to_thread(spec.strategy)  # a user type may need compiling
        fixed = build_space(stype, spec.overrides).fixed
        metrics: dict[str, float] = {}
        if job.last_trial is not None and job.last_trial.number == job.best_trial:
            metrics.update(job.last_trial.metrics)
        if job.best_value is not None and len(spec.objectives) == 1:
            metrics[spec.objectives[0].metric] = job.best_value
        provenance = Provenance(
            source=f"jobs/{job.id}",
            strategy=f"best trial of optimization job {job.id}",
            dataset=f"datasets/{spec.dataset_id}",
            period=period_text(spec.start_ns, spec.end_ns),
            metrics=metrics,
            note=f"Optimized over {job.trials_completed} trials (in-sample metrics).",
        )
        return stype, {**fixed, **job.best_params}, spec.execution, provenance

    async def result(self, principal: Principal, job_id: str) -> OptimizationResult:
        job = await self.get(principal, job_id)
        if job.study_id is None:
            return OptimizationResult(job, None, [], {}, None)
        out = await asyncio.to_thread(self._analyse, job)
        if job.terminal and "importances" not in job.result:
            await self.repo.save_result(job.id, {"importances": out.importances})
        return out

    def _analyse(self, job: JobView) -> OptimizationResult:
        assert job.study_id is not None
        spec = job.spec
        trials = self.studies.read_trials(job.study_id)
        fixed = build_space(spec.strategy(), spec.overrides).fixed
        directions = [o.direction for o in spec.objectives]
        best = best_trial(trials, directions[0])
        front = pareto_front(trials, directions) if spec.multi_objective else []
        imp = job.result.get("importances")
        if imp is None:
            imp = importances(trials, directions)
        report = job.result.get("validation")
        bias = job.result.get("selection_bias")
        return OptimizationResult(
            job=job,
            best=TrialView.from_frozen(best, fixed) if best else None,
            pareto_front=[TrialView.from_frozen(t, fixed) for t in front],
            importances=dict(imp),
            validation=ValidationReport.from_dict(report) if report else None,
            selection_bias=SelectionBias.from_dict(bias) if bias else None,
        )

    async def trials(
        self, principal: Principal, job_id: str, order_by: str, requested: int, token: str
    ) -> tuple[list[TrialView], str]:
        job = await self.get(principal, job_id)
        order = TRIAL_ORDERS.get(order_by.strip().lower())
        if order is None:
            raise InvalidArgument.field("order_by", "one of: number, value, value desc")
        size = page_size(requested, default=100, maximum=1_000)
        qhash = query_hash(j=job_id, o=order)
        cursor = decode_token(token, qhash)
        if job.study_id is None:
            return [], ""
        after = (token_float(cursor.key), token_int(cursor.id)) if cursor else None
        found = await asyncio.to_thread(
            self.studies.page_trials, job.study_id, order, after, size + 1
        )
        stype = await asyncio.to_thread(job.spec.strategy)  # a user type may need compiling
        fixed = build_space(stype, job.spec.overrides).fixed
        views = [TrialView.from_frozen(t, fixed) for t in found]
        out = ""
        if len(views) > size:
            views = views[:size]
            last = views[-1]
            key = last.values[0] if last.values and order != "number" else 0.0
            out = encode_token(Cursor(key, str(last.number)), qhash)
        return views, out


def wait_reason(job: JobView, queue: QueueState, limit: int, viewer_id: str) -> str:
    """Why a queued job waits: its owner's running limit, or the workers (and jobs ahead)."""
    running = queue.running.get(job.owner_id, 0)
    if running >= limit:
        who = "you have" if viewer_id == job.owner_id else "its owner has"
        return f"waiting: {who} {_count(running, 'job')} running (limit {limit})"
    ahead = queue.ahead(job.id, limit)
    queued = f"{_count(ahead, 'job')} ahead in the queue" if ahead else ""
    if queue.busy_workers:
        detail = ", ".join(x for x in (f"{queue.busy_workers} busy", queued) if x)
        return f"waiting for a free worker ({detail})"
    return "waiting for a worker to claim it" + (f" ({queued})" if queued else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _with_defaults(spec: StudySpec) -> StudySpec:
    """Natural metric directions, the default objective and the default sampler."""
    objectives = tuple(
        Objective(o.metric, o.direction or METRICS[o.metric].direction)
        if o.metric in METRICS
        else o
        for o in spec.objectives
    ) or (DEFAULT_OBJECTIVE,)
    sampler = spec.sampler or default_sampler(len(objectives))
    return replace(spec, objectives=objectives, sampler=sampler)
