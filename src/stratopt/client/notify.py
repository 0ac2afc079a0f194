"""`stratopt overview`, `stratopt notifications` and `stratopt webhooks`: the SystemService
from the terminal. What the server holds for you at a glance, your notifications (jobs that
ended, exports ready, strategy alerts and status changes), and the webhooks that carry them
out as signed Slack-compatible JSON (docs/live.md).

`notifications` lists what is stored (ListNotifications: the newest `--last`, or all after
`--after SEQ`), oldest first; `--follow` then streams from the newest one listed, so nothing
written in between is lost or shown twice, subscribing again after the last sequence
printed when the connection breaks or the server restarts (the way `Client.follow_live`
follows a paper run). Every line and JSON object carries its sequence, which is what
`--after` takes.

A webhook's signing secret is returned by CreateWebhook only; `webhooks create` prints it
once, says so, and nothing else here ever writes it anywhere.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import system_pb2 as pb
from stratopt.v1 import system_pb2_grpc as pbg

SEVERITIES = {
    v: k for k, v in o.enum_names(pb.NotificationSeverity, "NOTIFICATION_SEVERITY_").items()
}
DEFAULT_LAST = 20
MAX_PAGE = 200  # ListNotifications' largest page
DEFAULT_KINDS = "strategy.alert (default)"
SIGNATURE = 'X-Stratopt-Signature: v1=HMAC-SHA256(secret, "<timestamp>." + body)'


def add_commands(sub: Any) -> None:
    p = subparser(
        sub,
        "overview",
        "what the server holds for you: strategies, datasets, backtests, jobs, paper trading",
        description="Counts of what you can see on the server (everything for an admin): "
        "strategies and how many paper trade, datasets (the public samples included), "
        "backtests, queued and running jobs, today's paper trades and the value of your "
        "running paper portfolios; and the server's version, uptime, database, engine state "
        "and open streams.",
    )
    add_server(p)
    add_json(p)
    p.set_defaults(func=cmd_overview)

    p = subparser(
        sub,
        "notifications",
        "your notifications: jobs that ended, exports ready, strategy alerts and status",
        description="Prints your stored notifications, oldest first, one line each: time "
        "(UTC), severity, kind, title, message, the resource it is about and its sequence "
        "number (--json: one JSON object per line): the newest --last N, or every one after "
        "--after SEQ. With --follow it then waits for new ones until Ctrl-C, from the newest "
        "listed (none is lost in between); when the connection breaks or the server restarts "
        "it subscribes again after the last one printed.",
    )
    add_server(p)
    p.add_argument(
        "--last",
        type=int,
        default=DEFAULT_LAST,
        metavar="N",
        help=f"list the newest N (default {DEFAULT_LAST}; 0 with --follow: only new ones)",
    )
    p.add_argument(
        "--after", type=int, metavar="SEQ", help="list every one after this sequence number"
    )
    p.add_argument("-f", "--follow", action="store_true", help="then wait for new ones")
    add_json(p)
    p.set_defaults(func=cmd_notifications)

    hooks = subparser(
        sub,
        "webhooks",
        "URLs that receive your notifications as signed Slack-compatible JSON",
        aliases=["webhook"],
    )
    verbs = hooks.add_subparsers(dest="webhooks_cmd", required=True, metavar="VERB")

    p = subparser(
        verbs, "ls", "your webhooks: what they send, deliveries, the last error", aliases=["list"]
    )
    add_server(p)
    add_json(p)
    p.set_defaults(func=cmd_webhooks_ls)

    p = subparser(
        verbs,
        "create",
        "register a URL for your notifications; prints its signing secret, once",
        description="Registers a URL that receives your notifications of the given kinds "
        "(strategy alerts when none is given) as Slack-compatible JSON, each request signed "
        "with HMAC-SHA256 (docs/live.md). The signing secret is printed here and never "
        "again: store it where the receiver verifies signatures. Loopback and private "
        "addresses are refused unless the server runs with --dev.",
    )
    add_server(p)
    p.add_argument("url", metavar="URL", help="http:// or https://, no user:password@")
    p.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        default=[],
        metavar="KIND",
        help="a notification kind to send, e.g. strategy.alert, job.succeeded, job.failed, "
        "export.ready (repeat; default strategy alerts only)",
    )
    add_json(p)
    p.set_defaults(func=cmd_webhooks_create)

    p = subparser(verbs, "rm", "delete webhooks", aliases=["delete"])
    add_server(p)
    p.add_argument("webhook_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_webhooks_rm)


def _stub(r: Remote) -> pbg.SystemServiceStub:
    return r.stub(pbg.SystemServiceStub)


def _time(ts: Any) -> str:
    """A Timestamp as UTC (from nanoseconds: a naive datetime would be read as local)."""
    return o.when(ts.ToNanoseconds())


# -- overview ----------------------------------------------------------------------------------


def cmd_overview(args: argparse.Namespace) -> int:
    with Remote(args.server) as rem:
        view = _stub(rem).GetOverview(pb.GetOverviewRequest())
    if args.json:
        o.print_json(o.proto_json(view))
        return 0
    o.show(o.pairs(overview_rows(view, args.server)))
    return 0


def overview_rows(v: pb.GetOverviewResponse, server: str) -> list[tuple[str, str]]:
    engine = (
        "ready" if v.engine_ready else "compiling its kernels: the first backtest waits for them"
    )
    strategies = f"{o.number(v.strategy_count)} ({o.number(v.running_strategy_count)} running)"
    jobs = f"{o.number(v.queued_job_count)} queued, {o.number(v.running_job_count)} running"
    return [
        ("server", f"{server}, stratopt {v.version or '?'}"),
        ("up for", o.span(v.uptime.ToTimedelta().total_seconds())),
        ("server time", f"{_time(v.server_time)} UTC" if v.HasField("server_time") else "-"),
        ("database", v.database_backend or "-"),
        ("engine", engine),
        ("strategies", strategies),
        ("datasets", o.number(v.dataset_count)),
        ("backtests", o.number(v.backtest_count)),
        ("jobs", jobs),
        ("paper trades today", o.number(v.trades_today)),
        ("paper portfolio", o.money(v.paper_portfolio_value)),
        ("open streams", o.number(v.open_stream_count)),
    ]


# -- notifications -----------------------------------------------------------------------------


def cmd_notifications(args: argparse.Namespace) -> int:
    if args.after is not None and args.after < 0:
        raise CliError(f"--after {args.after}: a sequence number is 0 or more")
    if args.last < 0:
        raise CliError(f"--last {args.last}: give 0 or more")
    with Remote(args.server) as rem:
        stored, newest = stored_notifications(rem, args.last, args.after)
        for n in stored:
            _print_notification(n, args.json)
        if not args.follow:
            if not newest and not args.json:
                print("stratopt: no notifications yet", file=sys.stderr)
            return 0
        start = stored[-1].sequence if stored else max(newest, args.after or 0)
        follow = rem.client.follow_notifications(start)
        missed = 0
        for n in follow:
            _print_notification(n, args.json)
            if follow.dropped > missed:  # the server left some out for this slow reader
                o.warn(f"{follow.dropped - missed:,} notifications missed: reading too slowly")
                missed = follow.dropped
    return 0


def _print_notification(n: pb.Notification, json: bool) -> None:
    print(o.json_line(n) if json else notification_line(n), flush=True)


def stored_notifications(
    rem: Remote, last: int, after: int | None
) -> tuple[list[pb.Notification], int]:
    """The newest `last` stored notifications (every one after `after`, when given), oldest
    first, and the newest sequence the listing saw: where a follow continues."""
    found: list[pb.Notification] = []
    # Only as many as needed for --last (at least 1: the listing also says the newest).
    size = MAX_PAGE if after is not None else min(max(last, 1), MAX_PAGE)
    req = pb.ListNotificationsRequest(page_size=size)
    while True:
        page = _stub(rem).ListNotifications(req)
        for n in page.notifications:
            done = n.sequence <= after if after is not None else len(found) >= last
            if done:
                return found[::-1], page.newest_sequence
            found.append(n)
        if not page.next_page_token or (after is None and len(found) >= last):
            return found[::-1], page.newest_sequence
        req.page_token = page.next_page_token


def notification_line(n: pb.Notification) -> str:
    """One notification on one line (a multi-line message is joined)."""
    cells = [
        _time(n.time) if n.HasField("time") else "-",
        f"{SEVERITIES.get(n.severity, '-'):<7}",
        n.kind or "-",
        n.title or "-",
        " ".join(n.message.split()) or "-",
        n.resource or "-",
        f"#{n.sequence}",
    ]
    return "  ".join(cells)


# -- webhooks ------------------------------------------------------------------------------------


def cmd_webhooks_ls(args: argparse.Namespace) -> int:
    with Remote(args.server) as rem:
        hooks = list(_stub(rem).ListWebhooks(pb.ListWebhooksRequest()).webhooks)
    if args.json:
        o.print_json([o.proto_json(h) for h in hooks])
        return 0
    rows = [
        [
            h.id, h.url, ", ".join(h.kinds) or DEFAULT_KINDS, f"{h.delivered_count:,}",
            f"{h.failed_count:,}", h.last_error or "-",
            _time(h.create_time) if h.HasField("create_time") else "-",
        ]
        for h in hooks
    ]  # fmt: skip
    columns = ["ID", "URL", "SENDS", ">DELIVERED", ">FAILED", "LAST ERROR", "CREATED (UTC)"]
    o.show(o.table(columns, rows))
    return 0


def cmd_webhooks_create(args: argparse.Namespace) -> int:
    url = _webhook_url(args.url)
    hook = pb.Webhook(url=url, kinds=[k.strip() for k in args.kinds])
    with Remote(args.server) as rem:
        created = _stub(rem).CreateWebhook(pb.CreateWebhookRequest(webhook=hook)).webhook
    once = "the server never shows it again: store it now where the receiver can read it"
    if args.json:
        o.print_json(o.proto_json(created))
        if created.secret:
            print(f"stratopt: the signing secret is in this output only; {once}", file=sys.stderr)
        return 0
    print(f"created webhook {created.id} for {created.url}")
    print(f"sends: {', '.join(created.kinds) or DEFAULT_KINDS}")
    if not created.secret:
        print("the server returned no signing secret")
        return 0
    print(f"signing secret: {created.secret}")
    print(f"  shown this once; {once}.")
    print(f"  Every delivery is signed with it: {SIGNATURE} (docs/live.md).")
    return 0


def _webhook_url(text: str) -> str:
    """The URL as given, or why not: a missing scheme is the usual slip (the server checks
    the rest: credentials, private addresses, length)."""
    url = text.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        example = url.split("://", 1)[-1] or "example.com/hook"
        raise CliError(
            f"{text!r}: a webhook URL starts with http:// or https://, e.g. https://{example}"
        )
    if not parts.netloc:
        raise CliError(f"{text!r}: the webhook URL has no host")
    return url


def cmd_webhooks_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as rem:
        stub = _stub(rem)
        return o.delete_each(
            "webhook", args.webhook_ids,
            lambda wid: stub.DeleteWebhook(pb.DeleteWebhookRequest(webhook_id=wid)), args.json,
        )  # fmt: skip
