"""The `stratopt` command: the server (serve, worker, migrate, user) and the client commands.

The client commands live beside this module, one per concern: datasets.py, strategies.py
(and strategy_*.py), rules.py, backtest.py, optimize.py, jobs.py, live.py, feeds.py,
exports.py, stored.py (stored backtests and export files), notify.py (overview,
notifications, webhooks), account.py (whoami, passwd, keys, audit, users), completion.py.
output.py formats, remote.py connects, args.py parses the shared options. README "The
command line" shows them in use.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from stratopt import __version__
from stratopt.client.args import HelpFormatter, subparser
from stratopt.client.output import CliError
from stratopt.client.remote import add_server
from stratopt.server import logs
from stratopt.server import settings as config


def _settings(args: argparse.Namespace) -> config.Settings:
    s = config.from_env()
    return s.with_overrides(
        grpc_addr=getattr(args, "addr", None),
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        database_url=getattr(args, "database_url", None),
        dev=True if getattr(args, "dev", False) else None,
        gateway=True if getattr(args, "gateway", False) else None,
        gateway_addr=getattr(args, "gateway_addr", None),
        workers=getattr(args, "workers", None),
        processes=getattr(args, "processes", None),
        log_json=False if getattr(args, "text_logs", False) else None,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from stratopt.server import event_loop
    from stratopt.server.app import serve
    from stratopt.server.bootstrap import BootstrapError

    s = _settings(args)
    logs.setup(s.log_level, s.log_json)
    try:
        event_loop.run(serve(s), s.event_loop)
    except BootstrapError as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from stratopt.store import migrate
    from stratopt.store.db import Database

    s = _settings(args)
    logs.setup(s.log_level, s.log_json)
    s.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        db = Database(s.resolved_database_url)
        await migrate.upgrade(db)
        await db.dispose()

    asyncio.run(run())
    print("database is at the newest schema")
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    from stratopt.client.account import password as ask_password
    from stratopt.security.roles import parse_role
    from stratopt.server.bootstrap import BootstrapError, create_user
    from stratopt.store import migrate
    from stratopt.store.db import Database

    s = _settings(args)
    password = ask_password("password: ", "STRATOPT_NEW_PASSWORD", confirm=True)

    async def run() -> None:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(s.resolved_database_url)
        await migrate.upgrade(db)
        try:
            await create_user(db, args.username, password, parse_role(args.role))
        finally:
            await db.dispose()

    try:
        asyncio.run(run())
    except (BootstrapError, ValueError) as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    print(f"created {args.role} {args.username}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import contextlib

    from stratopt.data.storage import DatasetStore
    from stratopt.jobs.worker import WorkerConfig
    from stratopt.server.jobs_assembly import run_workers
    from stratopt.store.db import Database

    s = _settings(args)
    logs.setup(s.log_level, s.log_json)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    config = WorkerConfig(lease_s=args.lease_seconds)
    db = Database(s.resolved_database_url)
    store = DatasetStore(s.data_dir / "datasets")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_workers(
                db,
                store,
                args.concurrency,
                name=args.name or "",
                config=config,
                allow_private_webhooks=s.dev,
            )
        )
    return 0


def _ask(prompt: str, flag: str) -> str:
    if not sys.stdin.isatty():
        raise CliError(f"no terminal to ask for it: pass {flag}")
    try:
        return input(prompt).strip()
    except EOFError:
        raise CliError(f"no answer: pass {flag}") from None


def cmd_optimize(args: argparse.Namespace) -> int:
    from stratopt.client import optimize as optimize_client

    return optimize_client.run(args)


def cmd_login(args: argparse.Namespace) -> int:
    from stratopt.client import auth as client_auth
    from stratopt.client.account import password as ask_password

    username = args.username or _ask("username: ", "--username")
    password = ask_password("password: ", "STRATOPT_PASSWORD")
    name = client_auth.login(args.server, username, password)
    print(f"logged in to {args.server} as {name}; credentials in {client_auth.config_dir()}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from stratopt.client import auth as client_auth

    done = client_auth.logout(args.server)
    print(f"logged out of {args.server}" if done else f"not logged in to {args.server}")
    return 0


# -- the parser -------------------------------------------------------------------------------

# Variables the client commands read (the server's come from server/settings.py).
CLIENT_ENV = {
    "STRATOPT_SERVER": "server address for client commands",
    "STRATOPT_TOKEN": "access token for client commands (instead of `stratopt login`)",
    "STRATOPT_API_KEY": "API key for client commands (instead of `stratopt login`)",
    "STRATOPT_PASSWORD": "password for `stratopt login` without a prompt",
    "STRATOPT_NEW_PASSWORD": "the new password for `user create`, `users create` and `passwd` "
    "without a prompt",
}


def env_epilog() -> str:
    """Every STRATOPT_* variable: the client's, then the server's from the Settings class."""
    import textwrap

    from stratopt.client.remote import DEFAULT_SERVER

    client = [
        (name, DEFAULT_SERVER if name == "STRATOPT_SERVER" else "", text)
        for name, text in CLIENT_ENV.items()
    ]
    server = [
        (
            f"STRATOPT_{f.name.upper()}",
            config.default_text(f.name),
            config.DESCRIPTIONS.get(f.name, ""),
        )
        for f in fields(config.Settings)
    ]
    rows = [(f"{n}={d}" if d else n, text) for n, d, text in client + server]
    width = min(max(len(left) for left, _ in rows), 38) + 2
    lines = ["environment variables (=default; flags override them):"]
    for i, (left, text) in enumerate(rows):
        if i == 0:
            lines.append("  client commands:")
        elif i == len(client):
            lines.append("  the server (serve, worker, migrate, user):")
        head = f"    {left:<{width}}" if len(left) < width else f"    {left}\n{' ' * (width + 4)}"
        body = textwrap.wrap(text, 100 - width - 4) or [""]
        lines.append(head + body[0])
        lines += [" " * (width + 4) + more for more in body[1:]]
    return "\n".join(lines)


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data folder (env STRATOPT_DATA_DIR, default ./var)")
    p.add_argument(
        "--database-url",
        help="SQLAlchemy URL (env STRATOPT_DATABASE_URL, default a SQLite file in the data folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    from stratopt.client import (
        account,
        backtest,
        completion,
        datasets,
        exports,
        feeds,
        jobs,
        live,
        notify,
        rules,
        stored,
        strategies,
    )
    from stratopt.client.optimize import add_arguments as optimize_arguments

    parser = argparse.ArgumentParser(
        prog="stratopt",
        description="stratopt: trading-strategy research over gRPC. Run a server (serve), "
        "then log in and use the client commands; `stratopt COMMAND --help` for each.",
        epilog=env_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stratopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = subparser(sub, "serve", "run the gRPC server")
    p.epilog = env_epilog()
    _server_options(p)
    p.add_argument(
        "--addr", help="listen address (env STRATOPT_GRPC_ADDR, default 127.0.0.1:50051)"
    )
    p.add_argument("--dev", action="store_true", help="development mode: demo users, dev secret")
    p.add_argument(
        "--gateway", action="store_true", help="also start the Envoy REST/gRPC-Web gateway"
    )
    p.add_argument("--gateway-addr", help="gateway listen address (default 127.0.0.1:8080)")
    p.add_argument("--workers", type=int, help="optimization workers in this process (default 1)")
    p.add_argument(
        "--processes",
        type=int,
        help="server processes sharing the port, each with its own workers (default 1)",
    )
    p.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    p.set_defaults(func=cmd_serve)

    p = subparser(sub, "login", "log in to a server and keep the session for client commands")
    add_server(p)
    p.add_argument("--username", help="username (asked when missing)")
    p.epilog = "The password comes from STRATOPT_PASSWORD, else it is asked on the terminal."
    p.set_defaults(func=cmd_login)

    p = subparser(sub, "logout", "revoke and forget the stored session")
    add_server(p)
    p.set_defaults(func=cmd_logout)

    datasets.add_commands(sub)
    strategies.add_commands(sub)
    rules.add_commands(sub)
    backtest.add_command(sub)

    p = subparser(
        sub,
        "optimize",
        "start an optimization job on a server, follow it, show the results",
        description="Starts an Optuna study as a job on the server, draws its progress and "
        "ends with a results report: best trials, in-sample vs out-of-sample, walk-forward "
        "windows, Pareto front and parameter importances. Ctrl-C detaches; the job keeps "
        "running (`stratopt jobs watch JOB`).",
    )
    optimize_arguments(p)
    p.set_defaults(func=cmd_optimize)

    jobs.add_commands(sub)
    live.add_commands(sub)
    notify.add_commands(sub)
    feeds.add_commands(sub)
    exports.add_commands(sub)
    stored.add_commands(sub)
    account.add_commands(sub)

    p = subparser(sub, "worker", "run optimization jobs from the database (scale-out)")
    p.epilog = env_epilog()
    _server_options(p)
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    p.add_argument("--name", help="worker name in job records (default host:pid)")
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=10.0,
        help="silence after which a worker's jobs are taken over",
    )
    p.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    p.set_defaults(func=cmd_worker)

    p = subparser(sub, "migrate", "bring the database schema up to date")
    _server_options(p)
    p.set_defaults(func=cmd_migrate)

    user = subparser(sub, "user", "manage users (on the database, not over gRPC)")
    verbs = user.add_subparsers(dest="user_cmd", required=True, metavar="VERB")
    p = subparser(verbs, "create", "create a user (password from STRATOPT_NEW_PASSWORD or asked)")
    _server_options(p)
    p.add_argument("username")
    p.add_argument("--role", default="trader", help="admin, trader, analyst or viewer")
    p.set_defaults(func=cmd_user_create)

    completion.add_command(sub, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import grpc

    from stratopt.client.remote import describe_rpc_error
    from stratopt.client.session import AuthenticationRequired

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return e.code
    except AuthenticationRequired as e:  # LoginRequired, or a session revoked mid-command
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        print(f"stratopt: {describe_rpc_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stratopt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `stratopt ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
