"""`stratopt strategies update ID`: change a stored strategy in place.

Only what is given on the command line changes: the request's update mask names exactly
those fields, because an empty mask would mean "every field" to the server and reset the
rest. Parameters and execution options are merged over the stored ones (`-p fast=12`
keeps `slow`; `--commission` keeps the stored slippage) unless `--reset-params` /
`--reset-execution` ask to start from the type's and the engine's defaults; symbols, tags,
alert rules and an ensemble's members given replace the stored lists (`--no-...` empties
them).

The strategy is read first and its etag sent back with the change, so an update made by
someone else in between is refused (ABORTED) instead of silently overwritten; `--etag`
pins an etag read earlier (`strategies show ID --json`) for the same check across commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_given,
    execution_to_pb,
    parse_params,
    subparser,
)
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server, param_to_pb, params_from_pb
from stratopt.client.strategies import ENSEMBLE_METHODS, given_execution, members_text
from stratopt.client.strategy_alerts import add_alert_flags, alerts_text, parse_alerts
from stratopt.client.strategy_compare import parse_member
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

STATUSES = o.enum_names(pb.StrategyStatus, "STRATEGY_STATUS_")
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
METHOD_NAMES = {v: k for k, v in ENSEMBLE_METHODS.items()}


def add_verbs(verbs: Any) -> None:
    p = subparser(
        verbs,
        "update",
        "change a stored strategy: name, parameters, execution, alerts, status...",
        description="Changes only the fields given. Parameters and execution options are "
        "merged over the stored ones; symbols, tags and alert rules given replace the stored "
        "lists. A change someone else made since the strategy was read is never overwritten: "
        "the update is refused and nothing changes.",
    )
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    p.add_argument("--name", help="new name, unique among your strategies")
    p.add_argument("--description", metavar="TEXT", help="new description ('' clears it)")
    p.add_argument(
        "-p", "--param", action="append", default=[], help="NAME=VALUE, merged over the stored"
    )
    p.add_argument(
        "--reset-params",
        action="store_true",
        help="parameters not given with -p go back to the type's defaults",
    )
    _list_flags(p, "--symbol", "--no-symbols", "symbol", "symbols")
    p.add_argument("--timeframe", help="bar spacing it is meant for, e.g. 1h ('' clears it)")
    _list_flags(p, "--tag", "--no-tags", "tag", "tags")
    p.add_argument("--status", choices=list(STATUSES), help="lifecycle mark")
    add_execution(p)
    p.add_argument(
        "--reset-execution",
        action="store_true",
        help="drop the stored execution options; those not given take the engine's defaults",
    )
    add_alert_flags(p, clearable=True)
    p.add_argument(
        "-m",
        "--member",
        action="append",
        default=[],
        metavar="ID[:WEIGHT]",
        help="an ensemble's member and its vote weight, default 1 (repeat, 2..10); "
        "replaces the stored members",
    )
    p.add_argument(
        "--method", choices=list(ENSEMBLE_METHODS), help="how an ensemble's members vote"
    )
    p.add_argument(
        "--etag",
        default="",
        help="refuse the update unless the strategy still has this etag "
        "(as `strategies show ID --json` printed it); default: the one read just before",
    )
    add_json(p)
    p.set_defaults(func=cmd_update)


def _list_flags(p: argparse.ArgumentParser, flag: str, clear: str, what: str, dest: str) -> None:
    """``--tag X`` (repeat; replaces the stored list) or ``--no-tags`` (empties it)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        flag,
        dest=dest,
        action="append",
        metavar=what.upper(),
        help=f"{what} (repeat); replaces the stored {dest}",
    )
    g.add_argument(clear, dest=dest, action="store_const", const=[], help=f"remove every {what}")


def _stub(r: Remote) -> pbg.StrategyServiceStub:
    return r.stub(pbg.StrategyServiceStub)


# -- the change ---------------------------------------------------------------------------------

# Each updatable field the command line can set: given(args) -> the value was given;
# apply(args, stored, change) copies it into `change`. In UpdateStrategy's field order.
_Setter = tuple[
    Callable[[argparse.Namespace], bool],
    Callable[[argparse.Namespace, pb.Strategy, pb.Strategy], None],
]


def _set_params(args: argparse.Namespace, stored: pb.Strategy, change: pb.Strategy) -> None:
    merged: dict[str, Any] = {} if args.reset_params else params_from_pb(stored.parameters)
    merged.update(parse_params(args.param))
    for k, v in merged.items():
        change.parameters[k].CopyFrom(param_to_pb(v))


def _set_execution(args: argparse.Namespace, stored: pb.Strategy, change: pb.Strategy) -> None:
    stored_given = {} if args.reset_execution else given_execution(stored.execution)
    # A listed but unspecified direction reads as None: it means the default, so leave it out.
    merged = {k: v for k, v in stored_given.items() if v is not None}
    merged.update(execution_given(args))
    change.execution.CopyFrom(execution_to_pb(merged))


SETTERS: dict[str, _Setter] = {
    "name": (lambda a: a.name is not None, lambda a, _, ch: setattr(ch, "name", a.name)),
    "description": (
        lambda a: a.description is not None,
        lambda a, _, ch: setattr(ch, "description", a.description),
    ),
    "parameters": (lambda a: bool(a.param) or a.reset_params, _set_params),
    "symbols": (lambda a: a.symbols is not None, lambda a, _, ch: ch.symbols.extend(a.symbols)),
    "timeframe": (
        lambda a: a.timeframe is not None,
        lambda a, _, ch: setattr(ch, "timeframe", a.timeframe),
    ),
    "tags": (lambda a: a.tags is not None, lambda a, _, ch: ch.tags.extend(a.tags)),
    "status": (
        lambda a: a.status is not None,
        lambda a, _, ch: setattr(ch, "status", STATUSES[a.status]),
    ),
    "execution": (lambda a: bool(execution_given(a)) or a.reset_execution, _set_execution),
    "ensemble_members": (
        lambda a: bool(a.member),
        lambda a, _, ch: ch.ensemble_members.extend(parse_member(m) for m in a.member),
    ),
    "ensemble_method": (
        lambda a: a.method is not None,
        lambda a, _, ch: setattr(ch, "ensemble_method", ENSEMBLE_METHODS[a.method]),
    ),
    "alert_rules": (
        lambda a: bool(a.alert) or a.no_alerts,
        lambda a, _, ch: ch.alert_rules.extend(parse_alerts(a.alert)),
    ),
}


def requested_paths(args: argparse.Namespace) -> list[str]:
    """The fields the command line sets; a CliError when none (an empty mask is "all")."""
    paths = [name for name, (given, _) in SETTERS.items() if given(args)]
    if not paths:
        raise CliError(
            "nothing to update: give at least one of --name, --description, -p, --symbol, "
            "--timeframe, --tag, --status, an execution option, --alert, --no-alerts, "
            "--member or --method "
            "(see `stratopt strategies update --help`)"
        )
    return paths


def build_change(
    args: argparse.Namespace, stored: pb.Strategy, paths: list[str]
) -> pb.UpdateStrategyRequest:
    """The request: the given fields over `stored`, the mask naming them, and the etag."""
    change = pb.Strategy(id=stored.id, etag=args.etag or stored.etag)
    for path in paths:
        SETTERS[path][1](args, stored, change)
    return pb.UpdateStrategyRequest(
        strategy=change, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )


def cmd_update(args: argparse.Namespace) -> int:
    paths = requested_paths(args)
    parse_alerts(args.alert)  # a malformed rule or member is a usage error before any call
    parse_params(args.param)
    for member in args.member:
        parse_member(member)
    with Remote(args.server) as r:
        stub = _stub(r)
        stored = stub.GetStrategy(pb.GetStrategyRequest(strategy_id=args.strategy_id)).strategy
        request = build_change(args, stored, paths)
        try:
            updated = stub.UpdateStrategy(request).strategy
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.ABORTED:
                raise _conflict(args, stored, request.strategy.etag) from None
            raise
    if args.json:
        o.print_json(updated)
    elif updated.version == stored.version:
        print(f"{updated.name} ({updated.id}) already had these values: nothing changed")
    else:
        changed = "; ".join(f"{p} {field_text(updated, p)}" for p in paths)
        print(f"updated {updated.name} ({updated.id}) to version {updated.version}: {changed}")
    return 0


def _conflict(args: argparse.Namespace, stored: pb.Strategy, etag: str) -> CliError:
    """The refusal of a change to a strategy that changed since it was read (ABORTED)."""
    when = (
        f"is no longer at etag {etag}: it changed since you read it"
        if args.etag
        else "was changed by someone else while this update ran"
    )
    return CliError(
        f"strategy {stored.id} {when}; your update was not applied. "
        f"See `stratopt strategies history {stored.id}`, then run the update again.",
        code=1,
    )


def field_text(s: pb.Strategy, path: str) -> str:
    """One updated field's new value, as `strategies show` prints it."""
    if path == "parameters":
        return o.params_text(params_from_pb(s.parameters))
    if path == "execution":
        given = given_execution(s.execution)
        return ", ".join(f"{k}={v}" for k, v in given.items()) or "engine defaults"
    if path == "alert_rules":
        return alerts_text(s.alert_rules)
    if path == "status":
        return STATUS_NAMES.get(s.status, "-")
    if path == "ensemble_members":
        return members_text(s)
    if path == "ensemble_method":
        return METHOD_NAMES.get(s.ensemble_method, "-")
    value = getattr(s, path)
    if isinstance(value, str):
        return repr(value) if path in ("name", "description") else value or "-"
    return ", ".join(value) or "-"
