"""Every client command of `stratopt` against a real server, human output and --json.

Most commands run in-process (`cli.main`, output captured) to keep the file fast; the ones
whose point is the process boundary run as subprocesses: login without a terminal, the
completion script in bash, and the progress display on a pipe and on an 80-column
pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as opt_pb
from stratopt.v1 import optimization_pb2_grpc as opt_grpc

from stratopt.client.cli import main
from stratopt.server.settings import Settings
from tests.conftest import DEMO_PASSWORDS, LiveServer

Run = Callable[..., tuple[str, str]]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STRATOPT = [sys.executable, "-m", "stratopt.client.cli"]


@pytest.fixture(scope="module")
def srv(live_server: LiveServer) -> LiveServer:
    return live_server


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    """20,000 hourly bars of the trader's, for server backtests and jobs."""
    req = md_pb.GenerateSyntheticDatasetRequest(
        name="cli-bars", symbol="CLI", timeframe="1h", bar_count=20_000, seed=11
    )
    with srv.channel() as ch:
        reply = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            req, metadata=srv.md("trader")
        )
    return str(reply.dataset.id)


@pytest.fixture()
def env(srv: LiveServer, tmp_path: Path) -> dict[str, str]:
    """A client environment: the server, the trader's token, an empty config folder."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STRATOPT_")}
    return {
        **base,
        "STRATOPT_SERVER": srv.addr,
        "STRATOPT_TOKEN": srv.token("trader"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


@pytest.fixture()
def cli(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Run:
    """Runs `stratopt ARGS` in this process; returns (stdout, stderr), checking the status."""
    for k in [k for k in os.environ if k.startswith("STRATOPT_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        if k.startswith("STRATOPT_") or k == "XDG_CONFIG_HOME":
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, code: int = 0) -> tuple[str, str]:
        rc = main(list(args))
        out, err = capsys.readouterr()
        assert rc == code, (args, rc, out, err)
        return out, err

    return run


def run_json(cli: Run, *args: str) -> object:
    out, _ = cli(*args, "--json")
    return json.loads(out)


# -- datasets -----------------------------------------------------------------------------


def test_datasets_sample_import_show_ls_generate_rm(cli: Run, tmp_path: Path) -> None:
    _, err = cli("data", "sample", "btc", "--bars", "3000", "-o", "btc.csv")
    assert "wrote 3,000 1h bars of BTCUSD" in err
    lines = (tmp_path / "btc.csv").read_text().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume" and len(lines) == 3_001
    assert lines[1].startswith("2021-01-01T00:00:00Z,")
    cli("datasets", "sample", "spy", "-o", "spy.parquet")
    assert (tmp_path / "spy.parquet").stat().st_size > 0

    out, _ = cli("datasets", "import", "btc.csv", "--symbol", "BTCUSD", "-q")
    ds = out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", ds), out
    out, _ = cli("datasets", "show", ds)
    assert "BTCUSD" in out and "3,000" in out and "2021-01-01 00:00 to 2021-05-05" in out
    shown = run_json(cli, "datasets", "show", ds)
    assert isinstance(shown, dict) and shown["bar_count"] == 3_000 and shown["timeframe"] == "1h"
    out, _ = cli("datasets", "ls")
    assert ds in out and "BTCUSD" in out
    listed = run_json(cli, "datasets", "ls", "--symbol", "BTCUSD")
    assert isinstance(listed, list) and ds in [d["id"] for d in listed]

    out, _ = cli(
        "datasets", "generate", "cli-synth", "--bars", "400", "--seed", "5", "--timeframe", "4h"
    )
    assert "generated dataset" in out and "400 bars" in out and "4h" in out
    synth = out.split()[2].rstrip(":")
    out, _ = cli("datasets", "rm", synth, ds)
    assert f"deleted dataset {synth}" in out
    out, err = cli("datasets", "show", ds, code=1)
    assert "NOT_FOUND" in err


# -- strategies and types -------------------------------------------------------------------


def test_types_and_strategies(cli: Run) -> None:
    out, _ = cli("types")
    assert "sma_crossover" in out and "fast=10 slow=50" in out
    out, _ = cli("types", "sma_crossover")
    assert "fast" in out and "2:200" in out and "constraint: fast < slow" in out
    types = run_json(cli, "types")
    assert isinstance(types, list) and "sma_crossover" in [t["name"] for t in types]

    out, _ = cli(
        "strategies", "create", "cli golden cross", "--type", "sma_crossover", "-p", "fast=50",
        "-p", "slow=200", "--symbol", "BTCUSDT", "--timeframe", "1h", "--tag", "trend",
        "--commission", "0.001", "-q",
    )  # fmt: skip
    sid = out.strip()
    out, _ = cli("strategies", "show", sid)
    assert "fast=50 slow=200" in out and "commission=0.001" in out
    # The options it runs with, defaults included, are visible.
    assert "cash 10,000.00" in out and "commission 0.100%/side" in out and "long only" in out
    shown = run_json(cli, "strategies", "show", sid)
    assert isinstance(shown, dict) and shown["parameters"] == {"fast": 50, "slow": 200}
    out, _ = cli("strategies", "ls", "--type", "sma_crossover")
    assert sid in out and "cli golden cross" in out
    listed = run_json(cli, "strategies", "ls", "--query", "golden")
    assert isinstance(listed, list) and sid in [s["id"] for s in listed]
    out, _ = cli("strategies", "rm", sid)
    assert f"deleted strategy {sid}" in out
    _, err = cli("strategies", "show", sid, code=1)
    assert "NOT_FOUND" in err
    _, err = cli("strategies", "create", "bad", "--type", "sma_crossover", "-p", "fast=80", code=1)
    assert "INVALID_ARGUMENT" in err and "strategy.parameters.fast" in err


# -- backtests ------------------------------------------------------------------------------


def test_backtest_local_output_is_readable(cli: Run, tmp_path: Path) -> None:
    cli("data", "sample", "btc", "--bars", "3000", "-o", "btc.csv")
    args = ["backtest", "--data", "btc.csv", "--strategy", "sma_crossover", "-p", "fast=10"]
    out, err = cli(*args, "-p", "slow=50", "--trades", "3", "--html", "bt.html")
    assert "2021-01-01 00:00 to 2021-05-05 23:00 UTC" in out and "3,000 bars of 1h" in out
    assert re.search(r"Final equity\s+[\d,]+\.\d\d", out)
    assert re.search(r"Total return\s+[+-][\d.]+%", out)
    assert re.search(r"Max drawdown\s+[\d.]+%", out)
    assert re.search(r"Longest drawdown\s+[\d.]+ (days|hours)", out), "a time, not bars"
    assert re.search(r"Trades\s+\d+\n", out) and ".0\n" not in out
    # The options used, defaults included; no costs: a warning.
    assert "cash 10,000.00, size 100% of equity, long only, commission 0.000%/side" in out
    assert "8,766 bars/year" in out and "commission and slippage are both 0" in err
    assert "3 trades" in out and "signal" in out
    assert (tmp_path / "bt.html").read_text().startswith("<!doctype html>")

    report = run_json(cli, *args, "-p", "slow=50", "--commission", "0.001", "--trades")
    assert isinstance(report, dict) and report["metrics"]["num_trades"] == len(report["trades"])
    assert isinstance(report["metrics"]["num_trades"], int) and report["bars"] == 3_000
    assert report["execution"]["commission"] == 0.001 and report["execution"]["periods_per_year"]

    _, err = cli(*args, "-p", "slow=5:50", code=2)
    assert "optimize --param slow=LOW:HIGH" in err
    _, err = cli("backtest", "--data", "nope", "--strategy", "sma_crossover", code=2)
    assert "no such file" in err and "--server" in err
    _, err = cli("backtest", "--data", "btc.csv", "--strategy-id", "x", code=2)
    assert "add --server" in err


def test_backtest_on_the_server_with_trades_and_report(
    cli: Run, dataset: str, tmp_path: Path
) -> None:
    args = ["backtest", "--server", "--data", dataset, "--strategy", "sma_crossover"]
    out, err = cli(
        *args, "-p", "fast=20", "--commission", "0.001", "--trades", "2", "--html", "r.html"
    )
    assert f"dataset {dataset}" in out and "20,000 bars of 1h" in out
    # The server echoes every option it used, the annualization included.
    assert "commission 0.100%/side" in out and "8,766 bars/year" in out
    assert "(inferred)" not in out and "both 0" not in err
    assert "2 trades" in out and (tmp_path / "r.html").stat().st_size > 1_000
    bid = re.search(r"backtest\s+([0-9a-f]{32})", out)
    assert bid, out

    body = run_json(cli, *args, "--trades", "4")
    assert isinstance(body, dict) and len(body["trades"]) == 4
    assert body["execution"]["initial_cash"] == 10_000 and body["execution"]["position_size"] == 1
    assert body["execution"]["direction"] == "TRADE_DIRECTION_LONG_ONLY"
    assert body["execution"]["periods_per_year"] == 8_766
    assert isinstance(body["metrics"]["num_trades"], int)

    for name in ("report.json", "report.csv", "report.html", "report.pdf"):
        out, _ = cli("report", "--backtest", bid.group(1), "-o", name)
        assert f"wrote {name}" in out and (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["backtest_id"] == bid.group(1)
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF-")
    out, _ = cli("report", "--backtest", bid.group(1), "-o", "equity.csv", "--table", "equity")
    assert (tmp_path / "equity.csv").read_text().startswith("time,equity,drawdown,close,")
    _, err = cli("report", "--backtest", bid.group(1), "-o", "report.txt", code=2)
    assert ".html, .json, .csv or .pdf" in err
    (tmp_path / "btc.csv").write_text("x")
    _, err = cli("backtest", "--server", "--data", "btc.csv", "--strategy", "x", code=2)
    assert "datasets import btc.csv" in err


# -- optimization jobs ---------------------------------------------------------------------


def test_optimize_ends_with_results_and_jobs_commands(
    cli: Run, dataset: str, srv: LiveServer, tmp_path: Path
) -> None:
    out, err = cli(
        "optimize", "--data", dataset, "--strategy", "sma_crossover", "--param", "fast=5:40",
        "--param", "slow=50:200", "--trials", "30", "--seed", "3", "--holdout", "0.2",
        "--walk-forward", "3", "--top", "3",
    )  # fmt: skip
    job_id = out.split()[1]
    assert "commission 0.100%/side" in out, "the default commission for optimize"
    assert "both 0" not in err
    for section in (
        "Best 3 trials",
        "Best parameters in and out of sample",
        "IN-SAMPLE",
        "OUT-OF-SAMPLE",
        "Walk-forward windows (out of sample)",
        "walk-forward efficiency",
        "Parameter importances",
        "deflated Sharpe ratio",
        "expected by chance from 30 trials",
    ):
        assert section in out, section
    assert "\x1b" not in out and "\r" not in out

    out, _ = cli("jobs", "ls")
    assert job_id in out and "30/30" in out and "succeeded" in out
    listed = run_json(cli, "jobs", "ls", "--state", "succeeded")
    assert isinstance(listed, list) and job_id in [j["id"] for j in listed]
    out, _ = cli("jobs", "show", job_id)
    assert "fast=5:40 slow=50:200" in out and "sharpe (max)" in out and "seed 3" in out
    out, _ = cli("jobs", "result", job_id, "--top", "2")
    assert "Best 2 trials" in out and "Parameter importances" in out
    result = run_json(cli, "jobs", "result", job_id)
    assert isinstance(result, dict) and result["job"]["trials_completed"] == 30
    assert result["validation"]["out_of_sample"] and len(result["top_trials"]) == 5
    out, _ = cli("jobs", "watch", job_id)
    assert "succeeded after 30 trials" in out and "Best 5 trials" in out
    out, _ = cli("report", "--job", job_id, "-o", "job.csv")
    assert "wrote job.csv" in out
    assert (tmp_path / "job.csv").read_text().count("\n") == 31  # a header and 30 trials

    # Several metrics: a Pareto front; zero costs: a warning.
    out, err = cli(
        "optimize", "--data", dataset, "--strategy", "sma_crossover", "--trials", "16",
        "--metric", "sharpe", "--metric", "max_drawdown:min", "--commission", "0",
    )  # fmt: skip
    assert "Pareto front" in out and "commission and slippage are both 0" in err

    started, _ = cli(
        "optimize",
        "--data",
        dataset,
        "--strategy",
        "sma_crossover",
        "--trials",
        "20000",
        "--detach",
    )
    long_job = started.strip()
    out, _ = cli("jobs", "cancel", long_job)
    assert long_job in out
    with srv.channel() as ch:
        stub, deadline = opt_grpc.OptimizationServiceStub(ch), time.monotonic() + 30
        request = opt_pb.GetJobRequest(job_id=long_job)
        while stub.GetJob(request, metadata=srv.md("trader")).job.state != (
            opt_pb.JOB_STATE_CANCELLED
        ):
            assert time.monotonic() < deadline, "the cancelled job did not stop"
            time.sleep(0.1)


def test_param_errors_point_to_the_documented_forms(cli: Run, dataset: str) -> None:
    base = ["optimize", "--data", dataset, "--strategy", "sma_crossover"]
    _, err = cli(*base, "--param", "fast=5-50", code=2)
    assert "fast=5:50" in err and "LOW:HIGH" in err
    _, err = cli(*base, "--param", "fast=5:x", code=2)
    assert "must be numbers" in err and "fast=5:50" in err
    _, err = cli(*base, "--param", "fast", code=2)
    assert "NAME=LOW:HIGH" in err


# -- exports --------------------------------------------------------------------------------


def test_export_pine_from_a_type_a_strategy_and_a_job(
    cli: Run, dataset: str, srv: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = cli("export", "pine", "--type", "sma_crossover", "-p", "fast=12", "-p", "slow=48")
    assert out.startswith("// Exported by stratopt") and "//@version=6" in out
    assert "input.int(12" in out and "input.int(48" in out
    # A type and parameters need no server: the address points nowhere.
    monkeypatch.setenv("STRATOPT_SERVER", "127.0.0.1:1")
    _, err = cli(
        "export", "pine", "--type", "sma_crossover", "--commission", "0.001", "-o", "a.pine"
    )
    assert (
        "wrote Pine Script v6" in err
        and "commission_value=0.1" in (tmp_path / "a.pine").read_text()
    )
    monkeypatch.setenv("STRATOPT_SERVER", srv.addr)

    sid, _ = cli("strategies", "create", "cli pine", "--type", "ema_crossover", "-q")
    out, _ = cli("export", "pine", "--strategy-id", sid.strip())
    assert "//@version=6" in out and "cli pine" in out
    job, _ = cli(
        "optimize", "--data", dataset, "--strategy", "sma_crossover", "--trials", "6", "--detach"
    )
    cli("jobs", "watch", job.strip())
    body = run_json(cli, "export", "pine", "--job", job.strip())
    assert isinstance(body, dict) and body["source"] == f"jobs/{job.strip()}"
    assert "//@version=6" in body["script"] and body["export_id"]
    _, err = cli("export", "pine", "--type", "nope", code=2)
    assert "unknown strategy type" in err


# -- help, completion, login ----------------------------------------------------------------


def test_help_lists_every_environment_variable_and_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for f in fields(Settings):
        assert f"STRATOPT_{f.name.upper()}" in text, f.name
    for name in ("STRATOPT_SERVER", "STRATOPT_TOKEN", "STRATOPT_API_KEY", "STRATOPT_PASSWORD"):
        assert name in text
    with pytest.raises(SystemExit):
        main(["backtest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10000.0)" in text and "(default: inferred from the bar spacing)" in text
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 200)" in text and "0.001 = 10 bps" in text


def test_completion_script_completes_commands_verbs_and_choices(tmp_path: Path) -> None:
    script = subprocess.run(
        [*STRATOPT, "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "c.bash").write_text(script)

    def complete(*words: str) -> list[str]:
        probe = (
            f"source {tmp_path / 'c.bash'}; COMP_WORDS=(stratopt {shlex.join(words)}); "
            f"COMP_CWORD={len(words)}; _stratopt_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert {"datasets", "data"} <= set(complete("da"))
    assert set(complete("jobs", "")) >= {"ls", "show", "cancel", "result", "watch"}
    assert {"btc", "spy", "eth", "--bars"} <= set(complete("datasets", "sample", ""))
    assert complete("datasets", "sample", "e") == ["eth"]
    assert "--strategy-id" in complete("backtest", "--str")
    assert complete("backtest", "--direction", "b") == ["both"]
    zsh = subprocess.run(
        [*STRATOPT, "completion", "zsh"], capture_output=True, text=True, check=True
    ).stdout
    assert zsh.startswith("#compdef stratopt") and "bashcompinit" in zsh


def test_login_without_a_terminal_is_a_clear_error(env: dict[str, str], srv: LiveServer) -> None:
    env = {k: v for k, v in env.items() if k != "STRATOPT_TOKEN"}
    for args in (["login"], ["login", "--username", "trader"]):
        done = subprocess.run(
            [*STRATOPT, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "no terminal" in done.stderr
    done = subprocess.run(
        [*STRATOPT, "login", "--username", "trader"],
        env={**env, "STRATOPT_PASSWORD": DEMO_PASSWORDS["trader"]},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and f"logged in to {srv.addr} as" in done.stdout


# -- progress -------------------------------------------------------------------------------


def _start_job(srv: LiveServer, dataset: str, trials: int) -> str:
    spec = opt_pb.OptimizationSpec(
        strategy_type="sma_crossover", dataset_id=dataset, trials=trials, seed=1
    )
    with srv.channel() as ch:
        job = opt_grpc.OptimizationServiceStub(ch).StartOptimization(
            opt_pb.StartOptimizationRequest(spec=spec), metadata=srv.md("trader")
        )
    return str(job.job.id)


def test_progress_on_a_pipe_is_plain_lines(
    env: dict[str, str], srv: LiveServer, dataset: str
) -> None:
    job = _start_job(srv, dataset, 120)
    done = subprocess.run(
        [*STRATOPT, "jobs", "watch", job], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    progress = [line for line in done.stdout.splitlines() if line.startswith(f"job {job} ")]
    assert progress[-1].startswith(f"job {job} succeeded after 120 trials")
    assert any("120/120 trials (100%)" in line for line in progress)


def _read_pty(cmd: list[str], env: dict[str, str], timeout: float = 120) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        cmd,
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**env, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode()


def test_progress_on_an_80_column_terminal_is_one_line_redrawn_in_place(
    env: dict[str, str], srv: LiveServer, dataset: str
) -> None:
    job = _start_job(srv, dataset, 600)
    text = _read_pty([*STRATOPT, "jobs", "watch", job], env)
    # The live part: from the first redraw to the line that ends it.
    start = text.index("\r\x1b[2K")
    end = text.index("\n", text.rindex("\r\x1b[2K"))
    frames = [f for f in text[start:end].split("\r\x1b[2K") if f]
    assert len(frames) >= 2, "redrawn in place"
    for frame in frames:
        visible = ANSI.sub("", frame)
        assert "\n" not in visible and len(visible) <= 80, repr(visible)
    last = ANSI.sub("", frames[-1])
    assert "succeeded" in last and "600/600" in last
    assert f"job {job} succeeded after 600 trials" in text
    # What follows the bar fits the terminal too.
    for line in ANSI.sub("", text[end:]).replace("\r", "").splitlines():
        assert len(line) <= 80, line
