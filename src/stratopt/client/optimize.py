"""`stratopt optimize`: start an optimization job on a server and follow it live.

A thin gRPC client. The job runs on the server, so Ctrl-C only detaches the terminal: the
job keeps going and `stratopt optimize --watch JOB` picks it up again (the server sends a
snapshot first, so the progress line resumes where the job is).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

import grpc

from stratopt.client.auth import LoginRequired, credentials
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

DEFAULT_SERVER = "127.0.0.1:50051"
SAMPLERS = {
    "tpe": pb.SAMPLER_TPE,
    "random": pb.SAMPLER_RANDOM,
    "grid": pb.SAMPLER_GRID,
    "cmaes": pb.SAMPLER_CMA_ES,
    "nsga2": pb.SAMPLER_NSGA_II,
    "qmc": pb.SAMPLER_QMC,
}
PRIORITIES = {
    "low": pb.JOB_PRIORITY_LOW,
    "normal": pb.JOB_PRIORITY_NORMAL,
    "high": pb.JOB_PRIORITY_HIGH,
    "critical": pb.JOB_PRIORITY_CRITICAL,
}
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*(-?[0-9.eE+-]+)\s*$")
BAR_WIDTH = 24


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server",
        default=os.environ.get("STRATOPT_SERVER", DEFAULT_SERVER),
        help="server address (env STRATOPT_SERVER, default 127.0.0.1:50051)",
    )
    p.add_argument("--watch", metavar="JOB", help="follow an existing job instead of starting one")
    p.add_argument("--strategy", help="strategy type, e.g. sma_crossover")
    p.add_argument("--strategy-id", help="a stored strategy (its type, parameters, execution)")
    p.add_argument("--dataset", help="dataset id")
    p.add_argument("--timeframe", default="", help="resample to this timeframe, e.g. 4h")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--timeout", type=float, default=0.0, help="seconds (0 = none)")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help="objective metric, optionally :max or :min; repeat for a Pareto front",
    )
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        help="NAME=LOW:HIGH[:STEP] range, NAME=a,b,c choices, NAME=VALUE fixed",
    )
    p.add_argument(
        "--constraint",
        action="append",
        default=[],
        help="metric bound such as max_drawdown<=0.25 or num_trades>=20",
    )
    p.add_argument(
        "--patience", type=int, default=0, help="stop after N trials without improvement"
    )
    p.add_argument("--holdout", type=float, default=0.0, help="fraction held out as out-of-sample")
    p.add_argument(
        "--walk-forward", type=int, default=0, help="walk-forward windows for the winner"
    )
    p.add_argument("--commission", type=float, help="fraction per side (default: the strategy's)")
    p.add_argument("--priority", choices=sorted(PRIORITIES), default="normal")


def build_spec(args: argparse.Namespace) -> pb.OptimizationSpec:
    spec = pb.OptimizationSpec(
        strategy_type=args.strategy or "",
        strategy_id=args.strategy_id or "",
        dataset_id=args.dataset or "",
        timeframe=args.timeframe,
        trials=args.trials,
        early_stopping_patience=args.patience,
    )
    if args.timeout:
        spec.timeout.FromNanoseconds(int(args.timeout * 1e9))
    if args.sampler:
        spec.sampler = SAMPLERS[args.sampler]
    if args.seed is not None:
        spec.seed = args.seed
    for text in args.metric:
        name, _, way = text.partition(":")
        direction = {"max": pb.OPTIMIZE_DIRECTION_MAXIMIZE, "min": pb.OPTIMIZE_DIRECTION_MINIMIZE}
        spec.objectives.add(metric=name, direction=direction.get(way, 0))
    for text in args.param:
        spec.search_space.append(parse_param(text))
    for text in args.constraint:
        spec.constraints.append(parse_constraint(text))
    spec.validation.holdout_fraction = args.holdout
    spec.validation.walk_forward_windows = args.walk_forward
    if args.commission is not None:  # set, even to 0: it overrides a stored strategy's
        spec.execution.commission = args.commission
        spec.execution.set_fields.paths.append("commission")
    return spec


def parse_param(text: str) -> pb.ParameterOverride:
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param {text!r}: expected NAME=...")
    if ":" in rest:
        parts = [float(x) for x in rest.split(":")]
        o = pb.ParameterOverride(name=name, min=parts[0], max=parts[1])
        if len(parts) > 2:
            o.step = parts[2]
        return o
    if "," in rest:
        return pb.ParameterOverride(name=name, choices=rest.split(","))
    return pb.ParameterOverride(name=name, fixed=_value(rest))


def _value(text: str) -> c.ParameterValue:
    try:
        return c.ParameterValue(int_value=int(text))
    except ValueError:
        pass
    try:
        return c.ParameterValue(double_value=float(text))
    except ValueError:
        return c.ParameterValue(string_value=text)


def parse_constraint(text: str) -> pb.MetricConstraint:
    m = _CONSTRAINT.match(text)
    if not m:
        raise ValueError(f"--constraint {text!r}: expected METRIC<=VALUE or METRIC>=VALUE")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    return pb.MetricConstraint(metric=metric, **({"max": value} if op == "<=" else {"min": value}))


def progress_line(job: pb.Job, metric: str) -> str:
    total = max(job.trials_total, 1)
    done = min(job.trials_completed, total)
    filled = BAR_WIDTH * done // total
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    best = f"best {metric} {job.best_value:.4g}" if job.HasField("best_value") else "best -"
    params = ", ".join(f"{k}={_show(v)}" for k, v in sorted(job.best_parameters.items()))
    eta = f" ETA {job.eta.seconds // 60}:{job.eta.seconds % 60:02d}" if job.HasField("eta") else ""
    state = pb.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    return (
        f"[{bar}] {done}/{job.trials_total} {state}  {best}"
        f"{f' ({params})' if params else ''}  {job.throughput:.1f} trials/s{eta}"
    )


def _show(v: c.ParameterValue) -> str:
    kind = v.WhichOneof("kind")
    return str(getattr(v, kind)) if kind else "?"


def follow(
    stub: pbg.OptimizationServiceStub, job_id: str, md: Sequence[tuple[str, str]], out: TextIO
) -> pb.Job | None:
    """Prints one live progress line until the job ends; returns the final job."""
    last: pb.Job | None = None
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md):
        last = event.job
        metric = last.spec.objectives[0].metric if last.spec.objectives else "sharpe"
        out.write("\r\x1b[2K" + progress_line(last, metric))
        out.flush()
    out.write("\n")
    return last


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        md = credentials(args.server)
    except LoginRequired as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    with grpc.insecure_channel(args.server) as channel:
        stub = pbg.OptimizationServiceStub(channel)
        try:
            job_id = args.watch or _start(stub, args, md, out)
            final = follow(stub, job_id, md, out)
        except KeyboardInterrupt:
            out.write(
                f"\ndetached; the job keeps running. Reattach: stratopt optimize --watch {job_id}\n"
            )
            return 0
        except grpc.RpcError as e:
            print(f"stratopt: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        except ValueError as e:
            print(f"stratopt: {e}", file=sys.stderr)
            return 2
    return _report(final, out)


def _start(
    stub: pbg.OptimizationServiceStub,
    args: argparse.Namespace,
    md: Sequence[tuple[str, str]],
    out: TextIO,
) -> str:
    request = pb.StartOptimizationRequest(spec=build_spec(args), priority=PRIORITIES[args.priority])
    job = stub.StartOptimization(request, metadata=md).job
    out.write(f"job {job.id} queued (Ctrl-C detaches; the job keeps running)\n")
    return str(job.id)


def _report(job: pb.Job | None, out: TextIO) -> int:
    if job is None:
        return 1
    state = pb.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    out.write(f"job {job.id} {state} after {job.trials_completed} trials\n")
    if job.error:
        out.write(f"error: {job.error}\n")
    if job.best_parameters:
        params = " ".join(f"{k}={_show(v)}" for k, v in sorted(job.best_parameters.items()))
        out.write(f"best {job.best_value:.6g}: {params}\n")
    return 0 if job.state == pb.JOB_STATE_SUCCEEDED else 1
