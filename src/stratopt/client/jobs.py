"""`stratopt jobs`: optimization jobs on a server (list, show, cancel, result, watch), and the
results report that `stratopt optimize` ends with."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from stratopt.client import output as o
from stratopt.client.args import add_json, execution_from_pb, subparser
from stratopt.client.progress import JobProgress, reason, state_name
from stratopt.client.remote import Remote, add_server, params_from_pb
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

STATES = {
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "succeeded": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
}
ENDED = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
VALIDATION_METRICS = (
    "total_return",
    "cagr",
    "sharpe",
    "max_drawdown",
    "num_trades",
    "win_rate",
    "profit_factor",
    "final_equity",
)


def add_commands(sub: Any) -> None:
    jobs = subparser(sub, "jobs", "optimization jobs: list, show, cancel, results, watch")
    verbs = jobs.add_subparsers(dest="jobs_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list your jobs, newest first", aliases=["list"])
    add_server(p)
    p.add_argument("--state", choices=sorted(STATES), help="only jobs in this state")
    p.add_argument("--limit", type=int, default=50, help="at most this many (0 = all)")
    add_json(p)
    p.set_defaults(func=cmd_ls)

    p = subparser(verbs, "show", "a job's spec, state and progress")
    add_server(p)
    p.add_argument("job_id", metavar="JOB")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparser(verbs, "cancel", "cancel queued or running jobs")
    add_server(p)
    p.add_argument("job_ids", metavar="JOB", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_cancel)

    p = subparser(
        verbs,
        "result",
        "a job's results: best trials, in-sample vs out-of-sample, walk-forward, Pareto "
        "front, parameter importances",
    )
    add_server(p)
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--top", type=int, default=5, help="best trials to list")
    add_json(p)
    p.set_defaults(func=cmd_result)

    p = subparser(verbs, "watch", "follow a job until it ends, then show its results")
    add_server(p)
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--top", type=int, default=5, help="best trials to list")
    add_json(p)
    p.set_defaults(func=cmd_watch)


def _stub(r: Remote) -> pbg.OptimizationServiceStub:
    return r.stub(pbg.OptimizationServiceStub)


def _strategy(spec: pb.OptimizationSpec) -> str:
    return spec.strategy_type or f"strategy {spec.strategy_id}"


def _seconds(job: pb.Job) -> float | None:
    if not job.HasField("start_time"):
        return None
    end = job.end_time if job.HasField("end_time") else None
    start_ns = job.start_time.ToNanoseconds()
    if end is None:
        import time

        return time.time() - start_ns / 1e9
    return (end.ToNanoseconds() - start_ns) / 1e9


def cmd_ls(args: argparse.Namespace) -> int:
    req = pb.ListJobsRequest(
        page_size=100, state=STATES.get(args.state or "", pb.JOB_STATE_UNSPECIFIED)
    )
    with Remote(args.server) as r:
        items = list(r.client.pages(_stub(r).ListJobs, req, "jobs", limit=max(args.limit, 0)))
    if args.json:
        o.print_json([o.proto_json(j) for j in items])
        return 0
    rows = []
    for j in items:
        took = _seconds(j)
        rows.append(
            [
                j.id,
                state_name(j),
                _strategy(j.spec),
                j.spec.dataset_id,
                f"{j.trials_completed:,}/{j.trials_total:,}",
                f"{j.best_value:.4g}" if j.HasField("best_value") else "-",
                o.when(j.create_time.ToDatetime()),
                o.span(took) if took is not None else "-",
            ]
        )
    o.show(
        o.table(
            ["JOB", "STATE", "STRATEGY", "DATASET", ">TRIALS", ">BEST", "CREATED (UTC)", ">TOOK"],
            rows,
        )
    )
    return 0


def _space(spec: pb.OptimizationSpec) -> str:
    parts = []
    for s in spec.search_space:
        if s.HasField("fixed"):
            parts.append(f"{s.name}={o.parameter_value(o.proto_json(s.fixed))}")
        elif s.choices:
            parts.append(f"{s.name}={','.join(s.choices)}")
        else:
            step = f":{o.number(s.step)}" if s.step else ""
            parts.append(f"{s.name}={o.number(s.min)}:{o.number(s.max)}{step}")
    return " ".join(parts) or "the type's full space"


def _objectives(spec: pb.OptimizationSpec) -> str:
    names = {pb.OPTIMIZE_DIRECTION_MAXIMIZE: "max", pb.OPTIMIZE_DIRECTION_MINIMIZE: "min"}
    return ", ".join(f"{x.metric} ({names.get(x.direction, 'auto')})" for x in spec.objectives)


def job_rows(job: pb.Job, bar_seconds: float | None = None) -> list[tuple[str, str]]:
    spec = job.spec
    sampler = (
        str(pb.Sampler.Name(spec.sampler)).removeprefix("SAMPLER_").lower()
        if spec.sampler
        else "default"
    )
    seed = f", seed {spec.seed}" if spec.HasField("seed") else ""
    v = spec.validation
    validation = []
    if v.holdout_fraction:
        validation.append(f"last {o.pct(v.holdout_fraction, digits=0)} held out")
    if v.walk_forward_windows:
        validation.append(
            f"{v.walk_forward_windows} walk-forward windows{' (anchored)' if v.anchored else ''}"
        )
    took = _seconds(job)
    rows = [
        ("job", job.id),
        (
            "state",
            state_name(job) + (f": {job.error or reason(job)}" if job.error or reason(job) else ""),
        ),
        ("strategy", _strategy(spec)),
        (
            "dataset",
            spec.dataset_id + (f", resampled to {spec.timeframe}" if spec.timeframe else ""),
        ),
        ("search space", _space(spec)),
        ("objectives", _objectives(spec)),
        ("sampler", sampler + seed),
        (
            "trials",
            f"{job.trials_completed:,}/{job.trials_total:,}"
            + (f" in {o.span(took)}" if took is not None else "")
            + (f", {job.throughput:.1f}/s" if job.throughput else ""),
        ),
        ("execution", o.execution_summary(execution_from_pb(spec.execution), bar_seconds)),
    ]
    if spec.constraints:
        rows.append(
            (
                "constraints",
                ", ".join(
                    " and ".join(
                        ([f"{k.metric} >= {k.min:g}"] if k.HasField("min") else [])
                        + ([f"{k.metric} <= {k.max:g}"] if k.HasField("max") else [])
                    )
                    for k in spec.constraints
                ),
            )
        )
    if validation:
        rows.append(("validation", ", ".join(validation)))
    if spec.early_stopping_patience:
        rows.append(
            ("early stop", f"after {spec.early_stopping_patience} trials without improvement")
        )
    if job.HasField("best_value"):
        rows.append(
            ("best", f"{job.best_value:.6g}: {o.params_text(params_from_pb(job.best_parameters))}")
        )
    return rows


def bar_seconds(r: Remote, spec: pb.OptimizationSpec) -> float | None:
    if spec.timeframe:
        return o.timeframe_seconds(spec.timeframe)
    from stratopt.v1 import market_data_pb2 as mpb
    from stratopt.v1 import market_data_pb2_grpc as mpbg

    try:
        ds = r.stub(mpbg.MarketDataServiceStub).GetDataset(
            mpb.GetDatasetRequest(dataset_id=spec.dataset_id)
        )
    except Exception:
        return None
    return o.timeframe_seconds(ds.dataset.timeframe)


def cmd_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        job = _stub(r).GetJob(pb.GetJobRequest(job_id=args.job_id)).job
        seconds = None if args.json else bar_seconds(r, job.spec)
    if args.json:
        o.print_json(job)
        return 0
    o.show(o.pairs(job_rows(job, seconds)))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    done = []
    with Remote(args.server) as r:
        for jid in args.job_ids:
            job = _stub(r).CancelJob(pb.CancelJobRequest(job_id=jid)).job
            done.append(job)
            if args.json:
                continue
            if job.state in ENDED:
                print(f"job {job.id} {state_name(job)} after {job.trials_completed} trials")
            else:
                print(
                    f"job {job.id}: cancel requested ({state_name(job)}, "
                    f"{job.trials_completed} trials so far); running trials stop within a second"
                )
    if args.json:
        o.print_json([o.proto_json(j) for j in done])
    return 0


# -- results ----------------------------------------------------------------------------------


def fetch_result(
    r: Remote, job_id: str, top: int
) -> tuple[pb.GetOptimizationResultResponse, list[pb.TrialSummary]]:
    stub = _stub(r)
    res = stub.GetOptimizationResult(pb.GetOptimizationResultRequest(job_id=job_id))
    trials: list[pb.TrialSummary] = []
    objectives = res.job.spec.objectives
    if top > 0 and len(objectives) == 1:
        order = (
            "value" if objectives[0].direction == pb.OPTIMIZE_DIRECTION_MINIMIZE else "value desc"
        )
        reply = stub.ListTrials(
            pb.ListTrialsRequest(job_id=job_id, page_size=min(top * 4, 1_000), order_by=order),
        )
        trials = [t for t in reply.trials if t.state == pb.TRIAL_STATE_COMPLETE][:top]
    return res, trials


def result_json(
    res: pb.GetOptimizationResultResponse, trials: list[pb.TrialSummary]
) -> dict[str, Any]:
    out = o.proto_json(res)
    out["top_trials"] = [o.proto_json(t) for t in trials]
    return out


def _trial_table(
    trials: list[pb.TrialSummary], objectives: list[str], bar_seconds: float | None, title: str
) -> Any:
    """Trials with their objective values and a few metrics; a FEASIBLE column only when a
    constraint ruled one out."""
    extra = [k for k in o.SHORT_METRICS if k not in objectives]
    flag = any(not t.feasible for t in trials)
    columns = [">TRIAL", "PARAMETERS"]
    columns += [">" + o.LABELS.get(n, n).upper() for n in objectives]
    columns += [">" + o.LABELS[k].upper() for k in extra] + (["FEASIBLE"] if flag else [])
    rows = []
    for t in trials:
        m = o.proto_json(t.metrics)
        rows.append(
            [str(t.number), o.params_text(params_from_pb(t.parameters))]
            + [o.metric(n, v, bar_seconds) for n, v in zip(objectives, t.values, strict=False)]
            + [o.metric(k, float(m.get(k, 0)), bar_seconds) for k in extra]
            + (["yes" if t.feasible else "no"] if flag else [])
        )
    return o.table(columns, rows, title=title)


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def selection_bias_text(b: pb.SelectionBias) -> str:
    """The deflated Sharpe ratio in a sentence a user can act on."""
    verdict = "likely a real edge" if b.deflated_sharpe_ratio >= 0.95 else "may be luck"
    return (
        f"deflated Sharpe ratio {b.deflated_sharpe_ratio:.2f}: the best Sharpe "
        f"{b.best_sharpe:.2f} against {b.expected_max_sharpe:.2f} expected by chance from "
        f"{_trials(b.trials)} ({verdict}; 0.95 or more suggests an edge)"
    )


def print_result(
    res: pb.GetOptimizationResultResponse,
    trials: list[pb.TrialSummary],
    bar_seconds: float | None,
    out: TextIO | None = None,
) -> None:
    parts: list[Any] = []
    job = res.job
    parts.append(o.pairs(job_rows(job, bar_seconds)))
    if o.zero_costs(execution_from_pb(job.spec.execution)):
        o.warn(o.ZERO_COSTS)
    objectives = [x.metric for x in job.spec.objectives] or ["sharpe"]
    if trials:
        parts.append("")
        parts.append(_trial_table(trials, objectives, bar_seconds, f"Best {_trials(len(trials))}"))
    v = res.validation
    if v.HasField("in_sample") and v.HasField("out_of_sample"):
        ins, oos = o.proto_json(v.in_sample), o.proto_json(v.out_of_sample)
        rows = [
            [
                o.LABELS[k],
                o.metric(k, float(ins[k]), bar_seconds),
                o.metric(k, float(oos[k]), bar_seconds),
            ]
            for k in VALIDATION_METRICS
        ]
        parts.append("")
        parts.append(
            o.table(
                ["METRIC", ">IN-SAMPLE", ">OUT-OF-SAMPLE"],
                rows,
                title="Best parameters in and out of sample",
            )
        )
    if v.walk_forward_windows:
        rows = []
        for i, w in enumerate(v.walk_forward_windows, 1):
            m = o.proto_json(w)
            rows.append(
                [str(i)]
                + [
                    o.metric(k, float(m[k]), bar_seconds)
                    for k in ("total_return", "sharpe", "max_drawdown", "num_trades")
                ]
            )
        parts.append("")
        parts.append(
            o.table(
                [">WINDOW", ">RETURN", ">SHARPE", ">MAX DRAWDOWN", ">TRADES"],
                rows,
                title="Walk-forward windows (out of sample)",
            )
        )
        parts.append(
            f"walk-forward efficiency {v.walk_forward_efficiency:.2f} "
            "(out-of-sample performance over in-sample)"
        )
    if res.HasField("selection_bias"):
        parts.append("")
        parts.append(selection_bias_text(res.selection_bias))
    if len(objectives) > 1 and res.pareto_front:
        parts.append("")
        front = list(res.pareto_front)
        title = f"Pareto front ({_trials(len(front))})"
        parts.append(_trial_table(front, objectives, bar_seconds, title))
    if res.importances:
        width = 30
        rows = [
            [x.parameter, o.pct(x.importance, digits=1), "#" * round(width * x.importance)]
            for x in sorted(res.importances, key=lambda x: -x.importance)
        ]
        parts.append("")
        parts.append(o.table(["PARAMETER", ">IMPORTANCE", ""], rows, title="Parameter importances"))
    o.show(*parts, file=out)


def show_result(r: Remote, job_id: str, top: int, json: bool, out: TextIO | None = None) -> int:
    res, trials = fetch_result(r, job_id, top)
    if json:
        o.print_json(result_json(res, trials), out)
    else:
        print_result(res, trials, bar_seconds(r, res.job.spec), out)
    return 0 if res.job.state == pb.JOB_STATE_SUCCEEDED else 1


def cmd_result(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        show_result(r, args.job_id, args.top, args.json)
    return 0


def follow(r: Remote, job_id: str, out: TextIO, *, quiet: bool = False) -> pb.Job | None:
    """Follows a job until it ends (progress on ``out`` unless quiet); returns its last state."""
    watch = r.client.watch_job(job_id)  # reconnects if the server restarts meanwhile
    progress = None if quiet else JobProgress(out)
    try:
        for event in watch:
            if progress is not None:
                progress.update(event.job)
    finally:
        if progress is not None:
            progress.close()
    return watch.job


def watch(r: Remote, job_id: str, top: int, json: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        last = follow(r, job_id, out, quiet=json)
    except KeyboardInterrupt:
        out.write(f"\ndetached; the job keeps running. Reattach: stratopt jobs watch {job_id}\n")
        return 0  # detaching is what Ctrl-C is for here
    if last is None:
        return 1
    if not json:
        out.write(f"job {last.id} {state_name(last)} after {last.trials_completed} trials\n")
        if last.HasField("best_value"):
            params = o.params_text(params_from_pb(last.best_parameters))
            out.write(f"best {last.best_value:.6g}: {params}\n")
        if last.error:
            out.write(f"error: {last.error}\n")
        out.flush()
    if last.state != pb.JOB_STATE_SUCCEEDED and not last.trials_completed:
        if json:
            o.print_json({"job": o.proto_json(last)}, out)
        return 1
    if not json:
        out.write("\n")
    code = show_result(r, job_id, top, json, out)
    return code


def cmd_watch(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        return watch(r, args.job_id, args.top, args.json)
