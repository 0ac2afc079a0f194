"""A retry loop's repeating failures (the database away) do not flood the log."""

from __future__ import annotations

import logging

import pytest

from stratopt.store import outages
from stratopt.store.outages import FailureLog


def test_first_failure_has_its_traceback_then_a_reminder_a_minute_then_recovery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(outages.time, "monotonic", lambda: now[0])
    failing = FailureLog(logging.getLogger("test.failure_log"), "claiming jobs failed")
    caplog.set_level(logging.INFO, logger="test.failure_log")
    for _ in range(200):  # two polls a second for 100 s
        try:
            raise ConnectionRefusedError("database away")
        except ConnectionRefusedError:
            failing.failed()
        now[0] += 0.5
    failing.recovered()
    failing.recovered()  # said once
    assert [r.getMessage() for r in caplog.records] == [
        "claiming jobs failed",
        "claiming jobs failed, still (121 times)",
        "claiming jobs failed 200 times; working again",
    ]
    assert caplog.records[0].exc_info is not None and caplog.records[1].exc_info is None
