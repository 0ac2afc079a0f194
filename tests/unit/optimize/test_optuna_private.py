"""Optuna's private API, as stratopt uses it, is still there: fails loudly on an upgrade."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import optuna
from optuna.trial import TrialState

from stratopt.optimize import optuna_private
from stratopt.optimize.rdb import StudyStorage, study_name

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src" / "stratopt"


def test_the_private_names_stratopt_uses_still_exist_with_the_same_shape() -> None:
    problems = optuna_private.check()
    assert not problems, (
        f"optuna {optuna.__version__} changed private API that stratopt relies on "
        "(see src/stratopt/optimize/optuna_private.py):\n  - " + "\n  - ".join(problems)
    )


def test_the_pin_in_pyproject_is_the_checked_series() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(r"optuna\b", d)]
    major, minor = (int(x) for x in optuna_private.TESTED_SERIES.split("."))
    assert f"<{major}.{minor + 1}" in pin.replace(" ", ""), (
        f"pyproject pins {pin!r}; optuna_private was checked against {major}.{minor} only: "
        f"pin optuna below {major}.{minor + 1}"
    )


def test_no_other_module_touches_optunas_private_api() -> None:
    private = re.compile(
        r"optuna(\.[A-Za-z0-9_]+)*\._|from optuna[\w.]* import _|\._trial_id\b|"
        r"\._get_trials\b|_truncnorm"
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "optuna_private.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not offenders, f"use stratopt.optimize.optuna_private instead: {offenders}"


def test_the_wrappers_work_against_a_real_rdb_storage(tmp_path: Path) -> None:
    storage = StudyStorage(f"sqlite+aiosqlite:///{tmp_path}/stratopt.db")
    try:
        sid = storage.ensure_study(study_name("priv"), ["maximize"])
        study = storage.load(sid)
        for v in (1.0, float("inf"), 3.0):
            t = study.ask()
            t.suggest_int("x", 1, 9)
            study.tell(t, v)
        trials = optuna_private.get_trials(storage.storage, sid, (TrialState.COMPLETE,), set(), -1)
        ids = [optuna_private.trial_id(t) for t in trials]
        assert ids == sorted(ids) and len(set(ids)) == 3
        assert [t.values[0] for t in storage.read_trials(sid, ids[0])] == [float("inf"), 3.0]
        assert optuna_private.stored_value(float("-inf"))[0] is None
    finally:
        storage.close()
