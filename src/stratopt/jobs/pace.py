"""A job's throughput over the recent past, and the ETA that follows from it.

The average since a worker started is a poor guide for a long study: a TPE job that slowed
down kept an ETA from its fast start. Instead each worker keeps an exponentially weighted
rate: trials and seconds between two of its records are added to running sums that decay
with time constant `TAU_S`, and the rate is their ratio. Weighting by time (not by batch)
keeps it right when batches differ in length and when several workers' records interleave:
`completed` is the job's count, so what happened between a worker's two records, whoever did
it, is counted once. At the start it is simply the average so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

TAU_S = 10.0
"""Seconds over which the rate forgets: what happened half a minute ago weighs e^-3 = 5 %."""


@dataclass(frozen=True)
class Pace:
    """One worker's view of a job's pace as of `at`, when `completed` trials were done."""

    at: datetime
    completed: int
    trials: float = 0.0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Trials per second (all workers together); 0 until some time has passed."""
        return self.trials / self.seconds if self.seconds > 0 else 0.0

    def advance(self, completed: int, now: datetime, tau_s: float = TAU_S) -> Pace:
        """The pace once the job has `completed` trials at `now`."""
        dt = (now - self.at).total_seconds()
        if dt <= 0:
            return Pace(self.at, completed, self.trials + completed - self.completed, self.seconds)
        decay = math.exp(-dt / tau_s)
        return Pace(
            now,
            completed,
            self.trials * decay + (completed - self.completed),
            self.seconds * decay + dt,
        )


def eta_seconds(rate: float, left: int, timeout_left: float | None = None) -> float | None:
    """Seconds to finish `left` trials at `rate`, or to the timeout if that comes first."""
    eta = left / rate if rate > 0 else None
    if timeout_left is not None:
        eta = timeout_left if eta is None else min(eta, timeout_left)
    return eta
