"""The `stratopt` command: serve, migrate, user management (more subcommands join later)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from stratopt import __version__
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
        log_json=False if getattr(args, "text_logs", False) else None,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from stratopt.server.app import serve
    from stratopt.server.bootstrap import BootstrapError

    s = _settings(args)
    logs.setup(s.log_level, s.log_json)
    try:
        asyncio.run(serve(s))
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
    from stratopt.security.roles import parse_role
    from stratopt.server.bootstrap import BootstrapError, create_user
    from stratopt.store import migrate
    from stratopt.store.db import Database

    s = _settings(args)
    password = os.environ.get("STRATOPT_NEW_PASSWORD") or getpass.getpass("password: ")

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


def _param_value(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def cmd_backtest(args: argparse.Namespace) -> int:
    """A local backtest of a CSV/Parquet file: the same engine the server runs."""
    import json

    from stratopt import engine
    from stratopt.data.errors import DataError
    from stratopt.data.importers import import_bars
    from stratopt.data.resample import resample
    from stratopt.strategies import registry

    params: dict[str, int | float | str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"stratopt: -p expects name=value, got {item!r}", file=sys.stderr)
            return 2
        params[name.strip()] = _param_value(value.strip())
    try:
        stype = registry.get(args.strategy)
    except KeyError:
        print(
            f"stratopt: unknown strategy {args.strategy!r}; one of {', '.join(registry.names())}",
            file=sys.stderr,
        )
        return 2
    try:
        bars = import_bars(Path(args.data))
        if args.timeframe:
            bars = resample(bars, args.timeframe)
    except (OSError, DataError) as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    given = {
        "commission": args.commission,
        "slippage": args.slippage,
        "position_size": args.size,
        "direction": args.direction,
        "stop_loss": args.stop_loss,
        "take_profit": args.take_profit,
        "trailing_stop": args.trailing_stop,
        "fill_on_close": args.fill_on_close,
        "initial_cash": args.cash,
    }
    try:
        options = engine.ExecutionOptions.from_dict(
            {k: v for k, v in given.items() if v is not None}
        )
        result = engine.backtest(bars, stype, params, options)
    except ValueError as e:
        print(f"stratopt: {e}", file=sys.stderr)
        return 2
    if args.json:
        out = {
            "strategy": stype.name,
            "parameters": result.params,
            "bars": len(bars),
            "metrics": result.metrics,
            "final_equity": float(result.equity.iloc[-1]),
        }
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(f"{stype.display_name} {result.params} on {len(bars):,} bars")
    for name, value in result.metrics.items():
        print(f"  {name:<24} {value:,.6g}")
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
        asyncio.run(run_workers(db, store, args.concurrency, name=args.name or "", config=config))
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from stratopt.client import optimize as optimize_client

    return optimize_client.run(args)


def _server(args: argparse.Namespace) -> str:
    return str(args.server or os.environ.get("STRATOPT_SERVER") or "127.0.0.1:50051")


def cmd_login(args: argparse.Namespace) -> int:
    import grpc

    from stratopt.client import auth as client_auth

    server = _server(args)
    username = args.username or input("username: ")
    password = os.environ.get("STRATOPT_PASSWORD") or getpass.getpass("password: ")
    try:
        name = client_auth.login(server, username, password)
    except grpc.RpcError as e:
        print(f"stratopt: {e.details()}", file=sys.stderr)
        return 1
    print(f"logged in to {server} as {name}; credentials in {client_auth.config_dir()}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from stratopt.client import auth as client_auth

    server = _server(args)
    done = client_auth.logout(server)
    print(f"logged out of {server}" if done else f"not logged in to {server}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data folder (env STRATOPT_DATA_DIR, default ./var)")
    p.add_argument("--database-url", help="SQLAlchemy URL (env STRATOPT_DATABASE_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratopt", description="stratopt service and tools")
    parser.add_argument("--version", action="version", version=f"stratopt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gRPC server")
    _common(p)
    p.add_argument(
        "--addr", help="listen address (env STRATOPT_GRPC_ADDR, default 127.0.0.1:50051)"
    )
    p.add_argument("--dev", action="store_true", help="development mode: demo users, dev secret")
    p.add_argument(
        "--gateway", action="store_true", help="also start the Envoy REST/gRPC-Web gateway"
    )
    p.add_argument("--gateway-addr", help="gateway listen address (default 127.0.0.1:8080)")
    p.add_argument("--workers", type=int, help="optimization workers in this process")
    p.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("backtest", help="backtest a strategy on a CSV/Parquet file, locally")
    p.add_argument("--data", required=True, help="CSV or Parquet OHLCV file")
    p.add_argument("--strategy", required=True, help="strategy type, e.g. sma_crossover")
    p.add_argument("-p", "--param", action="append", default=[], help="name=value (repeat)")
    p.add_argument("--timeframe", help="resample to this coarser timeframe first")
    # Omitted options take the engine's defaults (engine/options.py, the one place they live).
    p.add_argument("--cash", type=float, help="initial cash")
    p.add_argument("--commission", type=float, help="fraction per side")
    p.add_argument("--slippage", type=float, help="fraction against the trader")
    p.add_argument("--size", type=float, help="fraction of equity per position")
    p.add_argument("--direction", choices=["long", "short", "both"])
    p.add_argument("--stop-loss", type=float)
    p.add_argument("--take-profit", type=float)
    p.add_argument("--trailing-stop", type=float)
    p.add_argument("--fill-on-close", action="store_true", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("worker", help="run optimization jobs from the database (scale-out)")
    _common(p)
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once (default 1)")
    p.add_argument("--name", help="worker name in job records (default host:pid)")
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=10.0,
        help="silence after which a worker's jobs are taken over (default 10)",
    )
    p.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("optimize", help="start an optimization job on a server and follow it")
    from stratopt.client.optimize import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("login", help="log in to a server and keep the session for client commands")
    p.add_argument("--server", help="server address (env STRATOPT_SERVER, default 127.0.0.1:50051)")
    p.add_argument("--username", help="username (prompted when missing)")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="revoke and forget the stored session")
    p.add_argument("--server", help="server address (env STRATOPT_SERVER, default 127.0.0.1:50051)")
    p.set_defaults(func=cmd_logout)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    _common(p)
    p.set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="user_cmd", required=True
    )
    p = user.add_parser(
        "create", help="create a user (password from STRATOPT_NEW_PASSWORD or prompt)"
    )
    _common(p)
    p.add_argument("username")
    p.add_argument("--role", default="trader", help="admin, trader, analyst or viewer")
    p.set_defaults(func=cmd_user_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
