"""Paper trading across replicas on PostgreSQL.

- A strategy runs in the server that started it; another replica streams its signals by
  polling the events table, from stored history on to the end of the run.
- When the server that runs a strategy dies, another replica takes the run over once the
  runner's heartbeat is RUNNER_STALE_S old, resumes it from its last committed state, and
  the record ends up exactly as an uninterrupted twin's.
- When that server was only frozen, not dead, and goes on afterwards, it lets the run go
  at its next commit: the record is the same.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, make_url, text
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.jobs.test_postgres_scaleout import database, postgres_url

pytestmark = pytest.mark.postgres
_ = (database, postgres_url)  # fixtures shared with the jobs scale-out test

FAST = {"fast": c.ParameterValue(int_value=3), "slow": c.ParameterValue(int_value=8)}


@pytest.fixture()
def replicas(database: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {"STRATOPT_DATABASE_URL": database}
    # The same data folder (datasets are files in it), so each replica names itself.
    a = start_server(tmp_path, {**env, "STRATOPT_INSTANCE_ID": "replica-a"})
    b = start_server(tmp_path, {**env, "STRATOPT_INSTANCE_ID": "replica-b"})
    yield a, b
    for srv in (a, b):
        stop_server(srv)


def stubs(srv: LiveServer) -> tuple[sg.StrategyServiceStub, mg.MarketDataServiceStub]:
    ch = srv.channel()
    return sg.StrategyServiceStub(ch), mg.MarketDataServiceStub(ch)


def signals(s: sg.StrategyServiceStub, md: list[tuple[str, str]], sid: str) -> list[spb.Signal]:
    return list(
        s.ListSignals(spb.ListSignalsRequest(strategy_id=sid, page_size=1000), metadata=md).signals
    )


def wait_state(
    s: sg.StrategyServiceStub, md: list[tuple[str, str]], sid: str, state: int, timeout: float
) -> spb.PerformanceSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        perf = s.GetPerformance(spb.GetPerformanceRequest(strategy_id=sid), metadata=md)
        if perf.performance.run_state == state:
            return perf.performance
        assert time.monotonic() < deadline, f"run state {perf.performance.run_state}"
        time.sleep(0.1)


def test_a_replica_streams_a_strategy_another_runs_and_takes_it_over_when_it_dies(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    md = a.md("trader")
    sa, ma = stubs(a)
    sb, _ = stubs(b)
    ds = ma.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="rep", symbol="REP", bar_count=900, seed=5),
        metadata=md,
    ).dataset
    made = [
        sa.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(name=n, strategy_type="sma_crossover", parameters=FAST)
            ),
            metadata=md,
        ).strategy.id
        for n in ("runs on a", "twin")
    ]
    sid, twin = made
    sa.StartStrategy(
        spb.StartStrategyRequest(strategy_id=sid, dataset_id=ds.id, bars_per_second=40),
        metadata=md,
    )
    deadline = time.monotonic() + 20
    while not signals(sa, md, sid):
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # B does not run it (StopStrategy there says so) but streams it: history, then polled.
    with pytest.raises(grpc.RpcError) as err:
        sb.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=b.md("trader"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    streamed: list[spb.Signal] = []
    stream = sb.StreamSignals(
        spb.StreamSignalsRequest(strategy_id=sid, after_sequence=1),
        metadata=b.md("trader"),
        timeout=120,
    )
    for msg in stream:
        streamed.append(msg.signal)
        if len(streamed) == 5:
            break
    stream.cancel()

    # A dies; B takes the run over after the heartbeat goes stale, from A's last commit.
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    final = wait_state(sb, b.md("trader"), sid, spb.RUN_STATE_STOPPED, timeout=120)
    assert final.bars_processed == ds.bar_count

    sb.StartStrategy(
        spb.StartStrategyRequest(strategy_id=twin, dataset_id=ds.id), metadata=b.md("trader")
    )
    wait_state(sb, b.md("trader"), twin, spb.RUN_STATE_STOPPED, timeout=60)
    got = signals(sb, b.md("trader"), sid)
    want = signals(sb, b.md("trader"), twin)
    assert [x.sequence for x in got] == list(range(1, len(got) + 1))
    key = [(x.time.seconds, x.action, x.price, x.position) for x in got]
    assert key == [(x.time.seconds, x.action, x.price, x.position) for x in want]
    assert [x.sequence for x in streamed] == [2, 3, 4, 5, 6]
    assert [(x.time.seconds, x.price) for x in streamed] == [
        (x.time.seconds, x.price) for x in got[1:6]
    ]


def runner_of(url: str, strategy_id: str) -> str:
    """Who runs the strategy's latest run, as recorded (read straight from the database)."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text(
                        "SELECT runner FROM live_runs WHERE strategy_id = :s "
                        "ORDER BY started_at DESC LIMIT 1"
                    ),
                    {"s": strategy_id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_replica_frozen_past_its_heartbeat_gives_the_run_up_to_the_one_that_took_it(
    replicas: tuple[LiveServer, LiveServer], database: str
) -> None:
    """A stops being scheduled (SIGSTOP: a machine under heavy load, a long pause) for
    longer than RUNNER_STALE_S; B takes the run over; then A goes on (SIGCONT) with the
    bars and events it had in hand, as if nothing happened.

    A's late commits used to land beside B's: signals stored twice under new numbers, or
    numbers taken twice (one writer stuck on the unique constraint). Now the first commit
    A tries is refused, A lets the run go, and the record is still an uninterrupted twin's.
    """
    a, b = replicas
    md = a.md("trader")
    md_b = b.md("trader")
    sa, ma = stubs(a)
    sb, _ = stubs(b)
    ds = ma.GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name="frz", symbol="FRZ", bar_count=900, seed=6),
        metadata=md,
    ).dataset
    sid, twin = (
        sa.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(name=n, strategy_type="sma_crossover", parameters=FAST)
            ),
            metadata=md,
        ).strategy.id
        for n in ("frozen on a", "twin")
    )
    sa.StartStrategy(
        spb.StartStrategyRequest(strategy_id=sid, dataset_id=ds.id, bars_per_second=40),
        metadata=md,
    )
    deadline = time.monotonic() + 20
    while len(signals(sa, md, sid)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)

    a.proc.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 60
        while runner_of(database, sid) != "replica-b":
            assert time.monotonic() < deadline, "B never took the run over"
            time.sleep(0.05)
    finally:
        a.proc.send_signal(signal.SIGCONT)

    final = wait_state(sb, md_b, sid, spb.RUN_STATE_STOPPED, timeout=120)
    assert final.bars_processed == ds.bar_count
    # A is alive and knows the run is not its own any more.
    with pytest.raises(grpc.RpcError) as err:
        sa.StopStrategy(spb.StopStrategyRequest(strategy_id=sid), metadata=md, timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert runner_of(database, sid) == "replica-b"

    sb.StartStrategy(spb.StartStrategyRequest(strategy_id=twin, dataset_id=ds.id), metadata=md_b)
    wait_state(sb, md_b, twin, spb.RUN_STATE_STOPPED, timeout=60)
    got = signals(sb, md_b, sid)
    want = signals(sb, md_b, twin)
    assert [x.sequence for x in got] == list(range(1, len(got) + 1))
    key = [(x.time.seconds, x.action, x.price, x.position) for x in got]
    assert key == [(x.time.seconds, x.action, x.price, x.position) for x in want]
