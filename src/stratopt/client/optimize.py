"""`stratopt optimize`: start an optimization job on a server, follow it, show its results.

A thin gRPC client. The job runs on the server, so Ctrl-C only detaches the terminal: the
job keeps going and `stratopt jobs watch JOB` (or `stratopt optimize --watch JOB`) picks it
up again (the server sends a snapshot first, so the progress resumes where the job is).

Costs: optimizing without costs rewards strategies that trade too often, so a strategy
type is optimized with DEFAULT_COMMISSION (10 bps per side, a typical exchange taker fee)
unless --commission says otherwise; a stored strategy keeps its own options. A run whose
commission and slippage are both zero gets a warning.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TextIO

from stratopt.client import output as o
from stratopt.client.args import execution_from_pb, execution_to_pb
from stratopt.client.jobs import bar_seconds, watch
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

DEFAULT_COMMISSION = 0.001
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
_DASH_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
PARAM_FORMS = "NAME=LOW:HIGH[:STEP] (a range), NAME=a,b,c (choices) or NAME=VALUE (fixed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server(p)
    p.add_argument("--watch", metavar="JOB", help="follow an existing job instead of starting one")
    p.add_argument("--strategy", help="strategy type, e.g. sma_crossover")
    p.add_argument("--strategy-id", help="a stored strategy (its type, parameters, execution)")
    p.add_argument(
        "--dataset", "--data", dest="dataset", help="dataset id (`stratopt datasets ls`)"
    )
    p.add_argument("--timeframe", default="", help="resample to this timeframe first, e.g. 4h")
    p.add_argument("--trials", type=int, default=200, help="trial budget")
    p.add_argument("--timeout", type=float, default=0.0, help="seconds (0 = none)")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help="objective metric, optionally :max or :min; repeat for a Pareto front "
        "(default: sharpe:max)",
    )
    p.add_argument(
        "--sampler",
        choices=sorted(SAMPLERS),
        default=None,
        help="default: tpe, nsga2 for several metrics",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for a repeatable study")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        help=f"{PARAM_FORMS}, e.g. fast=5:50 (repeat)",
    )
    p.add_argument(
        "--constraint",
        action="append",
        default=[],
        help="metric bound such as max_drawdown<=0.25 or num_trades>=20",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop after N trials without improvement (0 = never)",
    )
    p.add_argument("--holdout", type=float, default=0.0, help="fraction held out as out-of-sample")
    p.add_argument(
        "--walk-forward", type=int, default=0, help="walk-forward windows for the winner"
    )
    p.add_argument(
        "--commission",
        type=float,
        default=None,
        help=f"fraction per side (default: {DEFAULT_COMMISSION} = 10 bps for a strategy type; "
        "a stored strategy's own)",
    )
    p.add_argument(
        "--slippage",
        type=float,
        default=None,
        help="fraction of price against the trader (default: 0 or the strategy's)",
    )
    p.add_argument(
        "--priority", choices=sorted(PRIORITIES), default="normal", help="queue priority"
    )
    p.add_argument("--top", type=int, default=5, help="best trials to list at the end")
    p.add_argument("--detach", action="store_true", help="start the job, print its id and return")
    p.add_argument("--json", action="store_true", help="no progress; print the results as JSON")


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
        if way and way not in direction:
            raise CliError(f"--metric {text}: expected METRIC, METRIC:max or METRIC:min")
        spec.objectives.add(metric=name, direction=direction.get(way, 0))
    for text in args.param:
        spec.search_space.append(parse_param(text))
    for text in args.constraint:
        spec.constraints.append(parse_constraint(text))
    spec.validation.holdout_fraction = args.holdout
    spec.validation.walk_forward_windows = args.walk_forward
    costs: dict[str, float] = {}
    # Set, even to 0, they override a stored strategy's options.
    if args.commission is not None:
        costs["commission"] = args.commission
    elif not args.strategy_id:
        costs["commission"] = DEFAULT_COMMISSION
    if getattr(args, "slippage", None) is not None:
        costs["slippage"] = args.slippage
    if costs:
        spec.execution.CopyFrom(execution_to_pb(costs))
    return spec


def parse_param(text: str) -> pb.ParameterOverride:
    """One --param, in the documented forms; anything else gets an error that shows them."""
    name, sep, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest:
        raise CliError(f"--param {text!r}: expected {PARAM_FORMS}")
    dash = _DASH_RANGE.match(rest)
    if dash:
        raise CliError(
            f"--param {text}: write a range with colons, {name}={dash.group(1)}:{dash.group(2)} "
            f"(forms: {PARAM_FORMS})"
        )
    if ":" in rest:
        parts = rest.split(":")
        try:
            numbers = [float(x) for x in parts]
        except ValueError:
            raise CliError(
                f"--param {text}: LOW, HIGH and STEP must be numbers, as in {name}=5:50 or "
                f"{name}=5:50:5"
            ) from None
        if len(numbers) not in (2, 3):
            raise CliError(f"--param {text}: a range is LOW:HIGH or LOW:HIGH:STEP")
        o_ = pb.ParameterOverride(name=name, min=numbers[0], max=numbers[1])
        if len(numbers) == 3:
            o_.step = numbers[2]
        return o_
    if "," in rest:
        return pb.ParameterOverride(name=name, choices=[x.strip() for x in rest.split(",")])
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
        raise CliError(f"--constraint {text!r}: expected METRIC<=VALUE or METRIC>=VALUE")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    return pb.MetricConstraint(metric=metric, **({"max": value} if op == "<=" else {"min": value}))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with Remote(args.server) as r:
        if args.watch:
            return watch(r, args.watch, args.top, args.json, out)
        if not (args.strategy or args.strategy_id) or not args.dataset:
            raise CliError("give --strategy TYPE (or --strategy-id ID) and --dataset ID")
        spec = build_spec(args)
        stub = r.stub(pbg.OptimizationServiceStub)
        job = stub.StartOptimization(
            pb.StartOptimizationRequest(spec=spec, priority=PRIORITIES[args.priority]),
        ).job
        used = execution_from_pb(job.spec.execution)
        if args.detach:
            print(job.id, file=out)
            return 0
        if not args.json:
            out.write(f"job {job.id} queued (Ctrl-C detaches; the job keeps running)\n")
            summary = o.execution_summary(used, bar_seconds(r, job.spec))
            out.write(f"execution: {summary}\n")
            out.flush()
        return watch(r, job.id, args.top, args.json, out)
