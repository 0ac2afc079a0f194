"""Clients that follow across a server restart. `Client.follow_live`: a paper run's signals
arrive in order and each once, although the server is stopped with SIGTERM and started
again on the same port while the run trades (the run resumes on the new server, and the
follow subscribes again after the last signal it yielded). `Client.watch_job`: a watch
outlives a server that is away for longer than a call's retries last, and ends with the
job."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import strategy_pb2 as spb

from stratopt.client import Client
from tests.conftest import start_server, stop_server
from tests.integration.jobs.helpers import make_dataset

BARS = 600
BARS_PER_SECOND = 40.0
TRIALS = 600
AWAY_S = 5.0  # longer than a call's five retries wait in all (about 3 s)


def test_signals_followed_across_a_restart_come_in_order_and_once(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    token = srv.token("trader")
    client = Client(srv.addr, access_token=token)
    got: list[int] = []
    failed: list[BaseException] = []
    try:
        with srv.channel() as ch:
            dataset = make_dataset(ch, srv.md("trader"), bars=BARS, seed=17)
        strategy = client.strategies.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(
                    name="followed", strategy_type="sma_crossover",
                    parameters={"fast": c.ParameterValue(int_value=3),
                                "slow": c.ParameterValue(int_value=8)},
                )
            )
        ).strategy  # fmt: skip
        client.strategies.StartStrategy(
            spb.StartStrategyRequest(
                strategy_id=strategy.id, dataset_id=dataset, bars_per_second=BARS_PER_SECOND
            )
        )
        follow = client.follow_live(strategy.id, "signals")

        def read() -> None:
            try:
                for event in follow:
                    got.append(event.sequence)
            except BaseException as e:  # reported by the test below
                failed.append(e)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_for(lambda: len(got) >= 3, "the first signals")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        seen_at_stop = len(got)
        srv = start_server(tmp_path, addr=srv.addr)
        reader.join(BARS / BARS_PER_SECOND + 60)
        assert not reader.is_alive(), "the follow did not end with the run"
        assert not failed, failed
        recorded: list[Any] = list(
            client.pages(
                client.strategies.ListSignals,
                spb.ListSignalsRequest(strategy_id=strategy.id, page_size=1000),
                "signals",
            )
        )
    finally:
        client.close()
        stop_server(srv)
    assert follow.reconnects >= 1
    assert len(got) > seen_at_stop, "nothing came after the restart"
    assert got == [s.sequence for s in recorded] == list(range(1, len(recorded) + 1))


def wait_for(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


def test_a_job_watch_outlives_a_restart_and_ends_with_the_job(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    client = Client(srv.addr, access_token=srv.token("trader"))
    states: list[int] = []  # the job's state at each event
    failed: list[BaseException] = []
    try:
        with srv.channel() as ch:
            dataset = make_dataset(ch, srv.md("trader"), bars=10_000, seed=5)
        spec = opb.OptimizationSpec(
            strategy_type="sma_crossover", dataset_id=dataset, trials=TRIALS, seed=11
        )
        watch = client.optimize_and_watch(spec)

        def read() -> None:
            try:
                for event in watch:
                    states.append(event.job.state)
            except BaseException as e:  # reported by the test below
                failed.append(e)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # Stopped while its first trials compile, the job cannot end before the server does.
        wait_for(lambda: opb.JOB_STATE_RUNNING in states, "the job running")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        time.sleep(AWAY_S)
        srv = start_server(tmp_path, addr=srv.addr)
        reader.join(120)
        assert not reader.is_alive(), "the watch did not end with the job"
        assert not failed, failed
    finally:
        client.close()
        stop_server(srv)
    assert watch.reconnects >= 1
    assert watch.job is not None and watch.job.state == opb.JOB_STATE_SUCCEEDED
    assert watch.job.trials_completed == TRIALS
