"""What an optimization study is asked to do, in domain terms (no protobuf, no database).

A `StudySpec` is stored as JSON in the job row, so it must round-trip exactly through
`to_dict` / `from_dict`: a worker on another machine rebuilds the same study from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from stratopt.engine.options import ExecutionOptions
from stratopt.strategies.base import StrategyType
from stratopt.strategies.user_types import TypeSource

Direction = Literal["maximize", "minimize"]
ParamValue = int | float | str

SAMPLERS = ("tpe", "random", "grid", "cmaes", "nsga2", "qmc")
MAX_TRIALS = 100_000
MAX_TIMEOUT_S = 7 * 86_400.0
MAX_OBJECTIVES = 4
MAX_BOUNDS = 16


@dataclass(frozen=True)
class ParamOverride:
    """Replaces one parameter's search distribution, pins it, or narrows its choices.

    `low`/`high` None keep the strategy type's bounds; `step` None keeps the type's step
    (continuous for floats without one); `log` True samples on a log scale (no step).
    """

    name: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    fixed: ParamValue | None = None
    choices: tuple[str, ...] = ()

    @property
    def reshapes(self) -> bool:
        """Whether the override redefines the numeric distribution (range, step or scale)."""
        return self.low is not None or self.high is not None or self.step is not None or self.log


@dataclass(frozen=True)
class Objective:
    """`direction` is "maximize" or "minimize"; "" (the metric's natural direction) is
    resolved when a job is submitted."""

    metric: str
    direction: str


@dataclass(frozen=True)
class MetricBound:
    """A feasibility constraint: min <= metric <= max, either side open when None."""

    metric: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ValidationPlan:
    holdout_fraction: float = 0.0
    walk_forward_windows: int = 0
    anchored: bool = False

    @property
    def requested(self) -> bool:
        return self.holdout_fraction > 0 or self.walk_forward_windows > 0


@dataclass(frozen=True)
class StudySpec:
    """One optimization: strategy x dataset x period, search space, objectives, budget."""

    strategy_type: str
    dataset_id: str
    strategy_id: str = ""
    start_ns: int = 0
    end_ns: int = 0
    timeframe: str = ""
    overrides: tuple[ParamOverride, ...] = ()
    objectives: tuple[Objective, ...] = ()
    sampler: str = "tpe"
    trials: int = 0
    timeout_s: float = 0.0
    bounds: tuple[MetricBound, ...] = ()
    seed: int | None = None
    patience: int = 0
    # Resolved when the job is submitted (every field explicit), so workers need nothing else.
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    validation: ValidationPlan = ValidationPlan()
    # Parameters of the stored strategy the job started from: evaluated first, as a baseline.
    baseline: dict[str, Any] = field(default_factory=dict)
    # The dataset's own timeframe when the job was created: resample only if `timeframe` differs.
    dataset_timeframe: str = ""
    # A user strategy type's definition (strategies/user_types.TypeSource.to_dict()), empty
    # for a built-in: a worker in any process compiles the type from the spec alone.
    definition: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def budget(self) -> int:
        """Trials to complete; a timeout-only study runs until the timeout or MAX_TRIALS."""
        return self.trials if self.trials > 0 else MAX_TRIALS

    @property
    def shareable(self) -> bool:
        """Whether several workers may add trials to this study at the same time.

        Seeded studies stay on one worker so the same seed gives the same trials; grid and
        QMC samplers walk a fixed sequence that two workers would each start from the top.
        """
        return self.seed is None and self.sampler not in ("grid", "qmc")

    def strategy(self) -> StrategyType:
        """The type to optimize: the user type the spec carries, or a built-in by name.

        KeyError for an unknown built-in; RuleError if a carried definition does not compile.
        """
        from stratopt.optimize.user_types import resolve  # imports the rule language

        source = TypeSource.from_dict(self.definition) if self.definition else None
        return resolve(self.strategy_type, source)

    def with_(self, **changes: Any) -> StudySpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "execution": self.execution.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudySpec:
        data = dict(d)
        data["overrides"] = tuple(
            ParamOverride(**{**o, "choices": tuple(o.get("choices", ()))})
            for o in data.get("overrides", ())
        )
        data["objectives"] = tuple(Objective(**o) for o in data.get("objectives", ()))
        data["bounds"] = tuple(MetricBound(**b) for b in data.get("bounds", ()))
        data["validation"] = ValidationPlan(**data.get("validation", {}))
        data["execution"] = ExecutionOptions.from_dict(data.get("execution", {}))
        return cls(**data)
