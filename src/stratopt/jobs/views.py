"""Read-only snapshots of jobs and trials: what the API, events and watchers pass around.

Snapshots are plain frozen dataclasses, detached from any database session, so an event can
be fanned out to many watchers and converted to protobuf without touching the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from optuna.trial import FrozenTrial

from stratopt.optimize.analysis import METRICS_ATTR, feasible
from stratopt.optimize.optimizer import DURATION_ATTR, WORKER_ATTR
from stratopt.optimize.spec import StudySpec
from stratopt.store import models

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
PRIORITIES = {"low": 1, "normal": 2, "high": 3, "critical": 4}
PRIORITY_NAMES = {v: k for k, v in PRIORITIES.items()}


@dataclass(frozen=True)
class TrialView:
    number: int
    state: str
    params: dict[str, Any]
    values: tuple[float, ...]
    metrics: dict[str, float]
    feasible: bool
    complete_time: datetime | None
    duration_ms: float
    worker: str = ""

    @classmethod
    def from_frozen(cls, t: FrozenTrial, fixed: Mapping[str, Any]) -> TrialView:
        """`fixed` are the job's pinned parameters, so `params` is always the full set."""
        done = t.datetime_complete
        return cls(
            number=t.number,
            state=t.state.name.lower(),
            params={**fixed, **t.params},
            values=tuple(float(v) for v in t.values or ()),
            metrics=dict(t.user_attrs.get(METRICS_ATTR, {})),
            feasible=feasible(t),
            complete_time=done.astimezone(UTC) if done is not None else None,
            duration_ms=float(t.user_attrs.get(DURATION_ATTR, 0.0)),
            worker=str(t.user_attrs.get(WORKER_ATTR, "")),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["values"] = list(self.values)
        d["complete_time"] = self.complete_time.isoformat() if self.complete_time else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialView:
        data = dict(d)
        data["values"] = tuple(data.get("values", ()))
        ct = data.get("complete_time")
        data["complete_time"] = datetime.fromisoformat(ct) if ct else None
        return cls(**data)


@dataclass(frozen=True)
class JobView:
    id: str
    owner_id: str
    batch_id: str
    state: str
    priority: int
    spec: StudySpec
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    attempts: int
    cancel_requested: bool
    trials_total: int
    trials_completed: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    throughput: float
    eta_seconds: float | None
    progress_seq: int
    error: str
    study_id: int | None = None
    last_trial: TrialView | None = None
    result: dict[str, Any] = field(default_factory=dict)
    # Why a queued job waits; filled in for readers (not stored: it changes as others run).
    state_reason: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def from_row(cls, row: models.Job) -> JobView:
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            batch_id=row.batch_id,
            state=row.state,
            priority=row.priority,
            spec=StudySpec.from_dict(row.spec),
            created_at=row.created_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            attempts=row.attempts,
            cancel_requested=row.cancel_requested,
            trials_total=row.trials_total,
            trials_completed=row.trials_completed,
            best_value=row.best_value,
            best_params=dict(row.best_params or {}),
            best_trial=row.best_trial,
            throughput=row.throughput,
            eta_seconds=row.eta_seconds,
            progress_seq=row.progress_seq,
            error=row.error,
            study_id=row.study_id,
            last_trial=TrialView.from_dict(row.last_trial) if row.last_trial else None,
            result=dict(row.result or {}),
        )
