"""`stratopt rules`: your strategy types and indicators in the rule language (docs/rules.md).

`validate` checks a file on this machine with the same checker the server runs (no server,
no login), or with `--server` through the ValidateUserDefinition RPC, which also knows the
indicators stored on the server. Problems print as ``FILE:LINE:COLUMN: message``, the form
editors and CI logs turn into links, and the command exits 1. The other verbs are the
UserDefinitionService on the client library's `user_definitions` stub: create, ls, show,
update, rm, share and unshare. A stored strategy type is then `user_<id>` wherever a
built-in type name goes (`stratopt backtest --server --strategy user_<id>`, `optimize`,
`strategies create --type`, `export pine`).

A definition is named on the command line by its id, by its type name `user_<id>`, or by
its name when exactly one definition you can see has it (else the ids to choose from).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stratopt.api.convert import param_spec_to_pb
from stratopt.client import output as o
from stratopt.client.args import add_json, subparser
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.client.strategies import parameters_table
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import rules_pb2 as pb
from stratopt.v1 import rules_pb2_grpc as pbg
from stratopt.v1 import strategy_pb2 as s_pb

KINDS = {
    "strategy": pb.USER_DEFINITION_KIND_STRATEGY,
    "indicator": pb.USER_DEFINITION_KIND_INDICATOR,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}
_ID = re.compile(r"^(?:user_)?([0-9a-f]{32})$")
_POSITIONED = re.compile(r"^(\d+):(\d+): (.*)$", re.S)
INVALID = 1
"""Exit status of a definition with problems (2 stays for usage errors, as elsewhere)."""


def add_commands(sub: Any) -> None:
    rules = subparser(
        sub,
        "rules",
        "your strategy types and indicators in the rule language",
        description="User strategy types and indicators written in the rule language "
        "(docs/rules.md). A stored strategy type is used as `user_<id>` wherever a built-in "
        "type name goes. ID is a definition's id, its type name user_<id>, or its name.",
    )
    verbs = rules.add_subparsers(dest="rules_cmd", required=True, metavar="VERB")

    p = subparser(
        verbs,
        "validate",
        "check a definition: locally, or with --server against your stored indicators",
        description="Checks FILE (- for stdin) and prints its problems as FILE:LINE:COLUMN: "
        "message (exit status 1), or its parameter space. Without --server the check runs "
        "here, with the server's checker; a strategy that calls your own indicators then "
        "needs them as --indicator files (or add --server, which knows the stored ones).",
    )
    add_server(p, optional=True)
    p.add_argument("file", metavar="FILE", help="the definition (- reads stdin)")
    _kind(p)
    p.add_argument(
        "--indicator",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="a user indicator the definition calls, for a local check (repeat); its name "
        "is the file's stem unless given",
    )
    p.add_argument("--name", default="", help="the name it would be saved under (indicators)")
    add_json(p)
    p.set_defaults(func=cmd_validate)

    p = subparser(
        verbs,
        "create",
        "store a strategy type or an indicator",
        description="Stores the definition in FILE under NAME (snake_case, unique among "
        "yours of its kind). A strategy becomes the type user_<id>; an indicator is called "
        "by NAME from your strategies and those of users you share it with.",
    )
    add_server(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", metavar="FILE", help="the definition (- reads stdin)")
    _kind(p)
    p.add_argument("--description", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the new id")
    add_json(p)
    p.set_defaults(func=cmd_create)

    p = subparser(verbs, "ls", "list your definitions and those shared with you", aliases=["list"])
    add_server(p)
    p.add_argument("--kind", choices=sorted(KINDS), default="", help="only this kind")
    add_json(p)
    p.set_defaults(func=cmd_ls)

    p = subparser(verbs, "show", "show a definition: its source and parameter space")
    add_server(p)
    p.add_argument("definition", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparser(
        verbs,
        "update",
        "replace a definition's source (and/or rename it, change its description)",
        description="Saves a new source from FILE, a new --name or --description; the "
        "definition is checked again and its version goes up. Stored strategies of the "
        "type use the new rules from their next run.",
    )
    add_server(p)
    p.add_argument("definition", metavar="ID")
    p.add_argument("file", metavar="FILE", nargs="?", help="the new source (- reads stdin)")
    p.add_argument("--name", default=None, help="rename it")
    p.add_argument("--description", default=None, help="new description")
    add_json(p)
    p.set_defaults(func=cmd_update)

    p = subparser(verbs, "rm", "delete definitions", aliases=["delete"])
    add_server(p)
    p.add_argument("definitions", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_rm)

    for verb, text, func in (
        ("share", "let another user read and use a definition", cmd_share),
        ("unshare", "withdraw a share (or leave one shared with you)", cmd_unshare),
    ):
        p = subparser(verbs, verb, text)
        add_server(p)
        p.add_argument("definition", metavar="ID")
        p.add_argument("username", metavar="USER")
        add_json(p)
        p.set_defaults(func=func)


def _kind(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=sorted(KINDS), default="strategy", help="what FILE defines")


def _stub(r: Remote) -> pbg.UserDefinitionServiceStub:
    return r.client.user_definitions


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: cannot be read ({e})") from None


def _label(path: str) -> str:
    return "<stdin>" if path == "-" else path


# -- validate ---------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    source = _read(args.file)
    if args.server:
        if args.indicator:
            raise CliError("--indicator is for a local check; the server uses your stored ones")
        req = pb.ValidateUserDefinitionRequest(kind=KINDS[args.kind], source=source, name=args.name)
        with Remote(args.server) as r:
            reply = _stub(r).ValidateUserDefinition(req)
    else:
        reply = local_validation(args.kind, source, _indicator_files(args.indicator), args.name)
    if args.json:
        o.print_json(reply)
    elif reply.valid:
        o.show(*_valid_text(_label(args.file), args.kind, reply))
    if not reply.valid:
        if not args.json:
            print_problems(_label(args.file), reply.problems)
        return INVALID
    return 0


def _indicator_files(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        out[name.strip()] = _read(path.strip())
    return out


def local_validation(
    kind: str, source: str, indicators: dict[str, str], name: str = ""
) -> pb.ValidateUserDefinitionResponse:
    """The answer ValidateUserDefinition gives, computed here with the same checker (the
    rules package), so both paths print and serialize alike."""
    from stratopt.rules import RuleError, RuleErrors, check, check_indicator

    reply = pb.ValidateUserDefinitionResponse()
    try:
        if kind == "indicator":
            check_indicator(source, indicators={n: t for n, t in indicators.items() if n != name})
        else:
            checked = check(source, indicators=indicators)
            reply.parameters.extend(param_spec_to_pb(p) for p in checked.params)
            reply.constraints.extend(
                c.ParameterConstraint(left=x.left, op=x.op, right=x.right)
                for x in checked.constraints
            )
            reply.indicators.extend(sorted(checked.indicators))
    except RuleError as e:
        errors = e.errors if isinstance(e, RuleErrors) else [e]
        reply.problems.extend(
            pb.DefinitionProblem(line=x.line or 1, column=x.column or 1, message=x.message)
            for x in errors
        )
        del reply.parameters[:], reply.constraints[:], reply.indicators[:]
    reply.valid = not reply.problems
    return reply


def print_problems(label: str, problems: Iterable[pb.DefinitionProblem]) -> None:
    for p in problems:
        print(f"{label}:{p.line}:{p.column}: {p.message}", file=sys.stderr)


def _valid_text(label: str, kind: str, reply: pb.ValidateUserDefinitionResponse) -> list[Any]:
    parts: list[Any] = [f"{label}: a valid {kind}"]
    if kind == "strategy":
        parts += _space(reply.parameters, reply.constraints)
    if reply.indicators:
        parts.append(f"user indicators it calls: {', '.join(reply.indicators)}")
    return parts


def _space(
    params: Sequence[c.ParameterSpec], constraints: Sequence[c.ParameterConstraint]
) -> list[Any]:
    parts: list[Any] = [parameters_table(params) if params else "no parameters"]
    parts += [f"constraint: {k.left} {k.op} {k.right}" for k in constraints]
    return parts


# -- the stored definitions -------------------------------------------------------------------


def _fail_with_positions(e: grpc.RpcError, label: str) -> NoReturn:
    """A definition the server refused to compile: its problems as LABEL:LINE:COL: message
    and CliError(exit 1); any other error is re-raised for the usual message."""
    if not hasattr(e, "code") or e.code() != grpc.StatusCode.INVALID_ARGUMENT:
        raise e
    try:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
    except Exception:
        status = None
    positioned: list[pb.DefinitionProblem] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                m = _POSITIONED.match(v.description)
                if v.field == "definition.source" and m:
                    positioned.append(
                        pb.DefinitionProblem(
                            line=int(m.group(1)), column=int(m.group(2)), message=m.group(3)
                        )
                    )
    if not positioned:
        raise e
    print_problems(label, positioned)
    raise CliError(f"{label} does not compile: nothing was saved", INVALID)


def definition_id(r: Remote, text: str) -> str:
    """The id named by `text`: an id, a type name user_<id>, or a name only one visible
    definition has (a strategy and an indicator, or yours and a shared one, may share it)."""
    m = _ID.match(text.strip())
    if m:
        return m.group(1)
    found = [
        d
        for d in r.client.pages(
            _stub(r).ListUserDefinitions,
            pb.ListUserDefinitionsRequest(page_size=200),
            "definitions",
        )
        if d.name == text
    ]
    if not found:
        raise CliError(f"no definition named {text!r} (`stratopt rules ls` lists them)")
    if len(found) > 1:
        ids = ", ".join(
            f"{d.id} ({KIND_NAMES.get(d.kind, '?')} of {d.owner_username})" for d in found
        )
        raise CliError(f"{text!r} names several definitions; give the id: {ids}")
    return str(found[0].id)


def cmd_create(args: argparse.Namespace) -> int:
    source = _read(args.file)
    d = pb.UserDefinition(
        kind=KINDS[args.kind], name=args.name, description=args.description, source=source
    )
    with Remote(args.server) as r:
        try:
            reply = _stub(r).CreateUserDefinition(pb.CreateUserDefinitionRequest(definition=d))
        except grpc.RpcError as e:
            _fail_with_positions(e, _label(args.file))
    made = reply.definition
    if args.quiet:
        print(made.id)
    elif args.json:
        o.print_json(reply)
    else:
        what = f"strategy type {made.strategy_type}" if made.strategy_type else "indicator"
        print(f"created {what}: {made.name} (id {made.id})")
        if made.strategy_type:
            print(
                f"use it as --strategy {made.strategy_type} "
                f"(stratopt backtest --server --strategy {made.strategy_type} --data DATASET)"
            )
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    req = pb.ListUserDefinitionsRequest(
        page_size=200, kind=KINDS.get(args.kind, pb.USER_DEFINITION_KIND_UNSPECIFIED)
    )
    with Remote(args.server) as r:
        items = list(r.client.pages(_stub(r).ListUserDefinitions, req, "definitions"))
    if args.json:
        o.print_json([o.proto_json(d) for d in items])
        return 0
    rows = [
        [
            d.id,
            KIND_NAMES.get(d.kind, "-"),
            d.name,
            " ".join(f"{p.name}={_default(p.default_value)}" for p in d.parameters) or "-",
            d.owner_username,
            ", ".join(d.shared_with) or "-",
            str(d.version),
            o.when(d.update_time.ToDatetime()) if d.HasField("update_time") else "-",
        ]
        for d in items
    ]
    columns = ["ID", "KIND", "NAME", "PARAMETERS", "OWNER", "SHARED WITH", ">VER", "UPDATED (UTC)"]
    o.show(o.table(columns, rows))
    if items:
        print("a strategy's type is user_<ID>; details: stratopt rules show ID")
    if not items:
        print("no definitions yet: stratopt rules create NAME FILE")
    return 0


def _default(v: c.ParameterValue) -> str:
    kind = v.WhichOneof("kind")
    return str(getattr(v, kind)) if kind else "-"


def show_definition(d: pb.UserDefinition, t: s_pb.StrategyType | None, json: bool) -> None:
    if json:
        out = {"definition": o.proto_json(d)}
        if t is not None:
            out["strategy_type"] = o.proto_json(t)
        o.print_json(out)
        return
    rows = [
        ("id", d.id),
        ("kind", KIND_NAMES.get(d.kind, "-")),
        ("name", d.name),
        ("type", d.strategy_type or "- (an indicator: call it by name)"),
        ("owner", d.owner_username),
        ("shared with", ", ".join(d.shared_with) or "-"),
        ("indicators", ", ".join(d.indicators) or "-"),
        ("version", f"{d.version} (etag {d.etag})"),
        ("updated", o.when(d.update_time.ToDatetime()) if d.HasField("update_time") else "-"),
        ("description", d.description or "-"),
    ]
    parts: list[Any] = [o.pairs(rows)]
    if t is not None:
        parts += ["", *_space(t.parameters, t.constraints)]
    o.show(*parts)
    print()
    print(d.source, end="" if d.source.endswith("\n") else "\n")


def cmd_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        did = definition_id(r, args.definition)
        reply = _stub(r).GetUserDefinition(pb.GetUserDefinitionRequest(definition_id=did))
    t = reply.strategy_type if reply.HasField("strategy_type") else None
    show_definition(reply.definition, t, args.json)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    d = pb.UserDefinition()
    paths = []
    if args.file is not None:
        d.source = _read(args.file)
        paths.append("source")
    if args.name is not None:
        d.name = args.name
        paths.append("name")
    if args.description is not None:
        d.description = args.description
        paths.append("description")
    if not paths:
        raise CliError("nothing to update: give FILE, --name or --description")
    with Remote(args.server) as r:
        d.id = definition_id(r, args.definition)
        req = pb.UpdateUserDefinitionRequest(
            definition=d, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        try:
            reply = _stub(r).UpdateUserDefinition(req)
        except grpc.RpcError as e:
            # Without FILE the stored source is checked again: name it by the reference.
            _fail_with_positions(e, _label(args.file) if args.file else args.definition)
    if args.json:
        o.print_json(reply)
    else:
        up = reply.definition
        print(f"updated {up.name} ({', '.join(paths)}): version {up.version}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _stub(r)

        def delete(did: str) -> object:
            return stub.DeleteUserDefinition(pb.DeleteUserDefinitionRequest(definition_id=did))

        return o.delete_each(
            "definition", args.definitions, delete, args.json,
            resolve=lambda text: definition_id(r, text),
        )  # fmt: skip


def cmd_share(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        did = definition_id(r, args.definition)
        reply = _stub(r).ShareUserDefinition(
            pb.ShareUserDefinitionRequest(definition_id=did, username=args.username)
        )
    if args.json:
        o.print_json(reply.definition)
    else:
        d = reply.definition
        print(f"shared {d.name} with {args.username}; shared with: {', '.join(d.shared_with)}")
    return 0


def cmd_unshare(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        did = definition_id(r, args.definition)
        _stub(r).UnshareUserDefinition(
            pb.UnshareUserDefinitionRequest(definition_id=did, username=args.username)
        )
    if args.json:
        o.print_json({"definition_id": did, "unshared": args.username})
    else:
        print(f"{args.username} no longer shares {did}")
    return 0
