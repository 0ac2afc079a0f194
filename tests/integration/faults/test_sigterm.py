"""SIGTERM to a real `stratopt serve` while an optimization job and a paper strategy run:
the server exits cleanly and quickly, the job hands its completed trials over and finishes
after the restart with exactly the trials asked for (none lost, none twice), and the paper
run resumes where it stopped and processes every bar exactly once.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import optimization_pb2_grpc as og
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.jobs.helpers import all_trials, make_dataset, start, wait_done

TRIALS = 150
LIVE_BARS = 200
BARS_PER_SECOND = 50.0
EXIT_WITHIN_S = 15.0


def stored_trials(data_dir: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(data_dir / "stratopt.optuna.db") as db:
        return list(db.execute("SELECT number, state FROM trials ORDER BY trial_id"))


def perf(
    stub: sg.StrategyServiceStub, md: list[tuple[str, str]], sid: str
) -> spb.PerformanceSnapshot:
    return stub.GetPerformance(spb.GetPerformanceRequest(strategy_id=sid), metadata=md).performance


def wait_for(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def start_work(srv: LiveServer) -> tuple[str, str]:
    """A running job and a running paper strategy: (job id, strategy id)."""
    md = srv.md("trader")
    with srv.channel() as ch:
        ds = make_dataset(ch, md, bars=10_000, seed=5)
        live_ds = make_dataset(ch, md, bars=LIVE_BARS, seed=9)
        job = start(og.OptimizationServiceStub(ch), md, dataset_id=ds, trials=TRIALS, seed=11)
        strategies = sg.StrategyServiceStub(ch)
        strat = strategies.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(
                    name="term",
                    strategy_type="sma_crossover",
                    parameters={
                        "fast": c.ParameterValue(int_value=3),
                        "slow": c.ParameterValue(int_value=8),
                    },
                )
            ),
            metadata=md,
        ).strategy
        strategies.StartStrategy(
            spb.StartStrategyRequest(
                strategy_id=strat.id, dataset_id=live_ds, bars_per_second=BARS_PER_SECOND
            ),
            metadata=md,
        )
    return job.id, strat.id


def test_sigterm_checkpoints_jobs_and_live_runs_that_resume(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        job_id, sid = start_work(srv)
        md = srv.md("trader")
        with srv.channel() as ch:
            jobs, strategies = og.OptimizationServiceStub(ch), sg.StrategyServiceStub(ch)

            def job_of() -> opb.Job:
                return jobs.GetJob(opb.GetJobRequest(job_id=job_id), metadata=md).job

            wait_for(lambda: perf(strategies, md, sid).bars_processed >= 20, "the live run")
            wait_for(lambda: job_of().trials_completed >= 10, "the job to be under way")
            bars_seen = perf(strategies, md, sid).bars_processed
        sent = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(EXIT_WITHIN_S)
        took = time.monotonic() - sent
    finally:
        stop_server(srv)
    assert code == 0, f"exit code {code}:\n{srv.logs()[-3000:]}"
    print(f"\nSIGTERM to exit: {took:.2f}s")
    before = stored_trials(tmp_path)
    assert 10 <= len(before) < TRIALS, f"the signal did not land mid-job ({len(before)})"
    assert {state for _, state in before} == {"COMPLETE"}, "no trial left half-done"

    srv = start_server(tmp_path)
    try:
        md = srv.md("trader")
        with srv.channel() as ch:
            jobs, strategies = og.OptimizationServiceStub(ch), sg.StrategyServiceStub(ch)
            resumed = perf(strategies, md, sid)
            assert resumed.run_state == spb.RUN_STATE_RUNNING, "the paper run did not resume"
            assert resumed.bars_processed >= bars_seen, "the run went back in time"
            done = wait_done(jobs, md, job_id, timeout=90)
            assert done.state == opb.JOB_STATE_SUCCEEDED, done.error
            assert done.trials_completed == TRIALS
            print(f"resumed: bar {resumed.bars_processed}, trial {len(before)}")
            trials = all_trials(jobs, md, job_id)
            assert [t.number for t in trials] == list(range(TRIALS))
            after = stored_trials(tmp_path)
            assert after[: len(before)] == before, "trials from before SIGTERM were kept"
            assert len(after) == TRIALS

            def stopped() -> bool:
                return perf(strategies, md, sid).run_state == spb.RUN_STATE_STOPPED

            wait_for(stopped, "the paper run to reach the end of its feed")
            final = perf(strategies, md, sid)
            assert final.bars_processed == LIVE_BARS, "a bar was skipped or processed twice"
    finally:
        stop_server(srv)
