"""The durable side of a study: Optuna's RDB storage, next to stratopt's own tables.

Where the studies live:

* PostgreSQL: the same database, in a schema of their own (`optuna`), reached with the
  synchronous psycopg driver. A separate schema is needed because Optuna keeps its schema
  version in a table named `alembic_version`, the same name stratopt's migrations use.
* SQLite: a sibling file (`stratopt.db` -> `stratopt.optuna.db`), for the same reason.

Either way the studies are ordinary Optuna studies: `optuna-dashboard` or `optuna.load_study`
can open them (study name `stratopt-job-<job id>`).

Completed trials are written a batch at a time in one transaction with bulk inserts into
Optuna's tables (`write_trials`): Optuna's own `add_trial` costs 5 ms per trial on SQLite and
18 ms on PostgreSQL in ORM round trips, the bulk path about 0.3 ms. The study row is locked
first, exactly as Optuna does when it numbers a trial, so trial numbers stay gap-free and
unique with any number of writers, and trial ids grow in commit order (which `read_trials`
relies on to pick up only what is new).

Optuna's table models and `_get_trials` are private API, reached through `optuna_private`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import and_, create_engine, event, func, insert, or_, select, text, update
from sqlalchemy.engine import URL, Connection, make_url

from stratopt.optimize import optuna_private
from stratopt.optimize.analysis import best_trial, feasible, study_directions

log = logging.getLogger("stratopt.optimize.rdb")

OPTUNA_SCHEMA = "optuna"
STUDY_PREFIX = "stratopt-job-"
_INIT_LOCK_KEY = 0x5AF0_0F7A
TrialOrder = Literal["number", "value", "value desc"]

_TABLES = optuna_private.trial_tables()
_T = _TABLES.trials
_P = _TABLES.params
_V = _TABLES.values
_U = _TABLES.user_attrs
_S = _TABLES.system_attrs
_STUDIES = _TABLES.studies


def study_name(job_id: str) -> str:
    return f"{STUDY_PREFIX}{job_id}"


@dataclass(frozen=True)
class Target:
    """Where Optuna's tables live for an application database URL."""

    url: str
    engine_kwargs: dict[str, Any]
    backend: str

    @property
    def display(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


def target_for(app_url: str) -> Target:
    """Derives the Optuna storage from stratopt's async database URL."""
    url = make_url(app_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return Target(_sqlite_sibling(url), {"connect_args": {"timeout": 30}}, "sqlite")
    if backend == "postgresql":
        sync = url.set(drivername="postgresql+psycopg")
        kwargs = {
            "connect_args": {"options": f"-c search_path={OPTUNA_SCHEMA}"},
            "pool_pre_ping": True,
            "pool_size": 4,
        }
        return Target(sync.render_as_string(hide_password=False), kwargs, "postgresql")
    raise ValueError(f"unsupported database for optimization studies: {backend}")


def _sqlite_sibling(url: URL) -> str:
    db = url.database or ""
    if not db or db == ":memory:":
        raise ValueError("optimization studies need a file database, not an in-memory one")
    path = Path(db)
    sibling = path.with_name(f"{path.stem}.optuna{path.suffix or '.db'}")
    return f"sqlite:///{sibling}"


class StudyStorage:
    """Opens Optuna's storage once per process; every method is blocking (call in a thread)."""

    def __init__(self, app_url: str) -> None:
        self.target = target_for(app_url)
        self._storage: RDBStorage | None = None
        self._lock = threading.Lock()

    @property
    def storage(self) -> RDBStorage:
        with self._lock:
            if self._storage is None:
                self._storage = self._open()
            return self._storage

    def _open(self) -> RDBStorage:
        started = time.perf_counter()
        storage = self._open_sqlite() if self.target.backend == "sqlite" else self._open_postgres()
        log.info(
            "optuna storage ready",
            extra={
                "storage": self.target.display,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return storage

    def _open_sqlite(self) -> RDBStorage:
        path = make_url(self.target.url).database
        assert path is not None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=30) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        for attempt in range(5):
            try:
                storage = RDBStorage(self.target.url, engine_kwargs=dict(self.target.engine_kwargs))
                break
            except Exception:  # two processes creating the tables at once: retry
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()
        return storage

    def _open_postgres(self) -> RDBStorage:
        engine = create_engine(self.target.url, **self.target.engine_kwargs)
        try:
            with engine.connect() as conn:
                # Serializes table creation across processes: Optuna's create_all races.
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _INIT_LOCK_KEY})
                try:
                    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
                    conn.commit()
                    return RDBStorage(
                        self.target.url, engine_kwargs=dict(self.target.engine_kwargs)
                    )
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _INIT_LOCK_KEY})
                    conn.commit()
        finally:
            engine.dispose()

    def close(self) -> None:
        with self._lock:
            if self._storage is not None:
                self._storage.engine.dispose()
                self._storage = None

    # -- studies ---------------------------------------------------------------------------

    def ensure_study(self, name: str, directions: Sequence[str]) -> int:
        """The study's id, creating it on first use (safe when several workers race)."""
        storage = self.storage
        dirs = study_directions(directions)
        for _ in range(3):
            try:
                return storage.get_study_id_from_name(name)
            except KeyError:
                pass
            try:
                return storage.create_new_study(dirs, name)
            except optuna.exceptions.DuplicatedStudyError:
                continue
        return storage.get_study_id_from_name(name)

    def load(self, study_id: int) -> optuna.Study:
        storage = self.storage
        return optuna.load_study(
            study_name=storage.get_study_name_from_id(study_id), storage=storage
        )

    # -- trials ----------------------------------------------------------------------------

    def count_complete(self, study_id: int) -> int:
        with self.storage.engine.connect() as conn:
            stmt = (
                select(func.count())
                .select_from(_T)
                .where(_T.c.study_id == study_id, _T.c.state == TrialState.COMPLETE)
            )
            return int(conn.execute(stmt).scalar_one())

    def read_trials(self, study_id: int, after_trial_id: int = -1) -> list[FrozenTrial]:
        """Completed trials with an id above `after_trial_id`, oldest first."""
        return optuna_private.get_trials(
            self.storage, study_id, (TrialState.COMPLETE,), set(), after_trial_id
        )

    def trial_ids_after(self, study_id: int, after_trial_id: int) -> list[int]:
        """Ids of the completed trials above `after_trial_id`, oldest first: what a worker
        checks before each batch, without loading trials it wrote itself."""
        stmt = (
            select(_T.c.trial_id)
            .where(
                _T.c.study_id == study_id,
                _T.c.state == TrialState.COMPLETE,
                _T.c.trial_id > after_trial_id,
            )
            .order_by(_T.c.trial_id)
        )
        with self.storage.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(stmt)]

    def best_trial(self, study_id: int, direction: str, page: int = 256) -> FrozenTrial | None:
        """`analysis.best_trial` of the whole study, read a page at a time in value order
        (a 20,000-trial study takes seconds to load whole). Values Optuna stores as NULL
        (infinities) are outside that order: a study with any falls back to loading it all."""
        if self._has_null_values(study_id):
            return best_trial(self.read_trials(study_id), direction)
        order: TrialOrder = "value desc" if direction == "maximize" else "value"
        after: tuple[float, int] | None = None
        while True:
            found = self.page_trials(study_id, order, after, page)
            for t in found:
                if t.state == TrialState.COMPLETE and t.values and feasible(t):
                    return t
            if len(found) < page:
                return None
            after = (found[-1].values[0], found[-1].number)

    def _has_null_values(self, study_id: int) -> bool:
        stmt = (
            select(func.count())
            .select_from(_V)
            .join(_T, _T.c.trial_id == _V.c.trial_id)
            .where(_T.c.study_id == study_id, _V.c.objective == 0, _V.c.value.is_(None))
        )
        with self.storage.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one()) > 0

    def trials_by_id(self, study_id: int, trial_ids: Sequence[int]) -> list[FrozenTrial]:
        if not trial_ids:
            return []
        found = optuna_private.get_trials(
            self.storage, study_id, None, set(trial_ids), max(trial_ids)
        )
        by_id = {optuna_private.trial_id(t): t for t in found}
        return [by_id[i] for i in trial_ids if i in by_id]

    def page_trials(
        self, study_id: int, order: TrialOrder, after: tuple[float, int] | None, limit: int
    ) -> list[FrozenTrial]:
        """One page in `order`, continuing after the (value, number) key of the last row."""
        if order == "number":
            stmt = select(_T.c.trial_id).where(_T.c.study_id == study_id)
            if after is not None:
                stmt = stmt.where(_T.c.number > after[1])
            stmt = stmt.order_by(_T.c.number).limit(limit)
        else:
            stmt = self._by_value(study_id, order == "value desc", after).limit(limit)
        with self.storage.engine.connect() as conn:
            ids = [int(r[0]) for r in conn.execute(stmt)]
        return self.trials_by_id(study_id, ids)

    @staticmethod
    def _by_value(study_id: int, desc: bool, after: tuple[float, int] | None) -> Any:
        stmt = (
            select(_T.c.trial_id)
            .join(_V, and_(_V.c.trial_id == _T.c.trial_id, _V.c.objective == 0))
            .where(_T.c.study_id == study_id, _V.c.value.is_not(None))
        )
        if after is not None:
            value, number = after
            if desc:
                stmt = stmt.where(
                    or_(_V.c.value < value, and_(_V.c.value == value, _T.c.number > number))
                )
            else:
                stmt = stmt.where(
                    or_(_V.c.value > value, and_(_V.c.value == value, _T.c.number > number))
                )
        order = _V.c.value.desc() if desc else _V.c.value.asc()
        return stmt.order_by(order, _T.c.number)

    def write_trials(self, study_id: int, trials: Sequence[FrozenTrial]) -> list[tuple[int, int]]:
        """Writes completed trials in one transaction; returns their (trial_id, number)."""
        if not trials:
            return []
        with self.storage.engine.begin() as conn:
            return _insert_trials(conn, study_id, trials)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _naive_utc(dt: datetime | None) -> datetime:
    """Optuna stores naive UTC; in-memory trials carry naive local times."""
    value = dt or datetime.now()
    return value.astimezone(UTC).replace(tzinfo=None)


def _insert_trials(
    conn: Connection, study_id: int, trials: Sequence[FrozenTrial]
) -> list[tuple[int, int]]:
    # Locking the study row serializes numbering with every other writer, Optuna's included.
    conn.execute(
        update(_STUDIES)
        .where(_STUDIES.c.study_id == study_id)
        .values(study_name=_STUDIES.c.study_name)
    )
    first = int(
        conn.execute(
            select(func.count()).select_from(_T).where(_T.c.study_id == study_id)
        ).scalar_one()
    )
    rows = [
        {
            "number": first + i,
            "study_id": study_id,
            "state": TrialState.COMPLETE,
            "datetime_start": _naive_utc(t.datetime_start),
            "datetime_complete": _naive_utc(t.datetime_complete),
        }
        for i, t in enumerate(trials)
    ]
    ids = [
        int(x)
        for x in conn.execute(
            insert(_T).returning(_T.c.trial_id, sort_by_parameter_order=True), rows
        ).scalars()
    ]
    pairs = list(zip(ids, trials, strict=True))
    _insert_many(conn, _P, _param_rows(pairs))
    _insert_many(conn, _V, _value_rows(pairs))
    _insert_many(conn, _U, _attr_rows(pairs, user=True))
    _insert_many(conn, _S, _attr_rows(pairs, user=False))
    return [(tid, first + i) for i, tid in enumerate(ids)]


def _insert_many(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), rows)


def _param_rows(pairs: Iterable[tuple[int, FrozenTrial]]) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": tid,
            "param_name": name,
            "param_value": t.distributions[name].to_internal_repr(value),
            "distribution_json": distribution_to_json(t.distributions[name]),
        }
        for tid, t in pairs
        for name, value in t.params.items()
    ]


def _value_rows(pairs: Iterable[tuple[int, FrozenTrial]]) -> list[dict[str, Any]]:
    out = []
    for tid, t in pairs:
        for objective, value in enumerate(t.values or ()):
            stored, kind = optuna_private.stored_value(value)
            out.append(
                {"trial_id": tid, "objective": objective, "value": stored, "value_type": kind}
            )
    return out


def _attr_rows(pairs: Iterable[tuple[int, FrozenTrial]], *, user: bool) -> list[dict[str, Any]]:
    return [
        {"trial_id": tid, "key": key, "value_json": json.dumps(value)}
        for tid, t in pairs
        for key, value in (t.user_attrs if user else t.system_attrs).items()
    ]
