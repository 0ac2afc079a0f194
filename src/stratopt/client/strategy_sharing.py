"""`stratopt strategies history|share|unshare|shares`: who changed a strategy and who may.

A strategy's history is every version it went through and every grant given or taken back
(newest first, all pages), so `history` answers both "what changed" and "since when could
this user act on it". A share grants another user some of read, write, execute (paper
trading), delete and share (passing access on); read always comes with any of them. Only
the owner, an admin or a holder of `share` may grant, and never more than they hold.
"""

from __future__ import annotations

import argparse
from typing import Any

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

ACCESS = {
    "read": pb.STRATEGY_ACCESS_READ,
    "write": pb.STRATEGY_ACCESS_WRITE,
    "execute": pb.STRATEGY_ACCESS_EXECUTE,
    "delete": pb.STRATEGY_ACCESS_DELETE,
    "share": pb.STRATEGY_ACCESS_SHARE,
}
ACCESS_NAMES = {v: k for k, v in ACCESS.items()}
HISTORY_PAGE = 200  # the server's largest page: fewest round trips for a long history


def add_verbs(verbs: Any) -> None:
    p = subparser(
        verbs,
        "history",
        "every version of a strategy: who created, changed, ran or shared it, and when",
    )
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_history)

    p = subparser(
        verbs,
        "share",
        "let another user read (or also change, run, delete, share) a strategy",
        description="Grants USER access to a strategy; sharing again with the same user "
        "replaces the grant. Read always comes with any grant.",
    )
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    p.add_argument("username", metavar="USER")
    p.add_argument(
        "-a",
        "--access",
        action="append",
        choices=list(ACCESS),
        help="what USER may do (repeat; default read only)",
    )
    add_json(p)
    p.set_defaults(func=cmd_share)

    p = subparser(verbs, "unshare", "take a user's access to a strategy back")
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    p.add_argument("username", metavar="USER")
    add_json(p)
    p.set_defaults(func=cmd_unshare)

    p = subparser(verbs, "shares", "the users a strategy is shared with, and what they may do")
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_shares)


def _stub(r: Remote) -> pbg.StrategyServiceStub:
    return r.stub(pbg.StrategyServiceStub)


def _access_text(access: Any) -> str:
    return ", ".join(ACCESS_NAMES.get(a, str(a)) for a in access) or "-"


def _event(action: pb.HistoryAction.ValueType) -> str:
    return str(pb.HistoryAction.Name(action)).removeprefix("HISTORY_ACTION_").lower()


# -- history --------------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    req = pb.ListStrategyHistoryRequest(strategy_id=args.strategy_id, page_size=HISTORY_PAGE)
    with Remote(args.server) as r:
        events = list(r.client.pages(_stub(r).ListStrategyHistory, req, "events"))
    if args.json:
        o.print_json([o.proto_json(e) for e in events])
        return 0
    rows = [
        [
            f"{e.version:,}",
            _event(e.action),
            e.actor_username or e.actor_id or "-",
            o.when(e.time.ToNanoseconds()) if e.HasField("time") else "-",
            ", ".join(e.changed_fields) or "-",
        ]
        for e in events
    ]
    o.show(o.table([">VERSION", "EVENT", "WHO", "WHEN (UTC)", "CHANGED"], rows))
    return 0


# -- shares ---------------------------------------------------------------------------------------


def cmd_share(args: argparse.Namespace) -> int:
    access = [ACCESS[a] for a in dict.fromkeys(args.access or ["read"])]
    req = pb.ShareStrategyRequest(
        strategy_id=args.strategy_id, username=args.username, access=access
    )
    with Remote(args.server) as r:
        share = _stub(r).ShareStrategy(req).share
    if args.json:
        o.print_json(share)
    else:
        print(
            f"shared strategy {share.strategy_id} with {share.username}: "
            f"{_access_text(share.access)}"
        )
    return 0


def cmd_unshare(args: argparse.Namespace) -> int:
    req = pb.UnshareStrategyRequest(strategy_id=args.strategy_id, username=args.username)
    with Remote(args.server) as r:
        _stub(r).UnshareStrategy(req)
    if args.json:
        o.print_json({"strategy_id": args.strategy_id, "unshared": args.username})
    else:
        print(f"{args.username} no longer has access to strategy {args.strategy_id}")
    return 0


def cmd_shares(args: argparse.Namespace) -> int:
    req = pb.ListStrategySharesRequest(strategy_id=args.strategy_id)
    with Remote(args.server) as r:
        shares = list(_stub(r).ListStrategyShares(req).shares)
    if args.json:
        o.print_json([o.proto_json(s) for s in shares])
        return 0
    if not shares:
        print(f"strategy {args.strategy_id} is not shared with anyone")
        return 0
    rows = [
        [
            s.username,
            _access_text(s.access),
            o.when(s.create_time.ToNanoseconds()) if s.HasField("create_time") else "-",
        ]
        for s in shares
    ]
    o.show(o.table(["USER", "ACCESS", "SINCE (UTC)"], rows))
    return 0
