"""Settings for every entry point, read from flags and ``STRATOPT_*`` environment variables.

One frozen object is built at start and passed down, so nothing reads the environment later
and tests can build servers with exactly the settings they need.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    grpc_addr: str = "127.0.0.1:50051"
    data_dir: Path = Path("var")
    database_url: str = ""
    # Development mode seeds demo users and sample data and allows a generated JWT secret.
    dev: bool = False
    jwt_secret: str = field(default="", repr=False)
    jwt_algorithm: str = "HS256"
    jwt_private_key_file: str = ""
    jwt_public_key_file: str = ""
    # Key rotation: keys that still verify (not sign), comma-separated, until the optional
    # ISO 8601 time (docs/security.md, "Rotating the signing key").
    jwt_previous_secrets: str = field(default="", repr=False)
    jwt_previous_public_key_files: str = ""
    jwt_previous_keys_until: str = ""
    admin_user: str = ""
    admin_password: str = field(default="", repr=False)
    gateway: bool = False
    gateway_addr: str = "127.0.0.1:8080"
    gateway_admin_port: int = 0
    # Envoy worker threads; 0 = one per four cores, at least one (server/gateway.py says why).
    gateway_workers: int = 0
    # The web console's build served at / by the gateway; empty = the checkout's web/dist.
    web_dir: str = ""
    # Prometheus /metrics on host:port; empty = no metrics endpoint.
    metrics_addr: str = ""
    workers: int = 1
    # Server processes sharing the listen port (server/processes.py); 1 = this process only.
    processes: int = 1
    # The server's event loop: uvloop, or asyncio's own (server/event_loop.py says why).
    event_loop: str = "uvloop"
    sample_data: bool = True
    log_level: str = "INFO"
    log_json: bool = True
    rate_limits: bool = True
    max_streams_per_user: int = 16
    upload_memory_mb: int = 1024
    # Live events (signals, fills, alerts) queued per stream subscriber before the oldest
    # are dropped (and counted in the stream's `dropped`).
    live_queue_size: int = 1024
    # Names this server as the runner of its paper-trading runs; a restart with the same id
    # resumes them at once (default: host and data folder). Replicas need distinct ids.
    instance_id: str = ""
    # Per-category overrides such as "20/s burst 40" or "10/min burst 5"; empty keeps the
    # production default documented in docs/security.md.
    rate_limit_general: str = ""
    rate_limit_backtest: str = ""
    rate_limit_optimization: str = ""
    rate_limit_export: str = ""
    rate_limit_data: str = ""
    rate_limit_auth: str = ""
    rate_limit_auth_per_ip: str = ""
    rate_limit_auth_per_user: str = ""
    # "auto" shares buckets through PostgreSQL when the database is PostgreSQL; "memory"
    # keeps them per process.
    rate_limit_backend: str = "auto"
    # scrypt cost as log2(N); 17 (128 MiB, ~0.3 s) in production. Tests lower it.
    scrypt_log2_n: int = 17
    # How long a user's role/disabled flag and a session's logout may be cached per replica.
    auth_cache_seconds: float = 2.0
    # Lifetime of an access token (15 minutes); clients refresh it before it ends.
    access_token_seconds: int = 900
    # Behind a trusted proxy (the Envoy gateway) take the client IP from x-forwarded-for.
    trust_forwarded_for: bool = False
    # Audit entries for refused calls, per caller (or client IP) and minute; mutations are
    # always recorded.
    audit_refusals_per_minute: int = 60
    precompile: bool = True
    # How often the database is probed; health turns NOT_SERVING when it stops answering and
    # SERVING again when it is back (without a restart).
    health_interval_seconds: float = 2.0
    # Export files (Pine Script, reports) are deleted this long after they are made, unless
    # the request asks for another lifetime (at most EXPORT_MAX_TTL, services/exports.py).
    export_ttl_hours: float = 24.0
    # How often expired exports are swept from the disk and the database.
    export_sweep_seconds: float = 60.0

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'stratopt.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_TRUE = {"1", "true", "yes", "on"}


def _as_bool(value: str) -> bool:
    return value.strip().lower() in _TRUE


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Builds settings from ``STRATOPT_*`` variables; unknown variables are ignored."""
    env = os.environ if env is None else env
    s = Settings()
    conv: dict[str, Any] = {}
    for name, f in Settings.__dataclass_fields__.items():
        raw = env.get(f"STRATOPT_{name.upper()}")
        if raw is None:
            continue
        default = getattr(s, name)
        if isinstance(default, bool):
            conv[name] = _as_bool(raw)
        elif isinstance(default, int):
            conv[name] = int(raw)
        elif isinstance(default, float):
            conv[name] = float(raw)
        elif isinstance(default, Path):
            conv[name] = Path(raw)
        else:
            conv[name] = raw
        del f
    return replace(s, **conv)


# One line per setting for `stratopt --help` (client/cli.py lists every field of Settings as
# STRATOPT_<NAME> with its default; a field missing here is listed without a description).
DESCRIPTIONS: Mapping[str, str] = {
    "grpc_addr": "gRPC listen address",
    "data_dir": "data folder: datasets, exports, the SQLite file",
    "database_url": "SQLAlchemy URL (default: a SQLite file in the data folder)",
    "dev": "development mode: demo users, sample data, a generated JWT secret",
    "jwt_secret": "HS256 signing secret, 32+ bytes (required outside --dev)",
    "jwt_algorithm": "HS256, RS256 or ES256",
    "jwt_private_key_file": "PEM private key for RS256/ES256",
    "jwt_public_key_file": "PEM public key for RS256/ES256",
    "jwt_previous_secrets": "old HS256 secrets that still verify, comma-separated",
    "jwt_previous_public_key_files": "old RS256/ES256 public key files, comma-separated",
    "jwt_previous_keys_until": "ISO 8601 time after which the previous keys are refused",
    "admin_user": "first admin, created at the first start",
    "admin_password": "the first admin's password",
    "gateway": "also start the Envoy REST/gRPC-Web gateway",
    "gateway_addr": "gateway listen address",
    "gateway_admin_port": "Envoy admin port (0 = none)",
    "gateway_workers": "Envoy worker threads (0 = one per four cores, at least one)",
    "web_dir": "the web console's build served at / by the gateway (default: web/dist)",
    "metrics_addr": "Prometheus /metrics listen address, host:port (empty = off)",
    "workers": "optimization workers in the server process",
    "processes": "server processes sharing the port (SO_REUSEPORT); the gateway balances them",
    "event_loop": "uvloop (faster) or asyncio",
    "sample_data": "create the SAMPLE-* datasets at the first start",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_json": "structured JSON logs on stderr",
    "rate_limits": "per-user rate limits",
    "max_streams_per_user": "open server streams per user (0 = no cap)",
    "upload_memory_mb": "memory all uploads in progress may hold together",
    "live_queue_size": "live events queued per stream subscriber",
    "instance_id": "this server's name as the runner of paper trades (default host:data dir)",
    "rate_limit_general": "e.g. '20/s burst 40' (docs/security.md)",
    "rate_limit_backtest": "backtest calls",
    "rate_limit_optimization": "optimization calls",
    "rate_limit_export": "export calls",
    "rate_limit_data": "data calls",
    "rate_limit_auth": "logins per client IP and username",
    "rate_limit_auth_per_ip": "logins per client IP",
    "rate_limit_auth_per_user": "logins per username from all clients",
    "rate_limit_backend": "auto (PostgreSQL when used) or memory",
    "scrypt_log2_n": "password hashing cost, log2(N)",
    "auth_cache_seconds": "how long roles and logouts may be cached",
    "access_token_seconds": "access token lifetime (a login's refresh token lasts longer)",
    "trust_forwarded_for": "take the client IP from x-forwarded-for (behind Envoy)",
    "audit_refusals_per_minute": "audit entries for refused calls per caller and minute",
    "precompile": "compile the numba kernels at start",
    "health_interval_seconds": "seconds between database health probes",
    "export_ttl_hours": "hours an export file is kept unless its request says otherwise",
    "export_sweep_seconds": "how often expired export files are deleted",
}


def default_text(name: str) -> str:
    """A setting's default as an operator writes it in the environment."""
    f = Settings.__dataclass_fields__[name]
    default = getattr(Settings(), name)
    if f.repr is False:
        return "(secret)"
    if name == "database_url":
        return ""  # its description says what the default is
    if isinstance(default, bool):
        return "1" if default else "0"
    return str(default)


def reference_markdown() -> str:
    """The configuration reference table of docs/operations.md (a test keeps it in sync)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name in Settings.__dataclass_fields__:
        default = default_text(name)
        shown = f"`{default}`" if default else ""
        lines.append(f"| `STRATOPT_{name.upper()}` | {shown} | {DESCRIPTIONS.get(name, '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
