"""The README's walk-through, run verbatim in an empty folder against a real server.

The shell block after the `<!-- walk-through ... -->` marker runs in bash with `set -e`,
so every command must exit 0; then the engine's Python example runs in the same folder
(it reads the sample file the walk-through wrote). Nothing is downloaded: the sample data
is made locally.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveServer, start_server, stop_server

pytestmark = pytest.mark.slow


def block_after(marker: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    at = text.index(marker)
    m = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, at)
    assert m, f"no {language} block after {marker!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own: the walk-through logs in with the demo password."""
    srv = start_server(tmp_path_factory.mktemp("readme-server"))
    yield srv
    stop_server(srv)


def test_the_walk_through_runs_verbatim(server: LiveServer, tmp_path: Path) -> None:
    script = block_after("<!-- walk-through:", "sh")
    work = tmp_path / "fresh"
    work.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRATOPT_")},
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "STRATOPT_SERVER": server.addr,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail -x\n" + script],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert "Final equity" in out and "5,000 bars of 1h" in out
    assert re.search(r"job [0-9a-f]{32} succeeded after 100 trials", out)
    assert "Walk-forward windows" in out and "Parameter importances" in out
    assert "My golden cross" in out
    for name in ("btc_1h.csv", "backtest.html", "best.pine"):
        assert (work / name).stat().st_size > 0, name

    example = block_after("<!-- python:", "python")
    ran = subprocess.run(
        [sys.executable, "-c", example], cwd=work, capture_output=True, text=True, timeout=240
    )
    assert ran.returncode == 0, ran.stderr
    assert "entry_time" in ran.stdout and "fast" in ran.stdout

    client_example = block_after("<!-- python-client:", "python")
    ran = subprocess.run(
        [sys.executable, "-c", client_example],
        cwd=work,
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stderr
    assert "sma_crossover ['fast', 'slow']" in ran.stdout and "total return" in ran.stdout


def test_the_committed_sample_file_is_the_sample_the_command_writes() -> None:
    from stratopt.data import import_bars

    bars = import_bars(ROOT / "examples" / "data" / "btc_1h.csv")
    assert len(bars) == 5_000 and bars.timeframe_seconds == 3_600
    assert float(bars.close.min()) > 10_000 and float(bars.close.max()) < 100_000
