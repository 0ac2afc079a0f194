"""`stratopt whoami`, `passwd`, `keys`, `audit` and `users`: your account, your API keys,
and (for admins) other people's accounts and the audit trail, all over gRPC (AuthService).

`users` manages accounts on a running server as an admin; `stratopt user create` (cli.py)
is the server-side bootstrap that writes to the database directly, for the first admin.

Secrets: passwords come from STRATOPT_PASSWORD (the current one) and STRATOPT_NEW_PASSWORD
(a new one), else they are asked on the terminal without echo, as `stratopt login` does;
they are never printed. An API key's secret is printed once, by `keys create` or `keys
rotate` (`-q` prints nothing else, for `export STRATOPT_API_KEY=$(stratopt keys create ci
-q)`): the server keeps only its hash, so it cannot be shown again.

People are named by username (or user id) on the command line; the server wants ids, so
a username is looked up in the user list (an admin's call, like everything that names
someone else).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser, utc_time
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import auth_pb2 as pb
from stratopt.v1 import auth_pb2_grpc as pbg
from stratopt.v1 import common_pb2 as c

ROLES = {c.Role.Name(v).removeprefix("ROLE_").lower(): v for v in c.Role.values() if v}
PERMISSIONS = {
    c.Permission.Name(v).removeprefix("PERMISSION_").lower(): v for v in c.Permission.values() if v
}
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_USER_ID = re.compile(r"[0-9a-f]{32}")
SHOWN_ONCE = (
    "This is the only time the secret is shown (the server keeps only its hash): store it "
    "now, e.g. in a secret manager or as STRATOPT_API_KEY."
)


def add_commands(sub: Any) -> None:
    _add_whoami_passwd(sub)
    _add_keys(sub)
    _add_audit(sub)
    _add_users(sub)


def _add_whoami_passwd(sub: Any) -> None:
    p = subparser(sub, "whoami", "who the server takes you for: user, role, credential")
    add_server(p)
    add_json(p)
    p.set_defaults(func=cmd_whoami)

    p = subparser(
        sub,
        "passwd",
        "change your own password",
        description="Changes the password of the user you are logged in as. Your other "
        "login sessions end; this one goes on.",
    )
    add_server(p)
    add_json(p)
    p.epilog = (
        "The current password comes from STRATOPT_PASSWORD and the new one from "
        "STRATOPT_NEW_PASSWORD; without them both are asked on the terminal (the new one "
        "twice)."
    )
    p.set_defaults(func=cmd_passwd)


def _add_keys(sub: Any) -> None:
    keys = subparser(
        sub,
        "keys",
        "your API keys: list, create, revoke, rotate",
        description="API keys authenticate scripts and services (env STRATOPT_API_KEY, or "
        "the x-api-key header). Creating and rotating one needs a login, not a key.",
    )
    verbs = keys.add_subparsers(dest="keys_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list your API keys (prefix, scopes, expiry, last use)")
    add_server(p)
    p.add_argument("--all", action="store_true", help="revoked and expired keys too")
    p.add_argument("--user", help="admins: another user's keys (username or id)")
    add_json(p)
    p.set_defaults(func=cmd_keys_ls)

    p = subparser(
        verbs,
        "create",
        "create an API key; its secret is printed once",
        description="Creates an API key with your role's permissions, or only --scope ones. "
        "The secret is printed this once; -q prints only the secret.",
    )
    add_server(p)
    p.add_argument("name", help="a name to tell it by, e.g. ci")
    p.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        default=[],
        choices=sorted(PERMISSIONS),
        metavar="PERMISSION",
        help=f"limit the key to this permission (repeat): {', '.join(sorted(PERMISSIONS))}",
    )
    p.add_argument("--expires", metavar="WHEN", help="a time (UTC) or a duration such as 90d")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the secret")
    add_json(p)
    p.set_defaults(func=cmd_keys_create)

    p = subparser(verbs, "revoke", "revoke API keys at once", aliases=["rm"])
    add_server(p)
    p.add_argument("key_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_keys_revoke)

    p = subparser(
        verbs,
        "rotate",
        "a new secret for an API key; the old one works for a grace period",
        description="Replaces an API key by a new one with the same name and scopes. The "
        "old secret keeps working for --grace (0 ends it now), time to roll the new one out.",
    )
    add_server(p)
    p.add_argument("key_id", metavar="ID")
    p.add_argument(
        "--grace", metavar="DURATION", help="how long the old secret works, e.g. 1h (default 24h)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the new secret")
    add_json(p)
    p.set_defaults(func=cmd_keys_rotate)


def _add_audit(sub: Any) -> None:
    p = subparser(
        sub,
        "audit",
        "the audit trail: who changed what, and every refused call (admins)",
        description="Lists audit events, oldest first, newest last: every mutating call "
        "and every refused one, with who made it, with which API key, on what, and how it "
        "ended. Admins only (the server checks).",
    )
    add_server(p)
    p.add_argument("--user", help="only this user's calls (username or id)")
    p.add_argument("--since", metavar="TIME", help="from this time (UTC) or this long ago: 2h")
    p.add_argument("--until", metavar="TIME", help="before this time (UTC) or this long ago")
    p.add_argument("--resource-type", default="", help="only this kind, e.g. strategy, api_key")
    p.add_argument("--resource-id", default="", help="only this resource")
    p.add_argument("--last", type=int, default=50, help="the newest this many (0 = all)")
    add_json(p)
    p.set_defaults(func=cmd_audit)


def _add_users(sub: Any) -> None:
    users = subparser(
        sub,
        "users",
        "user accounts over gRPC, as an admin: list, show, create, update, delete",
        description="Manages the accounts of a running server over gRPC; you must be logged "
        "in as an admin. (`stratopt user create` is different: it writes a user straight "
        "into the database, to bootstrap the first admin before any server runs.)",
    )
    verbs = users.add_subparsers(dest="users_cmd", required=True, metavar="VERB")
    role_help = "admin, trader, analyst or viewer"

    p = subparser(verbs, "ls", "list users", aliases=["list"])
    add_server(p)
    p.add_argument("--role", choices=list(ROLES), help="only users with this role")
    add_json(p)
    p.set_defaults(func=cmd_users_ls)

    p = subparser(verbs, "show", "one user: role, state, last login")
    add_server(p)
    p.add_argument("name", metavar="USER", help="username or id")
    add_json(p)
    p.set_defaults(func=cmd_users_show)

    p = subparser(
        verbs,
        "create",
        "create a user (password from STRATOPT_NEW_PASSWORD or asked)",
        description="Creates a user on the server. The password comes from "
        "STRATOPT_NEW_PASSWORD, else it is asked on the terminal (twice).",
    )
    add_server(p)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=list(ROLES), help=role_help)
    p.add_argument("--display-name", default="", help="the name people see")
    p.add_argument("--email", default="")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    add_json(p)
    p.set_defaults(func=cmd_users_create)

    p = subparser(
        verbs,
        "update",
        "change a user's role, name, email, or disable/enable them",
        description="Changes only what is given. Disabling a user ends their sessions at "
        "once; enabling lets them log in again.",
    )
    add_server(p)
    p.add_argument("name", metavar="USER", help="username or id")
    p.add_argument("--role", choices=list(ROLES), help=role_help)
    p.add_argument("--display-name", help="the name people see")
    p.add_argument("--email")
    state = p.add_mutually_exclusive_group()
    state.add_argument(
        "--disable",
        dest="disabled",
        action="store_true",
        default=None,
        help="stop them logging in; ends their sessions",
    )
    state.add_argument(
        "--enable", dest="disabled", action="store_false", default=None, help="undo --disable"
    )
    add_json(p)
    p.set_defaults(func=cmd_users_update)

    p = subparser(verbs, "rm", "delete users", aliases=["delete"])
    add_server(p)
    p.add_argument("names", metavar="USER", nargs="+", help="username or id")
    add_json(p)
    p.set_defaults(func=cmd_users_rm)


# -- shared ------------------------------------------------------------------------------------


def _stub(r: Remote) -> pbg.AuthServiceStub:
    return r.stub(pbg.AuthServiceStub)


def password(prompt: str, env: str, *, confirm: bool = False) -> str:
    """A password from `env`, else typed on the terminal without echo (twice with
    `confirm`: a typo in a new password would lock its owner out). Never printed."""
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise CliError(f"no terminal to ask for the password: set {env}")
    try:
        typed = getpass.getpass(prompt)
        if typed and confirm and getpass.getpass(f"{prompt.rstrip(': ')} again: ") != typed:
            raise CliError("the two passwords differ; nothing was changed")
    except EOFError:
        raise CliError(f"no password given: set {env} or type it at the prompt") from None
    if not typed:
        raise CliError(f"no password given: set {env} or type it at the prompt")
    return typed


def duration(flag: str, text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (or ``0``) as a timedelta."""
    if text.strip() == "0":
        return timedelta(0)
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None:
        raise CliError(f"{flag} {text!r}: expected a duration such as 30m, 12h, 7d or 2w")
    return timedelta(seconds=float(m.group(1)) * UNIT_SECONDS[m.group(2)])


def time_or_duration(flag: str, text: str, *, ago: bool) -> datetime:
    """A time given either way people think of it: ISO 8601 (UTC unless it says), or a
    duration from now, into the past (`ago`, for --since) or the future (an expiry)."""
    if _DURATION.fullmatch(text.strip().lower()):
        now = datetime.now(UTC)
        return now - duration(flag, text) if ago else now + duration(flag, text)
    try:
        return utc_time(flag, text)
    except CliError:
        raise CliError(
            f"{flag} {text!r}: expected a time such as 2021-03-01 or 2021-03-01T12:00, or a "
            "duration such as 12h or 7d"
        ) from None


def user_id(r: Remote, name: str) -> str:
    """The id of the user called `name` (any case), or `name` itself when it is an id: the
    server takes ids, people type usernames."""
    if _USER_ID.fullmatch(name):
        return name
    wanted = name.strip().lower()
    req = pb.ListUsersRequest(page_size=200)
    for u in r.client.pages(_stub(r).ListUsers, req, "users"):
        if u.username.lower() == wanted:
            return str(u.id)
    raise CliError(f"no user {name!r} (`stratopt users ls` lists them)", 1)


def role_name(role: c.Role.ValueType) -> str:
    return c.Role.Name(role).removeprefix("ROLE_").lower() if role else "-"


def permission_name(permission: c.Permission.ValueType) -> str:
    return c.Permission.Name(permission).removeprefix("PERMISSION_").lower()


# -- whoami, passwd ----------------------------------------------------------------------------


def credential_source() -> str:
    """Where this command's credential came from, in the order `auth.client_for` tries."""
    if os.environ.get("STRATOPT_TOKEN", "").strip():
        return "STRATOPT_TOKEN"
    if os.environ.get("STRATOPT_API_KEY", "").strip():
        return "STRATOPT_API_KEY"
    return "the login kept by `stratopt login`"


def _signed_in(me: pb.GetCurrentUserResponse) -> str:
    if me.auth_method == "api_key":
        return f"API key {me.api_key_prefix or '?'} (from {credential_source()})"
    if me.auth_method == "jwt":
        return f"an access token (from {credential_source()})"
    return me.auth_method or "-"


def cmd_whoami(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        me = _stub(r).GetCurrentUser(pb.GetCurrentUserRequest())
    if args.json:
        o.print_json(me)
        return 0
    u = me.user
    o.show(
        o.pairs(
            [
                ("user", _user_label(u)),
                ("role", role_name(u.role)),
                ("server", args.server),
                ("signed in with", _signed_in(me)),
                ("permissions", ", ".join(permission_name(p) for p in me.permissions) or "-"),
            ]
        )
    )
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        # Who first: a dead login is reported before anyone types a password.
        who = _stub(r).GetCurrentUser(pb.GetCurrentUserRequest()).user.username
        current = password(f"current password of {who}: ", "STRATOPT_PASSWORD")
        new = password("new password: ", "STRATOPT_NEW_PASSWORD", confirm=True)
        if new == current:
            raise CliError("the new password is the current one; nothing was changed")
        req = pb.ChangePasswordRequest(current_password=current, new_password=new)
        _stub(r).ChangePassword(req)
    if args.json:
        o.print_json({"username": who, "changed": True})
    else:
        print(f"changed the password of {who}; your other login sessions have ended")
    return 0


# -- keys --------------------------------------------------------------------------------------


def _key_state(k: pb.ApiKey, now_ns: int) -> str:
    if k.revoked:
        return "revoked"
    if k.HasField("expire_time") and k.expire_time.ToNanoseconds() <= now_ns:
        return "expired"
    return "active"


def _scopes(k: pb.ApiKey, *, short: bool = False) -> str:
    """The key's permissions; `short` (a table cell) names two at most, then counts."""
    if short and len(k.scopes) > 2:
        return f"{len(k.scopes)} permissions"
    return ", ".join(permission_name(s) for s in k.scopes) or "all of the owner's"


def cmd_keys_ls(args: argparse.Namespace) -> int:
    req = pb.ListApiKeysRequest(page_size=100)
    with Remote(args.server) as r:
        if args.user:
            req.owner_id = user_id(r, args.user)
        keys = list(r.client.pages(_stub(r).ListApiKeys, req, "api_keys"))
    now_ns = int(datetime.now(UTC).timestamp() * 1e9)
    if not args.all:
        keys = [k for k in keys if _key_state(k, now_ns) == "active"]
    if args.json:
        o.print_json([o.proto_json(k) for k in keys])
        return 0
    rows = [
        [
            k.id, k.display_name, k.prefix, _key_state(k, now_ns), _scopes(k, short=True),
            o.when_field(k, "expire_time"), o.when_field(k, "last_used_time"),
        ]
        for k in keys
    ]  # fmt: skip
    columns = ["ID", "NAME", "PREFIX", "STATE", "SCOPES", "EXPIRES (UTC)", "LAST USED (UTC)"]
    o.show(o.table(columns, rows))
    return 0


def _print_secret(key: pb.ApiKey, secret: str, headline: str, extra: list[str]) -> None:
    """The one time a secret is shown: what it is, the secret, and the warning."""
    print(headline)
    o.show(
        o.pairs(
            [
                ("key", f"{key.id} ({key.prefix})"),
                ("scopes", _scopes(key)),
                (
                    "expires",
                    o.when_field(key, "expire_time") if key.HasField("expire_time") else "never",
                ),
                ("secret", secret),
            ]
        )
    )
    for line in extra:
        print(line)
    print(SHOWN_ONCE)


def cmd_keys_create(args: argparse.Namespace) -> int:
    req = pb.CreateApiKeyRequest(
        display_name=args.name, scopes=[PERMISSIONS[s] for s in args.scopes]
    )
    if args.expires:
        req.expire_time.FromDatetime(time_or_duration("--expires", args.expires, ago=False))
    with Remote(args.server) as r:
        reply = _stub(r).CreateApiKey(req)
    if args.quiet:
        print(reply.secret)
    elif args.json:
        o.print_json(reply)
    else:
        _print_secret(reply.api_key, reply.secret, f"created API key {args.name}", [])
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    revoked = []
    with Remote(args.server) as r:
        for key_id in args.key_ids:
            k = _stub(r).RevokeApiKey(pb.RevokeApiKeyRequest(key_id=key_id)).api_key
            revoked.append(k)
            if not args.json:
                print(f"revoked API key {k.id} ({k.prefix}, {k.display_name})")
    if args.json:
        o.print_json([o.proto_json(k) for k in revoked])
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    req = pb.RotateApiKeyRequest(key_id=args.key_id)
    if args.grace is not None:
        req.grace_period.FromTimedelta(duration("--grace", args.grace))
    with Remote(args.server) as r:
        reply = _stub(r).RotateApiKey(req)
    if args.quiet:
        print(reply.secret)
        return 0
    if args.json:
        o.print_json(reply)
        return 0
    ends = reply.previous_secret_expire_time
    ended = ends.ToNanoseconds() <= int(datetime.now(UTC).timestamp() * 1e9)
    old = (
        "the old secret no longer works"
        if ended
        else f"the old secret works until {o.when_field(reply, 'previous_secret_expire_time')} UTC"
    )
    headline = f"rotated API key {args.key_id}: the new key is {reply.api_key.id}"
    _print_secret(reply.api_key, reply.secret, headline, [old])
    return 0


# -- audit -------------------------------------------------------------------------------------


def _audit_cells(e: pb.AuditEvent) -> list[str]:
    """One event; the method without its service (the names do not repeat across services;
    --json keeps the full path)."""
    resource = " ".join(x for x in (e.resource_type, e.resource_id) if x) or "-"
    return [
        o.when_field(e, "time"), e.actor_username or e.actor_id or "-", e.api_key_prefix or "-",
        e.method.rsplit("/", 1)[-1], resource, e.outcome, e.detail,
    ]  # fmt: skip


def cmd_audit(args: argparse.Namespace) -> int:
    if args.last < 0:
        raise CliError("--last N must be 0 (all) or more")
    req = pb.ListAuditEventsRequest(
        page_size=min(args.last or 500, 500),
        resource_type=args.resource_type,
        resource_id=args.resource_id,
    )
    if args.since:
        req.time_range.start_time.FromDatetime(time_or_duration("--since", args.since, ago=True))
    if args.until:
        req.time_range.end_time.FromDatetime(time_or_duration("--until", args.until, ago=True))
    with Remote(args.server) as r:
        if args.user:
            req.actor_id = user_id(r, args.user)
        newest_first = r.client.pages(
            _stub(r).ListAuditEvents, req, "audit_events", limit=args.last
        )
        events = list(newest_first)[::-1]  # a log: oldest first, the newest at the bottom
    if args.json:
        o.print_json([o.proto_json(e) for e in events])
        return 0
    columns = ["TIME (UTC)", "USER", "KEY", "METHOD", "RESOURCE", "OUTCOME", "DETAIL"]
    o.show(o.table(columns, [_audit_cells(e) for e in events]))
    return 0


# -- users -------------------------------------------------------------------------------------


def _user_label(u: pb.User) -> str:
    shown = f" ({u.display_name})" if u.display_name and u.display_name != u.username else ""
    return f"{u.username}{shown}"


def _user_rows(u: pb.User) -> list[tuple[str, str]]:
    return [
        ("user", _user_label(u)),
        ("id", u.id),
        ("role", role_name(u.role)),
        ("state", "disabled" if u.disabled else "enabled"),
        ("email", u.email or "-"),
        ("created", o.when_field(u, "create_time")),
        ("updated", o.when_field(u, "update_time")),
        ("last login", o.when_field(u, "last_login_time")),
    ]


def _show_user(u: pb.User, json: bool) -> None:
    if json:
        o.print_json(u)
    else:
        o.show(o.pairs(_user_rows(u)))


def cmd_users_ls(args: argparse.Namespace) -> int:
    req = pb.ListUsersRequest(page_size=200, role=ROLES.get(args.role or "", c.ROLE_UNSPECIFIED))
    with Remote(args.server) as r:
        users = list(r.client.pages(_stub(r).ListUsers, req, "users"))
    if args.json:
        o.print_json([o.proto_json(u) for u in users])
        return 0
    rows = [
        [
            u.username, role_name(u.role), "disabled" if u.disabled else "enabled",
            u.display_name or "-", u.email or "-", o.when_field(u, "last_login_time"), u.id,
        ]
        for u in users
    ]  # fmt: skip
    columns = ["USER", "ROLE", "STATE", "NAME", "EMAIL", "LAST LOGIN (UTC)", "ID"]
    o.show(o.table(columns, rows))
    return 0


def cmd_users_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        uid = user_id(r, args.name)
        u = _stub(r).GetUser(pb.GetUserRequest(user_id=uid)).user
    _show_user(u, args.json)
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    secret = password(f"password for {args.username}: ", "STRATOPT_NEW_PASSWORD", confirm=True)
    user = pb.User(
        username=args.username,
        role=ROLES[args.role],
        display_name=args.display_name,
        email=args.email,
        disabled=args.disabled,
    )
    with Remote(args.server) as r:
        created = _stub(r).CreateUser(pb.CreateUserRequest(user=user, password=secret)).user
    if args.json:
        o.print_json(created)
    else:
        print(f"created {role_name(created.role)} {created.username} ({created.id})")
    return 0


def _changes(args: argparse.Namespace) -> tuple[pb.User, list[str]]:
    """The user message and its field mask: only the fields given, so nothing else moves."""
    user = pb.User()
    paths: list[str] = []
    if args.role:
        user.role = ROLES[args.role]
        paths.append("role")
    for field in ("display_name", "email"):
        value = getattr(args, field)
        if value is not None:
            setattr(user, field, value)
            paths.append(field)
    if args.disabled is not None:
        user.disabled = args.disabled
        paths.append("disabled")
    if not paths:
        raise CliError("nothing to change: give --role, --display-name, --email, --disable or "
                       "--enable")  # fmt: skip
    return user, paths


def cmd_users_update(args: argparse.Namespace) -> int:
    user, paths = _changes(args)
    with Remote(args.server) as r:
        user.id = user_id(r, args.name)
        req = pb.UpdateUserRequest(user=user)
        req.update_mask.paths.extend(paths)
        updated = _stub(r).UpdateUser(req).user
    _show_user(updated, args.json)
    return 0


def cmd_users_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _stub(r)
        return o.delete_each(
            "user", args.names, lambda uid: stub.DeleteUser(pb.DeleteUserRequest(user_id=uid)),
            args.json, resolve=lambda name: user_id(r, name),
        )  # fmt: skip
