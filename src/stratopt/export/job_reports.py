"""Optimization job reports: JSON (everything), CSV (one row per trial), HTML and PDF
(summary, best trial, charts, top trials) from one `JobReport`.

The inputs are what the job result already exposes (best trial, Pareto front, fANOVA
importances, the validation report) plus the completed trials, as plain values: this
layer does not read the database or the study.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stratopt.export import charts as ch
from stratopt.export.metric_format import fmt_metric, fmt_value, label
from stratopt.export.report_doc import (
    Chart,
    DataTable,
    KeyValues,
    Note,
    ReportDoc,
    Section,
    render_html,
    render_pdf,
)

MAX_LISTED_TRIALS = 50
TRIAL_METRICS = ("total_return", "sharpe", "max_drawdown", "num_trades", "win_rate")


@dataclass
class Trial:
    number: int
    params: Mapping[str, Any]
    values: Sequence[float]
    metrics: Mapping[str, float]
    feasible: bool
    complete_time: str = ""
    duration_ms: float = 0.0


@dataclass
class JobReport:
    job_id: str
    title: str
    state: str
    strategy_type: str
    objectives: Sequence[tuple[str, str]]  # (metric, direction)
    trials: Sequence[Trial]
    best: Trial | None
    pareto_front: Sequence[Trial]
    importances: Mapping[str, float]
    info: Mapping[str, str] = field(default_factory=dict)  # dataset, period, sampler, ...
    in_sample: Mapping[str, float] = field(default_factory=dict)
    out_of_sample: Mapping[str, float] = field(default_factory=dict)
    walk_forward_windows: Sequence[Mapping[str, float]] = field(default_factory=list)
    walk_forward_efficiency: float | None = None
    walk_forward_periods: Sequence[str] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    # The deflated Sharpe ratio of the winner (optimize.selection_bias), as a dict.
    selection_bias: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return self.objectives[0][0] if self.objectives else "sharpe"


def job_json(r: JobReport) -> bytes:
    body = {
        "title": r.title,
        "job_id": r.job_id,
        "state": r.state,
        "run": dict(r.info),
        "strategy_type": r.strategy_type,
        "objectives": [{"metric": m, "direction": d} for m, d in r.objectives],
        "spec": dict(r.spec),
        "best_trial": _trial_dict(r.best) if r.best else None,
        "pareto_front": [_trial_dict(t) for t in r.pareto_front],
        "importances": dict(r.importances),
        "selection_bias": dict(r.selection_bias) or None,
        "validation": {
            "in_sample": dict(r.in_sample),
            "out_of_sample": dict(r.out_of_sample),
            "walk_forward_windows": [dict(w) for w in r.walk_forward_windows],
            "walk_forward_efficiency": r.walk_forward_efficiency,
        },
        "trials": [_trial_dict(t) for t in r.trials],
    }
    return json.dumps(body, indent=2, default=str).encode()


def _trial_dict(t: Trial) -> dict[str, Any]:
    return {
        "number": t.number,
        "params": dict(t.params),
        "values": list(t.values),
        "metrics": dict(t.metrics),
        "feasible": t.feasible,
        "complete_time": t.complete_time,
        "duration_ms": t.duration_ms,
    }


def trials_csv(r: JobReport) -> bytes:
    """One row per completed trial: number, objective values, parameters, metrics."""
    params = sorted({k for t in r.trials for k in t.params})
    metrics = sorted({k for t in r.trials for k in t.metrics})
    rows = []
    for t in r.trials:
        row: dict[str, Any] = {"number": t.number, "feasible": t.feasible}
        for i, (m, _) in enumerate(r.objectives):
            row[f"objective_{m}"] = t.values[i] if i < len(t.values) else None
        row.update({f"param_{k}": t.params.get(k) for k in params})
        row.update({f"metric_{k}": t.metrics.get(k) for k in metrics})
        row["complete_time"] = t.complete_time
        row["duration_ms"] = t.duration_ms
        rows.append(row)
    cols = [
        "number", "feasible", *(f"objective_{m}" for m, _ in r.objectives),
        *(f"param_{k}" for k in params), *(f"metric_{k}" for k in metrics),
        "complete_time", "duration_ms",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols).to_csv(index=False).encode()


def job_html(r: JobReport, *, charts: bool = True) -> bytes:
    return render_html(job_doc(r, charts=charts))


def job_pdf(r: JobReport, *, charts: bool = True) -> bytes:
    return render_pdf(job_doc(r, charts=charts))


def job_doc(r: JobReport, *, charts: bool) -> ReportDoc:
    objectives = ", ".join(f"{d} {label(m)}" for m, d in r.objectives)
    run = [
        ("Job", r.job_id),
        ("State", r.state),
        ("Strategy type", r.strategy_type),
        ("Objectives", objectives),
        ("Completed trials", f"{len(r.trials):,}"),
        *r.info.items(),
    ]
    summary: list[Any] = [KeyValues("Run", run)]
    if r.best is not None:
        best = [("Trial", str(r.best.number)), ("Parameters", _params(r.best.params))]
        best += [(label(m), fmt_metric(m, v)) for m, v in r.best.metrics.items()]
        summary.append(KeyValues("Best trial (in-sample)", best))
    else:
        summary.append(Note("No completed feasible trial."))
    if r.walk_forward_efficiency is not None and r.walk_forward_windows:
        summary.append(
            KeyValues(
                "Validation",
                [("Walk-forward efficiency", f"{r.walk_forward_efficiency:.3f}")],
            )
        )
    if b := r.selection_bias:
        summary.append(
            KeyValues(
                "Selection bias (the best of many trials flatters)",
                [
                    ("Deflated Sharpe ratio", f"{b.get('deflated_sharpe_ratio', 0.0):.3f}"),
                    ("Best Sharpe ratio (annualized)", f"{b.get('best_sharpe', 0.0):.3f}"),
                    (
                        "Best expected by chance",
                        f"{b.get('expected_max_sharpe', 0.0):.3f} from "
                        f"{b.get('trials', 0):,} trials",
                    ),
                    ("Observations (bars)", f"{b.get('observations', 0):,}"),
                ],
            )
        )
        summary.append(
            Note(
                "The deflated Sharpe ratio is the probability (0 to 1) that the best trial's "
                "true Sharpe ratio is above zero, given how many trials were tried."
            )
        )
    sections = [Section("Summary", summary)]
    if charts:
        sections.append(Section("Charts", _job_charts(r)))
    if r.in_sample or r.out_of_sample:
        names = [n for n in r.in_sample if n in r.out_of_sample] or list(r.in_sample)
        rows = [
            [label(n), fmt_metric(n, r.in_sample.get(n)), fmt_metric(n, r.out_of_sample.get(n))]
            for n in names
        ]
        sections.append(
            Section(
                "In-sample and out-of-sample",
                [DataTable("", ["metric", "in-sample", "out-of-sample"], rows)],
            )
        )
    if r.pareto_front:
        sections.append(Section("Pareto front", [_trial_table(r, r.pareto_front, "")]))
    sections.append(Section("Top trials", [_top_trials(r)]))
    return ReportDoc(
        title=r.title,
        subtitle=f"{r.strategy_type}; {objectives}; " + ", ".join(v for v in r.info.values() if v),
        sections=sections,
    )


def _job_charts(r: JobReport) -> list[Chart | Note]:
    out: list[Chart | Note] = []
    # Trials that broke a parameter rule were not run: their values are the optimizer's
    # penalty, not results, and would flatten every axis.
    trials = [t for t in r.trials if t.values and t.metrics]
    skipped = sum(1 for t in r.trials if t.values and not t.metrics)
    if not trials:
        return [Note("No trial ran to completion: nothing to chart.")]
    metric, direction = r.objectives[0] if r.objectives else ("sharpe", "maximize")
    caption = (
        f"{skipped} trials broke a parameter rule, were not run and are not plotted."
        if skipped
        else ""
    )
    out.append(
        Chart(
            "history", "Optimization history",
            ch.history_chart([t.number for t in trials], [t.values[0] for t in trials],
                             [t.feasible for t in trials], metric, direction),
            caption,
        )
    )  # fmt: skip
    ranked = sorted(r.importances.items(), key=lambda kv: -kv[1])
    if ranked:
        out.append(Chart("importances", "Importances", ch.importance_chart(r.importances, metric)))
    else:
        out.append(Note("Parameter importances need at least two completed trials."))
    top = [k for k, _ in ranked[:2]]
    vals = [t.values[0] for t in trials]
    if len(top) == 2:
        xs = [t.params.get(top[0]) for t in trials]
        ys = [t.params.get(top[1]) for t in trials]
        fig = ch.param_heatmap_chart(top[0], xs, top[1], ys, vals, metric)
        out.append(Chart("params", "Two most important parameters", fig))
    elif len(top) == 1:
        fig = ch.param_scatter_chart(top[0], [t.params.get(top[0]) for t in trials], vals, metric)
        out.append(Chart("params", "The searched parameter", fig))
    if r.out_of_sample:
        out.append(
            Chart(
                "in-vs-out",
                "In- vs out-of-sample",
                ch.in_vs_out_chart(r.in_sample, r.out_of_sample),
            )
        )
    else:
        out.append(Note("No held-out period was requested (validation.holdout_fraction)."))
    if r.walk_forward_windows:
        fig = ch.walk_forward_chart(
            r.walk_forward_windows, metric, r.in_sample.get(metric), r.walk_forward_periods
        )
        out.append(Chart("walk-forward", "Walk-forward windows", fig))
    else:
        out.append(Note("No walk-forward windows were requested (validation)."))
    if len(r.objectives) >= 2:
        both = [t.values for t in trials if len(t.values) >= 2]
        fig = ch.pareto_chart(
            both, [t.values for t in r.pareto_front], [m for m, _ in r.objectives]
        )
        out.append(Chart("pareto", "Pareto front", fig))
    return out


def _top_trials(r: JobReport) -> DataTable:
    metric, direction = r.objectives[0] if r.objectives else ("sharpe", "maximize")
    done = [t for t in r.trials if t.values]
    ranked = sorted(
        done,
        key=lambda t: (not t.feasible, -t.values[0] if direction == "maximize" else t.values[0]),
    )
    shown = min(MAX_LISTED_TRIALS, len(done))
    note = f"{len(done):,} completed trials, the best {shown} by {label(metric)}"
    return _trial_table(r, ranked[:MAX_LISTED_TRIALS], note)


def _trial_table(r: JobReport, trials: Sequence[Trial], note: str) -> DataTable:
    params = sorted({k for t in trials for k in t.params})
    objectives = [m for m, _ in r.objectives]
    extra = [m for m in TRIAL_METRICS if m not in objectives]
    cols = ["trial", *(label(m) for m in objectives), *params, *(label(m) for m in extra)]
    rows = [
        [
            str(t.number) + ("" if t.feasible else " (infeasible)"),
            *(
                fmt_metric(m, t.values[i]) if i < len(t.values) and t.metrics else "not run"
                for i, m in enumerate(objectives)
            ),
            *(fmt_value(t.params.get(p)) for p in params),
            *(fmt_metric(m, t.metrics.get(m)) for m in extra),
        ]
        for t in trials
    ]
    return DataTable("", cols, rows, note)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in params.items())


def render_job(r: JobReport, fmt: str, *, charts: bool) -> bytes:
    """`fmt` is json, csv (the trials), html or pdf. CPU-bound: run it in a worker thread."""
    if fmt == "json":
        return job_json(r)
    if fmt == "csv":
        return trials_csv(r)
    if fmt == "html":
        return job_html(r, charts=charts)
    if fmt == "pdf":
        return job_pdf(r, charts=charts)
    raise ValueError(f"unknown report format {fmt!r}")
