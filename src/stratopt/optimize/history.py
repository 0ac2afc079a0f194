"""What a sampler sees of a long study: all of it, or (TPE) a bounded window.

Optuna's TPE rebuilds its two Parzen estimators from every finished trial on every ask, in
Python, at about 6 µs per trial per ask: a 20,000-trial study gets slower trial after trial
(190 trials/s over the first 1,000, 30 over the fourth thousand, on 100,000 bars). Past
`recent + step` trials TPE therefore sees a window of the history instead of all of it:

* the `best` best trials of everything before the window, ranked as TPE ranks them (feasible
  ones by value, then infeasible ones by total violation; for several objectives, by Pareto
  layer). With one objective TPE's good group is at most 25 trials (`default_gamma`), so
  keeping 25 means the good group is exactly the one the whole history would give;
* the most recent trials, between `recent` and `recent + step` of them: the window's start
  moves forward `step` trials at a time, so the sampling study is rebuilt only that often.

TPE's "bad" group then describes the recent search rather than the whole history (where the
oldest trials carry little weight anyway: Optuna weighs them down linearly with age).

The window is a function of the history (in the order the study learned it) and of its length
alone, and the best trials are folded in `step` trials at a time whatever the batch sizes:
a study resumed after a crash, which learns its history all at once, sees exactly the window
an uninterrupted one saw, so seeded studies still repeat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from stratopt.optimize.analysis import constraint_values


@dataclass(frozen=True)
class Window:
    """How much history a sampler sees once the study is long."""

    recent: int = 500
    step: int = 250
    best: int = 25
    """Best trials kept from before the window, with one objective. With several, TPE's good
    group is 10 % of the trials it sees (no cap), so the window keeps 10 % of `recent + step`
    instead, Pareto layer by layer (the last layer cut by age)."""

    def __post_init__(self) -> None:
        if self.recent < 250 or self.step < 1 or self.best < 1:
            # Below 250 trials TPE's good group shrinks under 25 (ceil(10 %)).
            raise ValueError("a window needs recent >= 250, step >= 1 and best >= 1")

    def cut(self, known: int) -> int:
        """How many of the first `known` trials are behind the window (0: none, all seen)."""
        return max(0, (known - self.recent) // self.step * self.step)

    def kept(self, objectives: int) -> int:
        return self.best if objectives == 1 else math.ceil((self.recent + self.step) / 10)


TPE_WINDOW = Window()
"""The window of TPE studies; the other samplers see the whole history."""


def window_for(sampler: str) -> Window | None:
    return TPE_WINDOW if sampler == "tpe" else None


class History:
    """The trials a study has learned, in order, and the part of them the sampler sees.

    `add` takes trials in the order the study learns them (absorbed, then its own batches).
    `count` is how many it has learned in all; `visible()` is what the sampling study should
    hold, `moved()` says whether that changed other than by appending.
    """

    def __init__(self, directions: Sequence[str], window: Window | None) -> None:
        self.directions = tuple(directions)
        self.window = window
        self.count = 0
        self._cut = 0
        self._kept: list[tuple[int, FrozenTrial]] = []
        # Trials from index `_cut` on, with their history index.
        self._recent: list[tuple[int, FrozenTrial]] = []

    @property
    def cut(self) -> int:
        return self._cut

    def add(self, trials: Iterable[FrozenTrial]) -> None:
        for t in trials:
            if self.window is not None:
                self._recent.append((self.count, t))
            self.count += 1

    def moved(self) -> bool:
        """Moves the window's start to where `count` puts it; True if it moved."""
        if self.window is None:
            return False
        target = self.window.cut(self.count)
        if target == self._cut:
            return False
        step = self.window.step
        limit = self.window.kept(len(self.directions))
        while self._cut < target:
            chunk = self._recent[:step]
            self._recent = self._recent[step:]
            self._kept = best_of(self._kept + chunk, self.directions, limit)
            self._cut += step
        return True

    def visible(self) -> list[FrozenTrial]:
        """The window, oldest first (TPE weighs trials by their order)."""
        return [t for _, t in sorted(self._kept, key=lambda p: p[0])] + [t for _, t in self._recent]


def best_of(
    trials: Sequence[tuple[int, FrozenTrial]], directions: Sequence[str], limit: int
) -> list[tuple[int, FrozenTrial]]:
    """The `limit` best (index, trial) pairs as TPE ranks them; ties go to the older trial.

    Feasible completed trials first (by value, or by Pareto layer with several objectives),
    then infeasible ones by their total violation; other states never.
    """
    feasible: list[tuple[int, FrozenTrial]] = []
    infeasible: list[tuple[float, int, FrozenTrial]] = []
    for i, t in trials:
        if t.state != TrialState.COMPLETE or not t.values or any(map(math.isnan, t.values)):
            continue
        violation = sum(v for v in constraint_values(t) if v > 0)
        if violation > 0:
            infeasible.append((violation, i, t))
        else:
            feasible.append((i, t))
    if len(directions) == 1:
        sign = -1.0 if directions[0] == "maximize" else 1.0
        feasible.sort(key=lambda p: (sign * p[1].values[0], p[0]))
    else:
        feasible = _by_layer(feasible, directions, limit)
    infeasible.sort(key=lambda p: (p[0], p[1]))
    return (feasible + [(i, t) for _, i, t in infeasible])[:limit]


def _by_layer(
    trials: list[tuple[int, FrozenTrial]], directions: Sequence[str], limit: int
) -> list[tuple[int, FrozenTrial]]:
    """Non-dominated sorting, Pareto layer by layer (each oldest first) until `limit`."""
    trials = sorted(trials, key=lambda p: p[0])
    if not trials:
        return []
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    points = np.array([t.values for _, t in trials], dtype=np.float64) * signs
    # dominates[i, j]: i is no worse than j everywhere and better somewhere (minimizing).
    no_worse = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominates = no_worse & better
    beaten_by = dominates.sum(axis=0)
    left = np.ones(len(trials), dtype=bool)
    out: list[tuple[int, FrozenTrial]] = []
    while left.any() and len(out) < limit:
        layer = np.flatnonzero(left & (beaten_by == 0))
        out += [trials[k] for k in layer]
        left[layer] = False
        beaten_by = beaten_by - dominates[layer].sum(axis=0)
    return out
