"""What a failed job tells its owner (`Job.error`): words, never a Python or numba dump."""

from __future__ import annotations

from stratopt.data.errors import DatasetNotFoundError
from stratopt.errors import FailedPrecondition
from stratopt.jobs.runner import failure_text


def test_a_bug_becomes_a_plain_sentence_with_the_job_id() -> None:
    bug = SystemError(
        "<function _numba_unpickle at 0x7fb6700dda80> returned a result with an exception set"
    )
    text = failure_text(bug, "job123")
    assert "0x" not in text and "SystemError" not in text and "numba" not in text
    assert "job123" in text and "server log" in text


def test_errors_meant_for_users_keep_their_message() -> None:
    assert failure_text(FailedPrecondition("the dataset has fewer than 2 bars"), "j") == (
        "the dataset has fewer than 2 bars"
    )
    assert failure_text(DatasetNotFoundError("dataset 'x' not found"), "j") == (
        "dataset 'x' not found"
    )
    assert len(failure_text(FailedPrecondition("x" * 5000), "j")) <= 1000
