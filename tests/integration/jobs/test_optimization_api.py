"""OptimizationService against a real server: validation, results, watching, cancelling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2
from google.protobuf.field_mask_pb2 import FieldMask
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from stratopt.engine.metrics import expected_max_sharpe
from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations
from tests.integration.jobs.helpers import (
    all_trials,
    make_dataset,
    params,
    start,
    wait_done,
    watch_all,
)

Env = tuple[pbg.OptimizationServiceStub, str, LiveServer]


@pytest.fixture(scope="module")
def env(live_server: LiveServer) -> Iterator[Env]:
    with live_server.channel() as ch:
        yield (
            pbg.OptimizationServiceStub(ch),
            make_dataset(ch, live_server.md("trader")),
            live_server,
        )


def test_bad_specs_get_invalid_argument_with_field_violations(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    cases = [
        (
            dict(search_space=[pb.ParameterOverride(name="speed", min=1, max=5)]),
            "spec.search_space[0].name",
            "unknown parameter",
        ),
        (
            dict(search_space=[pb.ParameterOverride(name="fast", min=50, max=10)]),
            "spec.search_space[0].min",
            "empty range",
        ),
        (dict(trials=0), "spec.trials", "or 0 with a timeout"),
        (dict(trials=-5), "spec.trials", "1..100,000"),
        (
            dict(objectives=[pb.Objective(metric="sharpness")]),
            "spec.objectives[0].metric",
            "unknown metric",
        ),
        (
            dict(constraints=[pb.MetricConstraint(metric="sharpe", min=2, max=1)]),
            "spec.constraints[0].min",
            "greater than max",
        ),
        (dict(strategy_type="nope"), "spec.strategy_type", "unknown strategy type"),
        (
            dict(execution=c.ExecutionOptions(commission=0.5)),
            "spec.execution.commission",
            "must be in [0, 0.1]",
        ),
    ]
    for overrides, field, phrase in cases:
        spec = {"dataset_id": ds, "trials": 10, **overrides}
        err = call_error(start, stub, md, **spec)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
        found = violations(err)
        assert field in found and phrase in found[field], (field, found)


def test_jobs_store_and_echo_resolved_options_where_explicit_zeros_win(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    with srv.channel() as ch:
        strategy = (
            s_grpc.StrategyServiceStub(ch)
            .CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(
                        name="opt-zero-override",
                        strategy_type="sma_crossover",
                        execution=c.ExecutionOptions(commission=0.001, stop_loss=0.05),
                    )
                ),
                metadata=md,
            )
            .strategy
        )
    zero = c.ExecutionOptions(commission=0.0, set_fields=FieldMask(paths=["commission"]))
    job = start(
        stub, md, strategy_type="", strategy_id=strategy.id, dataset_id=ds, trials=4, execution=zero
    )
    echoed = job.spec.execution
    assert echoed.commission == 0.0 and echoed.stop_loss == pytest.approx(0.05)
    assert echoed.position_size == 1.0 and echoed.direction == c.TRADE_DIRECTION_LONG_ONLY
    assert len(echoed.set_fields.paths) == 10, "resolved: every field"
    # The bar spacing's annualization is shown from the start, not 0 until a worker runs it.
    assert echoed.periods_per_year > 0
    done = wait_done(stub, md, job.id)
    assert done.state == pb.JOB_STATE_SUCCEEDED and done.spec.execution == echoed


def test_other_users_datasets_and_jobs_are_not_found(env: Env) -> None:
    stub, ds, srv = env
    with srv.channel() as ch:
        admins = make_dataset(ch, srv.md("admin"), bars=500, seed=9)
    err = call_error(start, stub, srv.md("trader"), dataset_id=admins, trials=5)
    assert err.code() == grpc.StatusCode.NOT_FOUND and admins in err.details()
    job = start(stub, srv.md("trader"), dataset_id=ds, trials=8)
    err = call_error(stub.GetJob, pb.GetJobRequest(job_id=job.id), metadata=srv.md("analyst"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    wait_done(stub, srv.md("trader"), job.id)


def test_seeded_runs_repeat_and_results_are_complete(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    spec = dict(
        dataset_id=ds,
        trials=48,
        seed=42,
        validation=pb.ValidationOptions(holdout_fraction=0.2, walk_forward_windows=3),
    )
    a, b = start(stub, md, **spec), start(stub, md, **spec)
    c = start(stub, md, **{**spec, "seed": 43})
    for job in (a, b, c):
        done = wait_done(stub, md, job.id)
        assert done.state == pb.JOB_STATE_SUCCEEDED and done.trials_completed == 48
    ta, tb, tc = (all_trials(stub, md, j.id) for j in (a, b, c))
    assert [t.number for t in ta] == list(range(48))
    assert [(params(x), list(x.values)) for x in ta] == [(params(x), list(x.values)) for x in tb]
    assert [params(x) for x in ta] != [params(x) for x in tc]
    result = stub.GetOptimizationResult(pb.GetOptimizationResultRequest(job_id=a.id), metadata=md)
    best = max((t for t in ta if t.feasible), key=lambda t: t.values[0])
    assert result.best_trial.values[0] == best.values[0] == result.job.best_value
    assert {i.parameter for i in result.importances} == {"fast", "slow"}
    v = result.validation
    assert v.in_sample.sharpe == pytest.approx(best.values[0])
    assert len(v.walk_forward_windows) == 3 and v.out_of_sample.num_trades >= 0
    # The deflated Sharpe ratio weighs the winner against all 48 tries (issue 11, item 4).
    sb = result.selection_bias
    feasible_sharpes = [t.metrics.sharpe for t in ta if t.feasible]
    assert sb.trials == len(feasible_sharpes) and sb.observations > 100
    assert sb.best_sharpe == pytest.approx(best.values[0], rel=1e-3, abs=1e-6)
    assert sb.expected_max_sharpe == pytest.approx(
        expected_max_sharpe(np.array(feasible_sharpes)), rel=1e-9, abs=1e-12
    )
    assert 0.0 <= sb.deflated_sharpe_ratio <= 1.0
    by_value = all_trials(stub, md, a.id, "value desc")
    assert [t.values[0] for t in by_value] == sorted((t.values[0] for t in ta), reverse=True)


def test_constraints_are_honoured(env: Env) -> None:
    """The same random trials with and without bounds: the unconstrained winner breaks the
    sharpe cap, so it is infeasible and something else must win."""
    stub, ds, srv = env
    md = srv.md("trader")
    spec = dict(dataset_id=ds, trials=40, seed=7, sampler=pb.SAMPLER_RANDOM)
    free = start(stub, md, **spec)
    wait_done(stub, md, free.id)
    top = stub.GetOptimizationResult(
        pb.GetOptimizationResultRequest(job_id=free.id), metadata=md
    ).best_trial
    cap = top.values[0] - 1e-9
    bounded = start(
        stub,
        md,
        **spec,
        constraints=[
            pb.MetricConstraint(metric="sharpe", max=cap),
            pb.MetricConstraint(metric="num_trades", min=10),
        ],
    )
    assert wait_done(stub, md, bounded.id).state == pb.JOB_STATE_SUCCEEDED
    trials = all_trials(stub, md, bounded.id)
    assert [params(t) for t in trials] == [params(t) for t in all_trials(stub, md, free.id)]
    for t in trials:
        ok = (
            t.metrics.sharpe <= cap
            and t.metrics.num_trades >= 10
            and t.parameters["fast"].int_value < t.parameters["slow"].int_value
        )
        assert t.feasible == ok, t
    best = stub.GetOptimizationResult(
        pb.GetOptimizationResultRequest(job_id=bounded.id), metadata=md
    ).best_trial
    assert best.feasible and best.values[0] < top.values[0]
    assert best.values[0] == max(t.values[0] for t in trials if t.feasible)
    assert not next(t for t in trials if t.number == top.number).feasible


def test_multi_objective_jobs_report_a_pareto_front(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    job = start(
        stub,
        md,
        dataset_id=ds,
        trials=32,
        seed=3,
        objectives=[pb.Objective(metric="total_return"), pb.Objective(metric="max_drawdown")],
    )
    assert wait_done(stub, md, job.id).spec.sampler == pb.SAMPLER_NSGA_II
    r = stub.GetOptimizationResult(pb.GetOptimizationResultRequest(job_id=job.id), metadata=md)
    front = [(t.values[0], t.values[1]) for t in r.pareto_front]
    assert front
    for ret, dd in front:
        assert not any(r2 >= ret and d2 <= dd and (r2, d2) != (ret, dd) for r2, d2 in front)


def test_watchers_agree_and_a_late_watcher_starts_from_a_snapshot(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    job = start(stub, md, dataset_id=ds, trials=160, seed=1)
    streams: list[list[pb.WatchJobResponse]] = [[], []]

    def follow(i: int) -> None:
        streams[i] = watch_all(stub, md, job.id)

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for events in streams:
        assert events[0].type == pb.JOB_EVENT_TYPE_SNAPSHOT
        assert events[-1].type == pb.JOB_EVENT_TYPE_STATE_CHANGED
        assert events[-1].job.state == pb.JOB_STATE_SUCCEEDED
        counts = [e.job.trials_completed for e in events]
        assert counts == sorted(counts)
    finals = [
        (e[-1].job.trials_completed, e[-1].job.best_value, dict(e[-1].job.best_parameters))
        for e in streams
    ]
    assert finals[0] == finals[1] and finals[0][0] == 160
    late = watch_all(stub, md, job.id)
    assert [e.type for e in late] == [pb.JOB_EVENT_TYPE_SNAPSHOT]
    assert late[0].job.state == pb.JOB_STATE_SUCCEEDED and late[0].job.trials_completed == 160
    assert late[0].trial.number >= 0 and late[0].job.best_value == finals[0][1]


def test_cancel_is_prompt_for_running_and_queued_jobs(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    running = start(stub, md, dataset_id=ds, trials=0, timeout=duration_pb2.Duration(seconds=600))
    queued = start(stub, md, dataset_id=ds, trials=100)
    events = stub.WatchJob(pb.WatchJobRequest(job_id=running.id), metadata=md, timeout=60)
    for e in events:
        if e.job.trials_completed > 0:
            break
    # One worker, busy: the second job waits in the queue (and says so), and is cancelled on
    # the spot.
    waiting = stub.GetJob(pb.GetJobRequest(job_id=queued.id), metadata=md).job
    assert waiting.state == pb.JOB_STATE_QUEUED
    assert waiting.state_reason == "waiting for a free worker (1 busy)"
    gone = stub.CancelJob(pb.CancelJobRequest(job_id=queued.id), metadata=md).job
    assert gone.state == pb.JOB_STATE_CANCELLED and gone.trials_completed == 0
    asked = time.monotonic()
    stub.CancelJob(pb.CancelJobRequest(job_id=running.id), metadata=md)
    for e in events:
        if e.job.state == pb.JOB_STATE_CANCELLED:
            break
    latency = time.monotonic() - asked
    assert e.job.state == pb.JOB_STATE_CANCELLED and latency < 1.0, latency
    assert wait_done(stub, md, queued.id).state == pb.JOB_STATE_CANCELLED


def test_batches_and_listing(env: Env) -> None:
    stub, ds, srv = env
    md = srv.md("trader")
    resp = stub.BatchStartOptimizations(
        pb.BatchStartOptimizationsRequest(
            spec=pb.OptimizationSpec(trials=8, seed=5),
            strategy_types=["sma_crossover", "ema_crossover"],
            dataset_ids=[ds],
            timeframes=["1h", "4h"],
            priority=pb.JOB_PRIORITY_HIGH,
        ),
        metadata=md,
    )
    assert len(resp.jobs) == 4 and {j.batch_id for j in resp.jobs} == {resp.batch_id}
    assert {(j.spec.strategy_type, j.spec.timeframe) for j in resp.jobs} == {
        (s, t) for s in ("sma_crossover", "ema_crossover") for t in ("1h", "4h")
    }
    for j in resp.jobs:
        assert wait_done(stub, md, j.id).state == pb.JOB_STATE_SUCCEEDED
    listed = stub.ListJobs(pb.ListJobsRequest(batch_id=resp.batch_id, page_size=3), metadata=md)
    rest = stub.ListJobs(
        pb.ListJobsRequest(batch_id=resp.batch_id, page_size=3, page_token=listed.next_page_token),
        metadata=md,
    )
    assert len(listed.jobs) == 3 and len(rest.jobs) == 1 and not rest.next_page_token
    assert {j.id for j in [*listed.jobs, *rest.jobs]} == {j.id for j in resp.jobs}


def test_the_optimize_command_starts_follows_and_reattaches(env: Env) -> None:
    stub, ds, srv = env
    cli = [sys.executable, "-m", "stratopt.client.cli", "optimize", "--server", srv.addr]
    run_env = {**os.environ, "STRATOPT_TOKEN": srv.token("trader")}
    started = subprocess.run(
        [
            *cli,
            "--strategy",
            "sma_crossover",
            "--dataset",
            ds,
            "--trials",
            "24",
            "--seed",
            "4",
            "--param",
            "fast=2:30",
            "--constraint",
            "num_trades>=5",
        ],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    out = started.stdout
    assert "queued" in out and "24/24" in out and "succeeded after 24 trials" in out
    job_id = out.split()[1]
    job = stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=srv.md("trader")).job
    assert job.spec.search_space[0].max == 30 and job.spec.constraints[0].min == 5
    assert f"best {job.best_value:.6g}" in out
    again = subprocess.run(
        [*cli, "--watch", job_id], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "succeeded after 24 trials" in again.stdout
    denied = subprocess.run(
        [*cli, "--watch", job_id],
        env={**os.environ, "STRATOPT_TOKEN": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr


def test_login_keeps_a_rotating_session_for_client_commands(env: Env, tmp_path: Path) -> None:
    from tests.conftest import DEMO_PASSWORDS

    _, ds, srv = env
    base = {k: v for k, v in os.environ.items() if k not in ("STRATOPT_TOKEN", "STRATOPT_API_KEY")}
    run_env = {**base, "XDG_CONFIG_HOME": str(tmp_path), "STRATOPT_SERVER": srv.addr}
    stratopt = [sys.executable, "-m", "stratopt.client.cli"]

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*stratopt, *args],
            env={**run_env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    not_yet = run("optimize", "--watch", "nope")
    assert not_yet.returncode == 2 and "stratopt login" in not_yet.stderr
    logged = run("login", "--username", "trader", STRATOPT_PASSWORD=DEMO_PASSWORDS["trader"])
    assert logged.returncode == 0, logged.stderr
    store = tmp_path / "stratopt" / "credentials.json"
    assert store.stat().st_mode & 0o777 == 0o600
    first = json.loads(store.read_text())[srv.addr]["refresh_token"]
    assert DEMO_PASSWORDS["trader"] not in store.read_text()
    job = run("optimize", "--strategy", "sma_crossover", "--dataset", ds, "--trials", "5")
    assert job.returncode == 0 and "succeeded after 5 trials" in job.stdout, job.stderr
    assert json.loads(store.read_text())[srv.addr]["refresh_token"] != first, "rotated on use"
    out = run("logout")
    assert out.returncode == 0 and "logged out" in out.stdout
    again = run("optimize", "--watch", "nope")
    assert again.returncode == 2 and "stratopt login" in again.stderr
