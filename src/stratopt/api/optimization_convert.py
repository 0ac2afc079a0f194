"""OptimizationService messages <-> optimization specs, job and trial snapshots."""

from __future__ import annotations

import math

from google.protobuf import duration_pb2

from stratopt.api.backtest_convert import metrics_to_pb
from stratopt.api.convert import (
    enum_from_pb,
    execution_from_pb,
    execution_to_pb,
    fill_params,
    finite,
    ns_to_pb,
    param_from_pb,
    param_to_pb,
    pb_to_ns,
    ts_to_pb,
)
from stratopt.errors import FieldViolation, InvalidArgument
from stratopt.jobs.events import JobEvent
from stratopt.jobs.views import JobView, TrialView
from stratopt.optimize.spec import (
    MetricBound,
    Objective,
    ParamOverride,
    StudySpec,
    ValidationPlan,
)
from stratopt.optimize.validation import ValidationReport
from stratopt.services.optimization_jobs import OptimizationResult
from stratopt.v1 import optimization_pb2 as pb

STATE_TO_PB = {
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "succeeded": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}
SAMPLER_TO_PB = {
    "tpe": pb.SAMPLER_TPE,
    "random": pb.SAMPLER_RANDOM,
    "grid": pb.SAMPLER_GRID,
    "cmaes": pb.SAMPLER_CMA_ES,
    "nsga2": pb.SAMPLER_NSGA_II,
    "qmc": pb.SAMPLER_QMC,
}
SAMPLER_FROM_PB = {v: k for k, v in SAMPLER_TO_PB.items()}
DIRECTION_TO_PB = {
    "maximize": pb.OPTIMIZE_DIRECTION_MAXIMIZE,
    "minimize": pb.OPTIMIZE_DIRECTION_MINIMIZE,
}
DIRECTION_FROM_PB = {v: k for k, v in DIRECTION_TO_PB.items()}
TRIAL_STATE_TO_PB = {
    "complete": pb.TRIAL_STATE_COMPLETE,
    "pruned": pb.TRIAL_STATE_PRUNED,
    "fail": pb.TRIAL_STATE_FAILED,
    "running": pb.TRIAL_STATE_RUNNING,
}
EVENT_TO_PB = {
    "snapshot": pb.JOB_EVENT_TYPE_SNAPSHOT,
    "state": pb.JOB_EVENT_TYPE_STATE_CHANGED,
    "trial": pb.JOB_EVENT_TYPE_TRIAL_COMPLETED,
}
PRIORITY_NAMES = {1: "low", 2: "normal", 3: "high", 4: "critical"}


def priority_from_pb(value: int, field: str = "priority") -> int:
    """The proto's numbers are the stored ones (1 low .. 4 critical); unset means normal."""
    if value == 0:
        return 2
    if value not in PRIORITY_NAMES:
        raise InvalidArgument.field(field, f"unknown enum value {value}")
    return value


def state_from_pb(value: int) -> str:
    return enum_from_pb(value, STATE_FROM_PB, "state")


# -- spec -----------------------------------------------------------------------------


def spec_from_pb(m: pb.OptimizationSpec, field: str = "spec") -> StudySpec:
    """The request's spec in domain form; shape errors (not meaning) are reported here."""
    v: list[FieldViolation] = []
    overrides = [
        _override_from_pb(o, f"{field}.search_space[{i}]", v) for i, o in enumerate(m.search_space)
    ]
    timeout = m.timeout.seconds + m.timeout.nanos / 1e9 if m.HasField("timeout") else 0.0
    if timeout < 0:
        v.append(FieldViolation(f"{field}.timeout", "must not be negative"))
    bounds = [
        MetricBound(
            c.metric.strip(),
            c.min if c.HasField("min") else None,
            c.max if c.HasField("max") else None,
        )
        for c in m.constraints
    ]
    tr = m.time_range
    spec = StudySpec(
        strategy_type=m.strategy_type.strip(),
        strategy_id=m.strategy_id.strip(),
        dataset_id=m.dataset_id.strip(),
        start_ns=pb_to_ns(tr.start_time, f"{field}.time_range.start_time")
        if tr.HasField("start_time")
        else 0,
        end_ns=pb_to_ns(tr.end_time, f"{field}.time_range.end_time")
        if tr.HasField("end_time")
        else 0,
        timeframe=m.timeframe.strip(),
        overrides=tuple(overrides),
        objectives=tuple(
            Objective(
                o.metric.strip(),
                enum_from_pb(o.direction, DIRECTION_FROM_PB, f"{field}.objectives[{i}].direction"),
            )
            for i, o in enumerate(m.objectives)
        ),
        sampler=enum_from_pb(m.sampler, SAMPLER_FROM_PB, f"{field}.sampler"),
        trials=m.trials,
        timeout_s=timeout,
        bounds=tuple(bounds),
        seed=m.seed if m.HasField("seed") else None,
        patience=m.early_stopping_patience,
        execution=execution_from_pb(m.execution, f"{field}.execution", v),
        validation=ValidationPlan(
            m.validation.holdout_fraction, m.validation.walk_forward_windows, m.validation.anchored
        ),
    )
    if v:
        raise InvalidArgument.of(v)
    return spec


def _override_from_pb(
    o: pb.ParameterOverride, field: str, v: list[FieldViolation]
) -> ParamOverride:
    fixed = None
    if o.HasField("fixed"):
        fixed = param_from_pb(o.fixed)
        if fixed is None:
            v.append(FieldViolation(f"{field}.fixed", "no value set"))
        elif isinstance(fixed, float) and not math.isfinite(fixed):
            v.append(FieldViolation(f"{field}.fixed", "must be finite"))
    ranged = o.min != 0 or o.max != 0
    return ParamOverride(
        name=o.name.strip(),
        low=o.min if ranged else None,
        high=o.max if ranged else None,
        step=o.step if o.step != 0 else None,
        log=o.log_scale,
        fixed=fixed,
        choices=tuple(o.choices),
    )


def spec_to_pb(s: StudySpec) -> pb.OptimizationSpec:
    m = pb.OptimizationSpec(
        strategy_type=s.strategy_type,
        strategy_id=s.strategy_id,
        dataset_id=s.dataset_id,
        timeframe=s.timeframe,
        sampler=SAMPLER_TO_PB.get(s.sampler, pb.SAMPLER_UNSPECIFIED),  # type: ignore[arg-type]
        trials=s.trials,
        early_stopping_patience=s.patience,
        execution=execution_to_pb(s.execution.resolved()),
    )
    if s.start_ns:
        m.time_range.start_time.CopyFrom(ns_to_pb(s.start_ns))
    if s.end_ns:
        m.time_range.end_time.CopyFrom(ns_to_pb(s.end_ns))
    for o in s.overrides:
        po = m.search_space.add(
            name=o.name, log_scale=o.log, step=o.step or 0.0, choices=list(o.choices)
        )
        if o.low is not None or o.high is not None:
            po.min, po.max = o.low or 0.0, o.high or 0.0
        if o.fixed is not None:
            po.fixed.CopyFrom(param_to_pb(o.fixed))
    for ob in s.objectives:
        m.objectives.add(metric=ob.metric, direction=DIRECTION_TO_PB.get(ob.direction, 0))  # type: ignore[arg-type]
    for b in s.bounds:
        c = m.constraints.add(metric=b.metric)
        if b.min is not None:
            c.min = b.min
        if b.max is not None:
            c.max = b.max
    if s.timeout_s:
        m.timeout.CopyFrom(_duration(s.timeout_s))
    if s.seed is not None:
        m.seed = s.seed
    m.validation.holdout_fraction = s.validation.holdout_fraction
    m.validation.walk_forward_windows = s.validation.walk_forward_windows
    m.validation.anchored = s.validation.anchored
    return m


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


# -- jobs, trials, events, results ---------------------------------------------------------


def job_to_pb(j: JobView) -> pb.Job:
    m = pb.Job(
        id=j.id,
        state=STATE_TO_PB[j.state],  # type: ignore[arg-type]
        priority=j.priority,  # type: ignore[arg-type]
        owner_id=j.owner_id,
        batch_id=j.batch_id,
        spec=spec_to_pb(j.spec),
        trials_completed=j.trials_completed,
        trials_total=j.trials_total,
        error=j.error,
        throughput=finite(j.throughput),
        attempts=j.attempts,
        state_reason=j.state_reason,
    )
    m.create_time.CopyFrom(ts_to_pb(j.created_at))
    if j.started_at is not None:
        m.start_time.CopyFrom(ts_to_pb(j.started_at))
    if j.ended_at is not None:
        m.end_time.CopyFrom(ts_to_pb(j.ended_at))
    if j.best_value is not None:
        m.best_value = j.best_value
    fill_params(m.best_parameters, j.best_params)
    if j.eta_seconds is not None and not j.terminal:
        m.eta.CopyFrom(_duration(max(0.0, j.eta_seconds)))
    return m


def trial_to_pb(t: TrialView) -> pb.TrialSummary:
    m = pb.TrialSummary(
        number=t.number,
        state=TRIAL_STATE_TO_PB.get(t.state, pb.TRIAL_STATE_UNSPECIFIED),  # type: ignore[arg-type]
        values=list(t.values),
        metrics=metrics_to_pb(t.metrics),
        feasible=t.feasible,
        duration_ms=t.duration_ms,
    )
    fill_params(m.parameters, t.params)
    if t.complete_time is not None:
        m.complete_time.CopyFrom(ts_to_pb(t.complete_time))
    return m


def event_to_pb(e: JobEvent) -> pb.WatchJobResponse:
    m = pb.WatchJobResponse(type=EVENT_TO_PB[e.type], job=job_to_pb(e.job))  # type: ignore[arg-type]
    if e.trial is not None:
        m.trial.CopyFrom(trial_to_pb(e.trial))
    m.time.CopyFrom(ts_to_pb(e.time))
    return m


def result_to_pb(r: OptimizationResult) -> pb.GetOptimizationResultResponse:
    m = pb.GetOptimizationResultResponse(job=job_to_pb(r.job))
    if r.best is not None:
        m.best_trial.CopyFrom(trial_to_pb(r.best))
    m.pareto_front.extend(trial_to_pb(t) for t in r.pareto_front)
    ranked = sorted(r.importances.items(), key=lambda kv: -kv[1])
    m.importances.extend(
        pb.ParameterImportance(parameter=k, importance=finite(v)) for k, v in ranked
    )
    if r.validation is not None:
        m.validation.CopyFrom(_validation_to_pb(r.validation))
    if (b := r.selection_bias) is not None:
        m.selection_bias.CopyFrom(
            pb.SelectionBias(
                deflated_sharpe_ratio=finite(b.deflated_sharpe_ratio),
                best_sharpe=finite(b.best_sharpe),
                expected_max_sharpe=finite(b.expected_max_sharpe),
                trials=b.trials,
                observations=b.observations,
            )
        )
    return m


def _validation_to_pb(v: ValidationReport) -> pb.ValidationReport:
    m = pb.ValidationReport(
        in_sample=metrics_to_pb(v.in_sample),
        walk_forward_efficiency=finite(v.walk_forward_efficiency),
    )
    if v.out_of_sample:
        m.out_of_sample.CopyFrom(metrics_to_pb(v.out_of_sample))
    m.walk_forward_windows.extend(metrics_to_pb(w) for w in v.walk_forward_windows)
    return m
