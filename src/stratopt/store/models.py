"""SQLAlchemy 2 models: the one place the schema is described (Alembic migrations follow it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns aware datetimes, so SQLite and PostgreSQL agree."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ApiKey(Base):
    """One API key secret (see security/api_keys.py): rotation adds a successor row and
    points `rotated_to` at it, so each secret keeps its own prefix, expiry and audit trail."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # SHA-256 hex of the whole key; the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    rotated_to: Mapped[str | None] = mapped_column(String(36), nullable=True)


class RefreshToken(Base):
    """One refresh token of a login's family (see security/refresh_tokens.py), by hash."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    family_started_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_time_id", "time", "id"),
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    actor_username: Mapped[str] = mapped_column(String(64), default="")
    api_key_prefix: Mapped[str] = mapped_column(String(32), default="")
    method: Mapped[str] = mapped_column(String(200))
    resource_type: Mapped[str] = mapped_column(String(64), default="")
    resource_id: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(32))
    peer: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class RateBucket(Base):
    """A token bucket shared by all replicas; used only when the database is PostgreSQL
    (store/security_repos.py holds the single-statement update)."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(index=True)


class Strategy(Base):
    __tablename__ = "strategies"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_strategies_owner_name"),
        Index("ix_strategies_owner_created", "owner_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Lower-cased name: the uniqueness and search key, so "My SMA" and "my sma" collide.
    name_key: Mapped[str] = mapped_column(String(100), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    strategy_type: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    risk_level: Mapped[str] = mapped_column(String(16), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    symbols: Mapped[list[Any]] = mapped_column(default=list)
    timeframe: Mapped[str] = mapped_column(String(16), default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    execution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ensemble_members: Mapped[list[Any]] = mapped_column(default=list)
    ensemble_method: Mapped[str] = mapped_column(String(32), default="")
    alert_rules: Mapped[list[Any]] = mapped_column(default=list)
    run_state: Mapped[str] = mapped_column(String(16), default="stopped")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StrategyHistory(Base):
    __tablename__ = "strategy_history"
    __table_args__ = (Index("ix_strategy_history_strategy_time", "strategy_id", "time", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # Not a foreign key: history outlives the strategy it describes (deletions are recorded).
    strategy_id: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(32), default="")
    actor_username: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer)
    changed_fields: Mapped[list[Any]] = mapped_column(default=list)
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StrategyShare(Base):
    __tablename__ = "strategy_shares"
    strategy_id: Mapped[str] = mapped_column(
        ForeignKey("strategies.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    access: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_owner_created", "owner_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # Sample datasets belong to nobody ("") and every reader can see them.
    owner_id: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    timeframe: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16))
    bar_count: Mapped[int] = mapped_column(BigInteger, default=0)
    start_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    end_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Backtest(Base):
    __tablename__ = "backtests"
    __table_args__ = (Index("ix_backtests_owner_created", "owner_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(String(32))
    strategy_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    strategy_type: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    start_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    end_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    timeframe: Mapped[str] = mapped_column(String(16), default="")
    execution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Downsampled curve [[ts_ns, equity, drawdown], ...]; the full series lives in the data dir.
    equity_curve: Mapped[list[Any]] = mapped_column(default=list)
    monte_carlo: Mapped[dict[str, Any]] = mapped_column(default=dict)
    walk_forward: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trade_count: Mapped[int] = mapped_column(BigInteger, default=0)
    bar_count: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- exports ---------------------------------------------------------------------------------


class ExportFile(Base):
    __tablename__ = "export_files"
    __table_args__ = (
        Index("ix_export_files_owner_created", "owner_id", "created_at", "id"),
        Index("ix_export_files_expires", "expires_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the file and its row are swept (services/exports.py); past it the export is gone
    # for every reader even before the sweeper runs.
    expires_at: Mapped[datetime] = mapped_column()


# --- Optimization jobs (jobs/) -----------------------------------------------------------
# A job is a durable unit of background work; its Optuna study lives in Optuna's own tables
# (see optimize/rdb.py). `job_workers` holds one row per worker taking part in a job: its
# heartbeat and the trials it has reserved but not yet written.


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "priority", "created_at"),
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32), default="optimization")
    owner_id: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    state: Mapped[str] = mapped_column(String(16))
    # 1 low .. 4 critical, so "ORDER BY priority DESC" claims the most urgent first.
    priority: Mapped[int] = mapped_column(Integer, default=2)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    shareable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # "optimizing" while trials are added, "finalizing" once one worker validates the result.
    phase: Mapped[str] = mapped_column(String(16), default="")
    lease_owner: Mapped[str] = mapped_column(String(128), default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    study_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    trials_completed: Mapped[int] = mapped_column(Integer, default=0)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    best_trial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    throughput: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Bumped by one for every event (each trial, each state change): watchers compare it.
    progress_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_trial: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")


class JobWorker(Base):
    __tablename__ = "job_workers"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- live (paper trading) ----------------------------------------------------------------


class Feed(Base):
    """A source of bars that running strategies share: pushed by a client, or a replay."""

    __tablename__ = "feeds"
    __table_args__ = (Index("ix_feeds_owner_created", "owner_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    symbols: Mapped[list[Any]] = mapped_column(default=list)
    timeframe: Mapped[str] = mapped_column(String(16), default="")
    dataset_id: Mapped[str] = mapped_column(String(128), default="")
    start_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    bars_per_second: Mapped[float] = mapped_column(Float, default=10.0)
    bars_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    bars_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    last_bar_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedBar(Base):
    """A bar accepted by a push feed: the history strategies warm up from and resume over."""

    __tablename__ = "feed_bars"
    feed_id: Mapped[str] = mapped_column(
        ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)


class LiveRun(Base):
    """One paper-trading run of a strategy: what it trades and the state it resumes from.

    `state` is written in the same transaction as the events of the bars it includes, so
    after a crash a run resumes at `last_bar_ts` with exactly the events recorded so far.
    """

    __tablename__ = "live_runs"
    __table_args__ = (Index("ix_live_runs_strategy_started", "strategy_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    strategy_id: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[str] = mapped_column(String(32), index=True)
    feed_id: Mapped[str] = mapped_column(String(32), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    # running, stopped or failed.
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bars_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    last_bar_ts: Mapped[int] = mapped_column(BigInteger, default=0)
    equity: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The server that runs it (see live.manager: replicas claim runs whose runner went
    # silent), and when that server last said it still does.
    runner: Mapped[str] = mapped_column(String(200), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LiveEvent(Base):
    """A signal, fill or alert of a strategy, numbered per strategy and kind from 1."""

    __tablename__ = "live_events"
    __table_args__ = (
        UniqueConstraint("strategy_id", "kind", "sequence", name="uq_live_events_seq"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """A user's notification, numbered per user from 1 so streams can resume."""

    __tablename__ = "notifications"
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[str] = mapped_column(String(32), default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """A URL that receives its owner's alerts, signed with `secret` (HMAC-SHA256)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    kinds: Mapped[list[Any]] = mapped_column(default=list)
    delivered_count: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- User strategy types and indicators (services/user_definitions.py) ----------------------


class UserDefinition(Base):
    """A user's strategy type or indicator in the rule language (docs/rules.md).

    `indicators` pins the source of every user indicator the definition calls, as it was
    when the definition was last saved ({name: source}): a definition compiles from its row
    alone, so jobs and live runs are reproducible and an indicator edit changes nothing
    already saved until its users are saved again.
    """

    __tablename__ = "user_definitions"
    __table_args__ = (
        UniqueConstraint("owner_id", "kind", "name", name="uq_user_definitions_owner_kind_name"),
        Index("ix_user_definitions_owner_created", "owner_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text)
    indicators: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserDefinitionShare(Base):
    """Another user may read and use the definition (never change it)."""

    __tablename__ = "user_definition_shares"
    definition_id: Mapped[str] = mapped_column(
        ForeignKey("user_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Stream leases (store/stream_leases.py) ------------------------------------------------


class StreamLease(Base):
    """One open server stream, so the per-user stream cap holds across processes/replicas.

    A process refreshes `heartbeat_at` of its own leases; a lease whose process died goes
    stale and stops counting after the lease TTL, then the next opener of that user sweeps it.
    """

    __tablename__ = "stream_leases"
    __table_args__ = (Index("ix_stream_leases_user", "user_id", "heartbeat_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(32))
    holder: Mapped[str] = mapped_column(String(64), index=True)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeGeneration(Base):
    """A number raised by every change to a group of tables, so that a process can tell in
    one read whether what it keeps in memory from them still holds (store/read_cache.py).

    Groups: "strategies" (strategies and their shares, migration 0008) and
    "user_definitions" (definitions and their shares, migration 0009). On SQLite, triggers
    raise it in the same transaction as the change, so no writer, in any process, can
    forget to. PostgreSQL has the rows but no triggers: one counter row would make every
    write of a group wait for the others, and nothing caches there by generation."""

    __tablename__ = "change_generations"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
