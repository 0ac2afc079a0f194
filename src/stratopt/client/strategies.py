"""`stratopt types` (the strategy library) and `stratopt strategies` (your stored ones).

This module registers every `strategies` verb. It holds ls, show, create, rm, templates and
categories; `update` is in strategy_update.py, `history` and the sharing verbs in
strategy_sharing.py, `ensemble` and `compare` in strategy_compare.py, and the `--alert`
rules that create, update and show share in strategy_alerts.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_given,
    execution_to_pb,
    parse_params,
    subparser,
)
from stratopt.client.remote import Remote, add_server, param_to_pb, params_from_pb
from stratopt.client.strategy_alerts import add_alert_flags, alerts_text, parse_alerts
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

CATEGORIES = list(o.enum_names(c.StrategyCategory, "STRATEGY_CATEGORY_"))
ENSEMBLE_METHODS = o.enum_names(pb.EnsembleMethod, "ENSEMBLE_METHOD_")
DIRECTIONS = {
    c.TRADE_DIRECTION_LONG_ONLY: "long",
    c.TRADE_DIRECTION_SHORT_ONLY: "short",
    c.TRADE_DIRECTION_BOTH: "both",
}


def add_commands(sub: Any) -> None:
    p = subparser(
        sub,
        "types",
        "the strategy library: built-in types, your user types, their parameters",
        description="Lists the built-in strategy types, then your own and shared user types "
        "(user_<id>, see `stratopt rules`), or shows one type's parameters (kind, default, "
        "range) and constraints.",
    )
    add_server(p)
    p.add_argument("name", nargs="?", help="show this type in detail")
    add_json(p)
    p.set_defaults(func=cmd_types)

    strategies = subparser(sub, "strategies", "your stored strategies", aliases=["strategy"])
    verbs = strategies.add_subparsers(dest="strategies_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list the strategies you can see", aliases=["list"])
    add_server(p)
    p.add_argument("--type", dest="strategy_type", default="", help="only this strategy type")
    p.add_argument("--query", default="", help="search names, descriptions and tags")
    p.add_argument("--tag", action="append", default=[], help="only strategies with this tag")
    add_json(p)
    p.set_defaults(func=cmd_ls)

    p = subparser(verbs, "show", "show one strategy, with the execution options it runs with")
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparser(
        verbs,
        "create",
        "store a strategy: a type, its parameters and how it trades",
        description="Stores a strategy. Parameters you leave out take the type's defaults; "
        "execution options you leave out take the engine's defaults when it runs.",
    )
    add_server(p)
    p.add_argument("name", help="unique among your strategies")
    p.add_argument(
        "--type", dest="strategy_type", default="", help="strategy type, e.g. sma_crossover"
    )
    p.add_argument("--template", default="", help="start from this template id")
    p.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE (repeat)")
    p.add_argument("--symbol", action="append", default=[], help="instrument (repeat)")
    p.add_argument("--timeframe", default="", help="bar spacing it is meant for, e.g. 1h")
    p.add_argument("--tag", action="append", default=[], help="tag (repeat)")
    p.add_argument("--description", default="")
    add_execution(p)
    add_alert_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the strategy id")
    add_json(p)
    p.set_defaults(func=cmd_create)

    # The verbs past create live in their own modules (imported here, not at the top: they
    # use this module's helpers); this function stays the one list of `strategies` verbs.
    from stratopt.client import strategy_compare, strategy_sharing, strategy_update

    strategy_update.add_verbs(verbs)

    p = subparser(verbs, "rm", "delete strategies", aliases=["delete"])
    add_server(p)
    p.add_argument("strategy_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_rm)

    strategy_sharing.add_verbs(verbs)

    p = subparser(
        verbs,
        "templates",
        "ready-made parameter sets to start a strategy from (create --template ID)",
    )
    add_server(p)
    p.add_argument("--type", dest="strategy_type", default="", help="only this strategy type")
    p.add_argument("--category", choices=CATEGORIES, help="only this category")
    add_json(p)
    p.set_defaults(func=cmd_templates)

    p = subparser(verbs, "categories", "strategy categories: how many types and strategies each")
    add_server(p)
    add_json(p)
    p.set_defaults(func=cmd_categories)

    strategy_compare.add_verbs(verbs)


def _stub(r: Remote) -> pbg.StrategyServiceStub:
    return r.stub(pbg.StrategyServiceStub)


def _enum(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower() if value else "-"


def _spec_range(s: c.ParameterSpec) -> str:
    if s.kind == c.PARAMETER_KIND_CATEGORICAL:
        return ", ".join(s.choices)
    step = f" step {o.number(s.step)}" if s.step else ""
    log = " (log)" if s.log_scale else ""
    return f"{o.number(s.min)}:{o.number(s.max)}{step}{log}"


def _default(v: c.ParameterValue) -> str:
    kind = v.WhichOneof("kind")
    return str(getattr(v, kind)) if kind else "-"


def cmd_types(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        if args.name:
            t = _stub(r).GetStrategyType(pb.GetStrategyTypeRequest(name=args.name))
            return _show_type(t.strategy_type, args.json)
        reply = _stub(r).ListStrategyTypes(pb.ListStrategyTypesRequest())
    types = list(reply.strategy_types)
    if args.json:
        o.print_json([o.proto_json(t) for t in types])
        return 0
    rows = [
        [
            t.name,
            t.display_name,
            _enum(c.StrategyCategory, t.category, "STRATEGY_CATEGORY_"),
            " ".join(f"{p.name}={_default(p.default_value)}" for p in t.parameters),
        ]
        for t in types
    ]
    o.show(o.table(["TYPE", "NAME", "CATEGORY", "PARAMETERS (defaults)"], rows))
    print("details: stratopt types TYPE")
    return 0


def _show_type(t: pb.StrategyType, json: bool) -> int:
    if json:
        o.print_json(t)
        return 0
    category = _enum(c.StrategyCategory, t.category, "STRATEGY_CATEGORY_")
    parts: list[Any] = [f"{t.name}: {t.display_name} ({category})"]
    if t.description:
        parts.append(t.description)
    parts.append(parameters_table(t.parameters))
    parts += [f"constraint: {k.left} {k.op} {k.right}" for k in t.constraints]
    o.show(*parts)
    return 0


def parameters_table(params: Iterable[c.ParameterSpec]) -> Any:
    """A parameter space as `stratopt types TYPE` shows it (also `stratopt rules`)."""
    rows = [
        [
            p.name,
            _enum(c.ParameterKind, p.kind, "PARAMETER_KIND_"),
            _default(p.default_value),
            _spec_range(p),
            p.description,
        ]
        for p in params
    ]
    return o.table(["PARAMETER", "KIND", ">DEFAULT", "RANGE", "DESCRIPTION"], rows)


def given_execution(e: c.ExecutionOptions) -> dict[str, Any]:
    """The options an owner set on a stored strategy (engine names)."""
    out: dict[str, Any] = {}
    for name in e.set_fields.paths:
        if name == "direction":
            out[name] = DIRECTIONS.get(e.direction)
        elif hasattr(e, name):
            out[name] = getattr(e, name)
    return out


def _set_text(given: dict[str, Any]) -> str:
    if not given:
        return "none (engine defaults)"
    return ", ".join(f"{k}={v}" for k, v in given.items())


def cmd_ls(args: argparse.Namespace) -> int:
    req = pb.ListStrategiesRequest(
        page_size=200, strategy_type=args.strategy_type, query=args.query, tags=args.tag
    )
    with Remote(args.server) as r:
        items = list(r.client.pages(_stub(r).ListStrategies, req, "strategies"))
    if args.json:
        o.print_json([o.proto_json(s) for s in items])
        return 0
    rows = [
        [
            s.id,
            s.name,
            s.strategy_type,
            o.params_text(params_from_pb(s.parameters)),
            s.timeframe or "-",
            ",".join(s.symbols) or "-",
            s.owner_username,
            o.when(s.update_time.ToDatetime()) if s.HasField("update_time") else "-",
        ]
        for s in items
    ]
    o.show(
        o.table(
            ["ID", "NAME", "TYPE", "PARAMETERS", "TF", "SYMBOLS", "OWNER", "UPDATED (UTC)"], rows
        )
    )
    return 0


def show_strategy(s: pb.Strategy, json: bool) -> None:
    if json:
        o.print_json(s)
        return
    from stratopt.engine.options import ExecutionOptions

    given = given_execution(s.execution)
    resolved = ExecutionOptions.from_dict(given).resolved()
    rows = [
        ("id", s.id),
        ("name", s.name),
        ("type", s.strategy_type),
        ("parameters", o.params_text(params_from_pb(s.parameters))),
        ("symbols", ", ".join(s.symbols) or "-"),
        ("timeframe", s.timeframe or "-"),
        ("tags", ", ".join(s.tags) or "-"),
        ("status", _enum(pb.StrategyStatus, s.status, "STRATEGY_STATUS_")),
        ("owner", s.owner_username),
        ("version", str(s.version)),
        ("execution set", _set_text(given)),
        ("runs with", o.execution_summary(resolved.to_dict(), o.timeframe_seconds(s.timeframe))),
        ("alerts", alerts_text(s.alert_rules)),
        ("description", s.description or "-"),
    ]
    if s.ensemble_members:
        rows.insert(3, ("members", members_text(s)))
    o.show(o.pairs(rows))


def cmd_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        s = _stub(r).GetStrategy(pb.GetStrategyRequest(strategy_id=args.strategy_id))
    show_strategy(s.strategy, args.json)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    strategy = pb.Strategy(
        name=args.name,
        strategy_type=args.strategy_type,
        symbols=args.symbol,
        timeframe=args.timeframe,
        tags=args.tag,
        description=args.description,
        alert_rules=parse_alerts(args.alert),
    )
    for k, v in params.items():
        strategy.parameters[k].CopyFrom(param_to_pb(v))
    given = execution_given(args)
    if given:
        strategy.execution.CopyFrom(execution_to_pb(given))
    with Remote(args.server) as r:
        created = (
            _stub(r)
            .CreateStrategy(
                pb.CreateStrategyRequest(strategy=strategy, template_id=args.template),
            )
            .strategy
        )
    if args.quiet:
        print(created.id)
    elif args.json:
        o.print_json(created)
    else:
        print(
            f"created strategy {created.id}: {created.name} ({created.strategy_type} "
            f"{o.params_text(params_from_pb(created.parameters))})"
        )
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _stub(r)
        return o.delete_each(
            "strategy", args.strategy_ids,
            lambda sid: stub.DeleteStrategy(pb.DeleteStrategyRequest(strategy_id=sid)), args.json,
        )  # fmt: skip


def members_text(s: pb.Strategy) -> str:
    """An ensemble's members and how they vote: ``majority of A x1, B x2``."""
    method = _enum(pb.EnsembleMethod, s.ensemble_method, "ENSEMBLE_METHOD_")
    members = ", ".join(f"{m.strategy_id} x{m.weight:g}" for m in s.ensemble_members)
    return f"{method} of {members}"


# -- templates, categories ----------------------------------------------------------------------


def cmd_templates(args: argparse.Namespace) -> int:
    req = pb.ListStrategyTemplatesRequest(
        strategy_type=args.strategy_type, category=_category_pb(args.category)
    )
    with Remote(args.server) as r:
        templates = list(_stub(r).ListStrategyTemplates(req).templates)
    if args.json:
        o.print_json([o.proto_json(t) for t in templates])
        return 0
    rows = [
        [
            t.id,
            t.display_name,
            t.strategy_type,
            o.params_text(params_from_pb(t.parameters)),
            _set_text(given_execution(t.execution)),
            ", ".join(t.tags) or "-",
        ]
        for t in templates
    ]
    o.show(o.table(["ID", "NAME", "TYPE", "PARAMETERS", "EXECUTION", "TAGS"], rows))
    print("start from one: stratopt strategies create NAME --template ID")
    return 0


def _category_pb(name: str | None) -> c.StrategyCategory.ValueType:
    """``trend_following`` -> STRATEGY_CATEGORY_TREND_FOLLOWING; none: 0 (every category)."""
    if not name:
        return c.STRATEGY_CATEGORY_UNSPECIFIED
    return c.StrategyCategory.Value(f"STRATEGY_CATEGORY_{name.upper()}")


def cmd_categories(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        categories = list(_stub(r).ListCategories(pb.ListCategoriesRequest()).categories)
    if args.json:
        o.print_json([o.proto_json(k) for k in categories])
        return 0
    rows = [
        [
            _enum(c.StrategyCategory, k.category, "STRATEGY_CATEGORY_"),
            f"{k.strategy_type_count:,}",
            f"{k.strategy_count:,}",
        ]
        for k in categories
    ]
    o.show(o.table(["CATEGORY", ">TYPES", ">STRATEGIES (yours and shared)"], rows))
    return 0
