"""Every use of Optuna's private API in stratopt, in one place.

Optuna does not promise to keep these names; `pyproject.toml` pins optuna to the minor
series they were checked against (`TESTED_SERIES`), and `check()` (run by
tests/unit/optimize/test_optuna_private.py) fails loudly, naming what changed, when an
upgrade removes or reshapes any of them. Nothing else in stratopt may import an
`optuna.*._private` module or touch an underscored Optuna attribute: go through the
functions here.

What is used, and why:

* `optuna.storages._rdb.models`: the SQLAlchemy tables of Optuna's RDB storage (`trials`,
  `trial_params`, `trial_values`, `trial_user_attributes`, `trial_system_attributes`,
  `studies`) and `TrialValueModel.value_to_stored_repr`. `optimize/rdb.py` writes a whole
  batch of completed trials with bulk INSERTs in one transaction (about 0.3 ms a trial
  instead of 5-18 ms through `add_trial`) and pages trials by value in SQL.
* `RDBStorage._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)`:
  reads only the trials written since a watermark, or a given set of ids, instead of
  `get_all_trials` reloading the whole study on every batch.
* `FrozenTrial._trial_id`: the storage's primary key of a trial, which is that watermark
  (trial ids grow in commit order; trial numbers are per study).
* `optuna.samplers._tpe._truncnorm._log_ndtr`: the hook `optimize/fast_tpe.py` replaces with
  a numba-compiled twin (TPE about 4x faster). `_log_ndtr_single` is Optuna's scalar
  formula, the reference the tests compare against.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable, Container
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial, TrialState
    from sqlalchemy import Table

TESTED_SERIES = "5.0"
"""The optuna major.minor this module was checked against; keep equal to pyproject's pin."""

_MODELS = "optuna.storages._rdb.models"
_TRUNCNORM = "optuna.samplers._tpe._truncnorm"

LogNdtr = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


# -- Optuna's RDB tables ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrialTables:
    trials: Table
    params: Table
    values: Table
    user_attrs: Table
    system_attrs: Table
    studies: Table


_TABLES = {
    "trials": ("TrialModel", "trials"),
    "params": ("TrialParamModel", "trial_params"),
    "values": ("TrialValueModel", "trial_values"),
    "user_attrs": ("TrialUserAttributeModel", "trial_user_attributes"),
    "system_attrs": ("TrialSystemAttributeModel", "trial_system_attributes"),
    "studies": ("StudyModel", "studies"),
}
_COLUMNS = {
    "trials": {
        "trial_id",
        "number",
        "study_id",
        "state",
        "datetime_start",
        "datetime_complete",
    },
    "params": {"trial_id", "param_name", "param_value", "distribution_json"},
    "values": {"trial_id", "objective", "value", "value_type"},
    "user_attrs": {"trial_id", "key", "value_json"},
    "system_attrs": {"trial_id", "key", "value_json"},
    "studies": {"study_id", "study_name"},
}
"""The columns `optimize/rdb.py` reads or writes, per table."""


@cache
def trial_tables() -> TrialTables:
    models = importlib.import_module(_MODELS)
    return TrialTables(**{key: getattr(models, cls).__table__ for key, (cls, _) in _TABLES.items()})


def stored_value(value: float) -> tuple[float | None, Any]:
    """(value column, value_type column) for an objective value, as Optuna stores it
    (infinities become NULL plus a type tag)."""
    models = importlib.import_module(_MODELS)
    stored, kind = models.TrialValueModel.value_to_stored_repr(float(value))
    return stored, kind


# -- reading trials --------------------------------------------------------------------------


def get_trials(
    storage: RDBStorage,
    study_id: int,
    states: Container[TrialState] | None,
    included_trial_ids: set[int],
    trial_id_greater_than: int,
) -> list[FrozenTrial]:
    """Trials in `states` (None: any) whose id is above `trial_id_greater_than` or in
    `included_trial_ids`."""
    found: list[FrozenTrial] = storage._get_trials(
        study_id, states, included_trial_ids, trial_id_greater_than
    )
    return found


def trial_id(trial: FrozenTrial) -> int:
    """The storage's id of a trial (unique across studies, grows in commit order)."""
    return int(trial._trial_id)


# -- the TPE log_ndtr hook -------------------------------------------------------------------


def _truncnorm() -> types.ModuleType:
    return importlib.import_module(_TRUNCNORM)


def log_ndtr_hook() -> LogNdtr:
    """The function Optuna's truncated-normal code calls for log(Phi(a))."""
    hook: LogNdtr = _truncnorm()._log_ndtr
    return hook


def set_log_ndtr(fn: LogNdtr) -> None:
    """Routes Optuna's truncated-normal code (TPE) through `fn`."""
    _truncnorm()._log_ndtr = fn  # type: ignore[attr-defined]


def log_ndtr_single(a: float) -> float:
    """Optuna's own scalar log(Phi(a)): the reference for a replacement hook."""
    return float(_truncnorm()._log_ndtr_single(a))


def has_log_ndtr_hook() -> bool:
    try:
        return hasattr(_truncnorm(), "_log_ndtr")
    except ImportError:
        return False


# -- the contract check ----------------------------------------------------------------------


def _params(fn: Any) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def check() -> list[str]:
    """What no longer matches in the installed Optuna: empty when everything used here is
    still there with the expected shape. Imports nothing eagerly, so a missing module is
    reported, not raised."""
    import optuna

    problems: list[str] = []
    series = ".".join(optuna.__version__.split(".")[:2])
    if series != TESTED_SERIES:
        problems.append(
            f"optuna {optuna.__version__} is not the checked series {TESTED_SERIES}: review "
            "this module against it, then update TESTED_SERIES and the pin in pyproject.toml"
        )

    try:
        models = importlib.import_module(_MODELS)
    except ImportError as e:
        problems.append(f"{_MODELS} cannot be imported ({e})")
    else:
        for key, (cls, table) in _TABLES.items():
            model = getattr(models, cls, None)
            if model is None:
                problems.append(f"{_MODELS}.{cls} is gone")
                continue
            t = model.__table__
            if t.name != table:
                problems.append(f"{_MODELS}.{cls} maps table {t.name!r}, not {table!r}")
            missing = _COLUMNS[key] - {c.name for c in t.columns}
            if missing:
                problems.append(f"table {table!r} lost columns {sorted(missing)}")
        to_stored = getattr(getattr(models, "TrialValueModel", None), "value_to_stored_repr", None)
        if to_stored is None:
            problems.append(f"{_MODELS}.TrialValueModel.value_to_stored_repr is gone")
        else:
            try:
                stored, _kind = to_stored(1.5)
                infinite, _ = to_stored(float("inf"))
                if stored != 1.5 or infinite is not None:
                    problems.append("TrialValueModel.value_to_stored_repr changed its encoding")
            except Exception as e:
                problems.append(f"TrialValueModel.value_to_stored_repr(1.5) failed: {e!r}")

    from optuna.storages import RDBStorage

    want = ["study_id", "states", "included_trial_ids", "trial_id_greater_than"]
    getter = getattr(RDBStorage, "_get_trials", None)
    if getter is None:
        problems.append("RDBStorage._get_trials is gone")
    elif _params(getter) != want:
        problems.append(f"RDBStorage._get_trials takes {_params(getter)}, expected {want}")

    trial = optuna.trial.create_trial(value=1.0)
    if not isinstance(getattr(trial, "_trial_id", None), int):
        problems.append("FrozenTrial._trial_id is gone or no longer an int")

    try:
        tn = _truncnorm()
    except ImportError as e:
        problems.append(f"{_TRUNCNORM} cannot be imported ({e})")
    else:
        for name, params in (("_log_ndtr", ["a"]), ("_log_ndtr_single", ["a"])):
            fn = getattr(tn, name, None)
            if fn is None:
                problems.append(f"{_TRUNCNORM}.{name} is gone")
            elif _params(fn) != params:
                problems.append(f"{_TRUNCNORM}.{name} takes {_params(fn)}, expected {params}")
        callers = [
            n
            for n, f in vars(tn).items()
            if isinstance(f, types.FunctionType) and "_log_ndtr" in _global_names(f.__code__)
        ]
        if not callers:
            problems.append(
                f"nothing in {_TRUNCNORM} looks up _log_ndtr as a global any more: "
                "replacing it would no longer speed up TPE"
            )
    return problems
