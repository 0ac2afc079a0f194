"""Running a client toolchain (go, npm, python) and failing the test with its whole output."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_ok(
    args: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Runs a command, asserting exit code 0.

    A missing `go` or `node` fails rather than skips, so CI cannot go green without
    exercising the clients. The generous default timeout covers a cold Go build cache.
    """
    if shutil.which(args[0], path=env.get("PATH")) is None:
        pytest.fail(f"{args[0]!r} is not on PATH; the client tests need Go and Node.js installed")
    proc = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(args)} (in {cwd}) exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def base_env() -> dict[str, str]:
    """The caller's environment without STRATOPT_* settings, which would steer the clients."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STRATOPT_")}
