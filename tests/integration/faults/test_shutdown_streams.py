"""SIGTERM with streams open that never end by themselves: a job watch and a notification
stream. The server ends them before it drains its calls, so it exits well inside its 5 s
grace instead of holding every restart for the whole of it, and both streams end cleanly
for their clients to resume on the next server."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import optimization_pb2_grpc as og
from stratopt.v1 import system_pb2 as sp
from stratopt.v1 import system_pb2_grpc as syg

from tests.conftest import start_server, stop_server
from tests.integration.jobs.helpers import make_dataset, start

GRACE_S = 5.0
EXIT_WITHIN_S = 3.0


def drain(call: Any, outcome: list[str]) -> None:
    """Reads a stream to its end; records how it ended."""
    try:
        for _ in call:
            pass
        outcome.append("OK")
    except grpc.RpcError as e:
        outcome.append(e.code().name)


def test_open_watches_and_notification_streams_do_not_hold_the_shutdown(
    tmp_path: Path,
) -> None:
    # No worker in the server: the job stays queued, so nothing but the streams is left
    # to wait for (a running job's hand-over has its own test in test_sigterm.py).
    srv = start_server(tmp_path, {"STRATOPT_WORKERS": "0"})
    outcomes: dict[str, list[str]] = {"watch": [], "notifications": []}
    try:
        md = srv.md("trader")
        ch = srv.channel()
        dataset = make_dataset(ch, md, bars=500, seed=3)
        job = start(og.OptimizationServiceStub(ch), md, dataset_id=dataset, trials=10)
        watch = og.OptimizationServiceStub(ch).WatchJob(
            opb.WatchJobRequest(job_id=job.id), metadata=md
        )
        snapshot = next(watch)
        assert snapshot.job.state == opb.JOB_STATE_QUEUED
        notes = syg.SystemServiceStub(ch).StreamNotifications(
            sp.StreamNotificationsRequest(), metadata=md
        )
        readers = [
            threading.Thread(target=drain, args=(watch, outcomes["watch"]), daemon=True),
            threading.Thread(target=drain, args=(notes, outcomes["notifications"]), daemon=True),
        ]
        for t in readers:
            t.start()
        time.sleep(1.0)  # the notification stream reaches its handler
        assert all(t.is_alive() for t in readers), outcomes
        sent = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(GRACE_S + 10)
        took = time.monotonic() - sent
        for t in readers:
            t.join(5)
        ch.close()
    finally:
        stop_server(srv)
    assert code == 0, srv.logs()[-3000:]
    print(f"\nSIGTERM to exit with two open streams: {took:.2f}s")
    assert took < EXIT_WITHIN_S, f"the streams held the shutdown for {took:.1f}s"
    assert outcomes == {"watch": ["OK"], "notifications": ["OK"]}, outcomes
