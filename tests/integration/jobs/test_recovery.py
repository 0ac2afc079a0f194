"""A server killed with SIGKILL mid-job: after a restart the job resumes from its completed
trials and ends with exactly the trials asked for, none lost and none counted twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

from tests.conftest import start_server, stop_server
from tests.integration.jobs.helpers import all_trials, make_dataset, params, start, wait_done

TRIALS = 200


def stored_trials(data_dir: Path) -> list[tuple[int, str]]:
    """(number, state) of every row in the Optuna tables, read behind the server's back."""
    with sqlite3.connect(data_dir / "stratopt.optuna.db") as db:
        return list(db.execute("SELECT number, state FROM trials ORDER BY trial_id"))


def test_kill_9_mid_job_then_restart_finishes_with_exactly_200_trials(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        with srv.channel() as ch:
            md = srv.md("trader")
            stub = pbg.OptimizationServiceStub(ch)
            ds = make_dataset(ch, md, bars=20_000, seed=5)
            job = start(stub, md, dataset_id=ds, trials=TRIALS, seed=11)
            for e in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=md, timeout=60):
                if e.job.trials_completed >= 40:
                    srv.proc.kill()
                    break
    finally:
        srv.proc.wait(10)
        stop_server(srv)
    survived = stored_trials(tmp_path)
    assert 40 <= len(survived) < TRIALS, f"the kill did not land mid-job ({len(survived)} trials)"
    assert all(state == "COMPLETE" for _, state in survived)

    srv = start_server(tmp_path)
    try:
        with srv.channel() as ch:
            md = srv.md("trader")
            stub = pbg.OptimizationServiceStub(ch)
            done = wait_done(stub, md, job.id, timeout=60)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.error
            assert done.trials_completed == TRIALS and done.attempts == 1
            trials = all_trials(stub, md, job.id)
            assert [t.number for t in trials] == list(range(TRIALS))
            rows = stored_trials(tmp_path)
            assert len(rows) == TRIALS and {s for _, s in rows} == {"COMPLETE"}
            assert rows[: len(survived)] == survived, (
                "the trials from before the crash were kept as they were"
            )
            # A seeded study resumes on the same sequence: an uninterrupted twin agrees.
            twin = start(stub, md, dataset_id=ds, trials=TRIALS, seed=11)
            assert wait_done(stub, md, twin.id).state == pb.JOB_STATE_SUCCEEDED
            expected = [(params(t), list(t.values)) for t in all_trials(stub, md, twin.id)]
            assert [(params(t), list(t.values)) for t in trials] == expected
    finally:
        stop_server(srv)
