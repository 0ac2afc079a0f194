"""Scale-out on PostgreSQL: one server that only serves the API, two `stratopt worker`
processes sharing one study; one worker is killed with SIGKILL mid-run and the job still
completes with exactly the trials asked for, and its owner is notified once.

Needs the PostgreSQL that `.ci/postgres.sh` starts (it writes /tmp/stratopt-pg.env). Locally
the test is skipped when that file is absent; in CI (CI=true) it fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, make_url, text
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg
from stratopt.v1 import system_pb2 as spb
from stratopt.v1 import system_pb2_grpc as spbg

from tests.conftest import ROOT, start_server, stop_server
from tests.integration.jobs.helpers import make_dataset, start, wait_done

pytestmark = pytest.mark.postgres
ENV_FILE = Path("/tmp/stratopt-pg.env")
TRIALS = 2_000


def postgres_url() -> str:
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not ENV_FILE.exists():
        if in_ci:
            pytest.fail(f"{ENV_FILE} is missing: .ci/postgres.sh did not set PostgreSQL up")
        pytest.skip("no local PostgreSQL (run .ci/postgres.sh)")
    values = dict(line.split("=", 1) for line in ENV_FILE.read_text().split() if "=" in line)
    return values["STRATOPT_TEST_POSTGRES_URL"]


@pytest.fixture()
def database() -> Iterator[str]:
    """A database of its own for this run, dropped afterwards."""
    url = make_url(postgres_url())
    admin = create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    name = f"stratopt_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:
        pytest.fail(f"PostgreSQL is not reachable at {url.render_as_string()}: {e}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "stratopt.client.cli",
        "worker",
        "--name",
        name,
        "--lease-seconds",
        "3",
    ]
    return subprocess.Popen(
        args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT
    )


def trials_by_worker(db_url: str, study_id: int) -> dict[str, int]:
    engine = create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.value_json, count(*) FROM optuna.trial_user_attributes a "
                    "JOIN optuna.trials t ON t.trial_id = a.trial_id "
                    "WHERE a.key = 'worker' AND t.study_id = :s GROUP BY a.value_json"
                ),
                {"s": study_id},
            )
            return {str(k).strip('"'): int(n) for k, n in rows}
    finally:
        engine.dispose()


def study_rows(db_url: str) -> list[tuple[int, str]]:
    engine = create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return [
                (int(n), str(s))
                for n, s in conn.execute(
                    text("SELECT number, state FROM optuna.trials ORDER BY number")
                )
            ]
    finally:
        engine.dispose()


def study_id_of(db_url: str, job_id: str) -> int | None:
    engine = create_engine(make_url(db_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT study_id FROM jobs WHERE id = :j"), {"j": job_id}
            ).scalar()
    finally:
        engine.dispose()


def job_notices(
    ch: grpc.Channel, md: list[tuple[str, str]], job_id: str, timeout: float
) -> list[spb.Notification]:
    """The owner's notifications about one job, once there is one (and a moment for a
    duplicate to show up)."""
    stub = spbg.SystemServiceStub(ch)
    deadline = time.monotonic() + timeout
    found: list[spb.Notification] = []
    while time.monotonic() < deadline:
        page = stub.ListNotifications(spb.ListNotificationsRequest(page_size=200), metadata=md)
        found = [n for n in page.notifications if n.resource == f"jobs/{job_id}"]
        if found:
            time.sleep(1.0)
            page = stub.ListNotifications(spb.ListNotificationsRequest(page_size=200), metadata=md)
            return [n for n in page.notifications if n.resource == f"jobs/{job_id}"]
        time.sleep(0.2)
    return found


def test_two_workers_share_a_study_and_survive_losing_one(tmp_path: Path, database: str) -> None:
    srv = start_server(tmp_path, {"STRATOPT_DATABASE_URL": database, "STRATOPT_WORKERS": "0"})
    env = {**srv.env, "STRATOPT_LOG_LEVEL": "INFO"}
    workers = {n: start_worker(n, env, tmp_path / f"{n}.log") for n in ("wa", "wb")}
    try:
        with srv.channel() as ch:
            md = srv.md("trader")
            stub = pbg.OptimizationServiceStub(ch)
            ds = make_dataset(ch, md, bars=20_000, seed=8)
            job = start(stub, md, dataset_id=ds, trials=TRIALS, sampler=pb.SAMPLER_RANDOM)
            deadline = time.monotonic() + 60
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                sid = study_id_of(database, job.id)
                counts = trials_by_worker(database, sid) if sid is not None else {}
                if len(counts) == 2 and min(counts.values()) > 0:
                    break
                time.sleep(0.05)
            assert len(counts) == 2, f"both workers should contribute: {counts}"
            assert sum(counts.values()) < TRIALS, "the job finished before a worker could be killed"
            victim = next(iter(sorted(counts)))
            workers[victim.split(":")[0]].kill()
            done = wait_done(stub, md, job.id, timeout=90)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.error
            assert done.trials_completed == TRIALS
            rows = study_rows(database)
            assert [n for n, _ in rows] == list(range(TRIALS))
            assert {s for _, s in rows} == {"COMPLETE"}
            final = trials_by_worker(database, study_id_of(database, job.id) or -1)
            assert sum(final.values()) == TRIALS and all(final.values())
            # The owner hears of the end once, from the worker that ended the job.
            notices = job_notices(ch, md, job.id, timeout=15)
            assert [n.kind for n in notices] == ["job.succeeded"], notices
            assert f"{TRIALS}/{TRIALS} trials" in notices[0].message
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.terminate()
        for p in workers.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        stop_server(srv)
