"""Batched ask/tell on an in-memory study that mirrors the durable one.

Optuna's RDB storage costs several SQL round trips per ask, per suggested parameter and per
tell. Sampling against an in-memory copy instead, and writing each finished batch to the
database in one transaction (`optimize.rdb`), removes that cost and gives a clean durability
rule: a trial exists in the durable study only once it is complete, so a crashed worker
leaves nothing half-done behind and a restarted one asks only for the trials still missing.
Trials other workers wrote are pulled in with `absorb` before each batch.

For TPE the in-memory study holds a bounded window of a long history (`optimize.history`):
TPE's cost per ask grows with every trial it sees, and so would Optuna's in-memory storage.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from stratopt.optimize import fast_tpe
from stratopt.optimize.analysis import METRICS_ATTR, study_directions
from stratopt.optimize.evaluate import Evaluation, Problem
from stratopt.optimize.history import History, Window, window_for
from stratopt.optimize.samplers import batch_seed, make_sampler

WORKER_ATTR = "worker"
DURATION_ATTR = "duration_ms"
INVALID_ATTR = "invalid"

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Finished:
    """A completed trial ready to be written: Optuna's view plus the scores behind it."""

    trial: FrozenTrial
    evaluation: Evaluation


class Optimizer:
    """Samples and scores batches for one study on behalf of one worker."""

    def __init__(
        self,
        problem: Problem,
        sampler: str,
        *,
        seed: int,
        salt: int = 0,
        worker_id: str = "",
        baseline: Mapping[str, Any] | None = None,
        window: Window | Literal["default"] | None = "default",
    ) -> None:
        """`window`: how much history the sampler sees ("default": `window_for(sampler)`,
        None: all of it)."""
        fast_tpe.install()
        self.problem = problem
        self.sampler_name = sampler
        self.seed = seed
        self.salt = salt
        self.worker_id = worker_id
        self._baseline = dict(baseline) if baseline else None
        self._history = History(
            problem.directions, window_for(sampler) if window == "default" else window
        )
        self._study = self._new_study()

    @property
    def size(self) -> int:
        """Trials the sampler knows about (absorbed plus own), in or out of its window."""
        return self._history.count

    @property
    def study(self) -> optuna.Study:
        """The sampling study: every trial, or the window of a long TPE study."""
        return self._study

    def absorb(self, trials: Iterable[FrozenTrial]) -> int:
        """Adds completed trials from the durable study (other workers', or a past attempt's)."""
        batch = [t for t in trials if t.state == TrialState.COMPLETE]
        self._history.add(batch)
        if not self._slide():
            self._study.add_trials(batch)
        return len(batch)

    def _slide(self) -> bool:
        """Rebuilds the sampling study when the history's window moved; True if it did."""
        if not self._history.moved():
            return False
        self._study = self._new_study()
        self._study.add_trials(self._history.visible())
        return True

    def _new_study(self) -> optuna.Study:
        return optuna.create_study(
            storage=InMemoryStorage(), directions=study_directions(self.problem.directions)
        )

    def run_batch(self, k: int) -> list[Finished]:
        """Asks k trials, scores them in one engine call, tells them; returns them finished."""
        with warnings.catch_warnings():
            # Optuna warns per trial about what a sampler ignores (constraints for CMA-ES...).
            warnings.simplefilter("ignore")
            return self._run_batch(k)

    def _run_batch(self, k: int) -> list[Finished]:
        self._slide()
        study = self._study
        study.sampler = self._sampler()
        if self._baseline is not None and self.size == 0:
            self._enqueue_baseline()
        self._baseline = None
        asked = [study.ask() for _ in range(k)]
        sampled = [self.problem.space.suggest(t) for t in asked]
        started = time.perf_counter()
        scores = self.problem.evaluate(sampled)
        per_trial_ms = (time.perf_counter() - started) * 1000 / max(k, 1)
        out = []
        for trial, ev in zip(asked, scores, strict=True):
            trial.set_user_attr(METRICS_ATTR, ev.metrics)
            trial.set_user_attr(WORKER_ATTR, self.worker_id)
            trial.set_user_attr(DURATION_ATTR, round(per_trial_ms, 4))
            if ev.invalid:
                trial.set_user_attr(INVALID_ATTR, ev.invalid)
            for name, amount in zip(self.problem.constraint_names, ev.violations, strict=True):
                trial.set_constraint(name, amount)
            out.append(Finished(study.tell(trial, list(ev.values)), ev))
        self._history.add(f.trial for f in out)
        return out

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return make_sampler(
            self.sampler_name,
            seed=batch_seed(self.seed, self.size, self.salt),
            base_seed=self.seed,
            space=self.problem.space,
        )

    def _enqueue_baseline(self) -> None:
        assert self._baseline is not None
        part = self.problem.space.searched_part(self._baseline)
        if part is None:
            return
        self._study.enqueue_trial(part)
