"""A job's progress while it runs: one line redrawn in place on a terminal, plain lines
otherwise.

On a terminal, rich draws a single line (state, bar, trials, best so far, throughput, ETA)
that fits the terminal's width: the "best" column is cut with an ellipsis rather than
wrapping, and the line is redrawn in place (carriage return, erase line). When stdout is
not a terminal (a pipe, a file, CI logs) nothing is redrawn and no escape code is written:
a plain line is printed when the state changes and then at most every PLAIN_EVERY_S
seconds or every 10% of the trials, and once at the end.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column

from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as pb

PLAIN_EVERY_S = 5.0
REDRAW_EVERY_S = 0.1


def state_name(job: pb.Job) -> str:
    return str(pb.JobState.Name(job.state)).removeprefix("JOB_STATE_").lower()


def _value(v: c.ParameterValue) -> str:
    kind = v.WhichOneof("kind")
    x = getattr(v, kind) if kind else "?"
    return f"{x:g}" if isinstance(x, float) else str(x)


def reason(job: pb.Job) -> str:
    """Why a queued job waits (when the server says)."""
    return str(getattr(job, "state_reason", "") or "")


def best_text(job: pb.Job) -> str:
    if job.state == pb.JOB_STATE_QUEUED and reason(job):
        return reason(job)
    metric = job.spec.objectives[0].metric if job.spec.objectives else "sharpe"
    if not job.HasField("best_value"):
        return f"best {metric} -"
    params = " ".join(f"{k}={_value(v)}" for k, v in sorted(job.best_parameters.items()))
    return f"best {metric} {job.best_value:.4g}" + (f" ({params})" if params else "")


def eta_text(job: pb.Job) -> str:
    if not job.HasField("eta"):
        return ""
    s = job.eta.seconds
    return (
        f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
        if s >= 3600
        else f"ETA {s // 60}:{s % 60:02d}"
    )


def plain_line(job: pb.Job) -> str:
    """One self-contained progress line (no escape codes)."""
    total = max(job.trials_total, 1)
    done = min(job.trials_completed, total)
    why = f" ({reason(job)})" if job.state == pb.JOB_STATE_QUEUED and reason(job) else ""
    parts = [
        f"job {job.id} {state_name(job)}{why}",
        f"{job.trials_completed}/{job.trials_total} trials ({100 * done // total}%)",
        best_text(job),
    ]
    if job.throughput:
        parts.append(f"{job.throughput:.1f} trials/s")
    if eta := eta_text(job):
        parts.append(eta)
    return ", ".join(parts)


class JobProgress:
    """Draws progress for the jobs events it is given (see the module docstring)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last_state = -1
        self._last_plain = 0.0
        self._last_decile = -1
        self._last_draw = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.tty:
            self._progress = Progress(
                TextColumn("{task.fields[state]}", table_column=Column(no_wrap=True, min_width=9)),
                BarColumn(bar_width=20),
                TextColumn(
                    "{task.completed:.0f}/{task.total:.0f}", table_column=Column(no_wrap=True)
                ),
                TextColumn(
                    "{task.fields[best]}",
                    markup=False,
                    table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
                ),
                TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True)),
                TextColumn("{task.fields[eta]}", table_column=Column(no_wrap=True)),
                console=Console(file=out, highlight=False),
                auto_refresh=False,
                expand=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def update(self, job: pb.Job) -> None:
        if self._progress is not None:
            self._draw(job)
        else:
            self._plain(job)

    def _draw(self, job: pb.Job) -> None:
        assert self._progress is not None
        fields: dict[str, Any] = {
            "state": state_name(job),
            "best": best_text(job),
            "rate": f"{job.throughput:.1f}/s" if job.throughput else "",
            "eta": eta_text(job),
        }
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("", total=max(job.trials_total, 1), **fields)
        self._progress.update(
            self._task, total=max(job.trials_total, 1), completed=job.trials_completed, **fields
        )
        now = time.monotonic()
        changed = job.state != self._last_state
        self._last_state = job.state
        if changed or now - self._last_draw >= REDRAW_EVERY_S:
            self._last_draw = now
            self._progress.refresh()

    def _plain(self, job: pb.Job) -> None:
        now = time.monotonic()
        total = max(job.trials_total, 1)
        decile = 10 * min(job.trials_completed, total) // total
        changed = job.state != self._last_state
        if changed or decile != self._last_decile or now - self._last_plain >= PLAIN_EVERY_S:
            self.out.write(plain_line(job) + "\n")
            self.out.flush()
            self._last_plain, self._last_decile, self._last_state = now, decile, job.state

    def close(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.refresh()
            self._progress.stop()
