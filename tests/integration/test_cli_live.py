"""`stratopt live` against a real server: start a stored strategy on a replay, follow its
signals and performance until the replay ends, read its fills and alerts, stop a run, and
the errors a person gets for a wrong id or a missing bar source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc

from tests.conftest import LiveServer
from tests.integration.test_cli_commands import Run, cli, env, run_json, srv

_ = (cli, env, srv)  # fixtures shared with the other CLI tests

BARS = 300


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    req = md_pb.GenerateSyntheticDatasetRequest(
        name="cli-live", symbol="LIVE", timeframe="1h", bar_count=BARS, seed=21
    )
    with srv.channel() as ch:
        reply = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            req, metadata=srv.md("trader")
        )
    return str(reply.dataset.id)


def stored_strategy(cli: Run, name: str) -> str:
    out, _ = cli(
        "strategies", "create", name, "--type", "sma_crossover", "-p", "fast=5", "-p", "slow=20",
        "--symbol", "LIVE", "-q",
    )  # fmt: skip
    return out.strip()


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def until_signals(cli: Run, sid: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not run_json(cli, "live", "signals", sid):
        assert time.monotonic() < deadline, "no signal yet"
        time.sleep(0.1)


def test_a_replay_followed_from_start_to_end(cli: Run, dataset: str) -> None:
    sid = stored_strategy(cli, "live cli replay")
    out, _ = cli("live", "start", sid, "--data", dataset, "--speed", "100", "--commission", "0.001")
    assert f"paper trading live cli replay ({sid}) on a replay of {dataset} at 100 bars/s" in out
    assert "commission 0.100%/side" in out, out  # the override, with every other default

    # The signals so far, then each new one as it comes, until the replay ends: every
    # signal once, in order, none lost between the list and the stream.
    until_signals(cli, sid)
    out, _ = cli("live", "signals", sid, "--follow", "--json", "--last", "0")
    followed = json_lines(out)
    recorded = run_json(cli, "live", "signals", sid, "--last", "0")
    assert isinstance(recorded, list) and len(recorded) >= 4
    seqs = [s["sequence"] for s in followed]
    assert seqs == [s["sequence"] for s in recorded] == list(range(1, len(recorded) + 1))

    status, _ = cli("live", "status", sid)
    assert "stopped" in status and f"{BARS:,}" in status and "Sharpe" in status, status
    watched, _ = cli("live", "watch", sid)  # a stopped run: its last snapshot, then the end
    assert len(watched.splitlines()) == 1 and "stopped" in watched

    out, _ = cli("live", "signals", sid, "--last", "3")
    assert "ACTION" in out and sum(line.count("LIVE") for line in out.splitlines()) == 3
    fills = run_json(cli, "live", "fills", sid)
    assert isinstance(fills, list) and fills and {f["symbol"] for f in fills} == {"LIVE"}
    assert all(f["fee"] > 0 for f in fills)  # the commission given at the start
    out, _ = cli("live", "alerts", sid)
    assert "end of its dataset" in out and "1970" not in out, out
    alerts = run_json(cli, "live", "alerts", sid, "--last", "0")
    assert isinstance(alerts, list)
    started = next(a for a in alerts if a["title"] == "Strategy started")
    assert "time" not in started  # raised before the first bar: it has no bar time
    ended = next(a for a in alerts if "end of its dataset" in a["message"])
    assert str(ended["time"]).startswith("20")


def test_watch_follows_a_running_replay_and_stop_closes_the_position(
    cli: Run, dataset: str
) -> None:
    sid = stored_strategy(cli, "live cli watch")
    cli("live", "start", sid, "--data", dataset, "--speed", "150")
    out, _ = cli("live", "watch", sid, "--json")
    snapshots = json_lines(out)
    bars = [int(s["bars_processed"]) for s in snapshots]  # type: ignore[call-overload]
    assert len(snapshots) >= 2 and bars == sorted(bars) and bars[-1] == BARS
    assert snapshots[-1]["run_state"] == "RUN_STATE_STOPPED"

    cli("live", "start", sid, "--data", dataset, "--speed", "2")
    out, _ = cli("live", "stop", sid, "--close")
    assert "stopped live cli watch" in out and "flat" in out, out
    shown = run_json(cli, "live", "status", sid)
    assert isinstance(shown, dict) and shown["run_state"] == "RUN_STATE_STOPPED"
    assert shown["position"] == 0


def test_errors_say_what_is_wrong(cli: Run, dataset: str) -> None:
    _, err = cli("live", "start", "no-such-strategy", "--data", dataset, code=1)
    assert "NOT_FOUND" in err
    sid = stored_strategy(cli, "live cli errors")
    _, err = cli("live", "stop", sid, code=1)
    assert "FAILED_PRECONDITION" in err or "not running" in err, err
    with pytest.raises(SystemExit) as exit_info:  # argparse: --data or --feed is required
        cli("live", "start", sid)
    assert exit_info.value.code == 2


def test_a_push_feed_fed_from_a_file(cli: Run, tmp_path: Path) -> None:
    cli("data", "sample", "btc", "--bars", str(BARS), "-o", "btc.csv")
    out, _ = cli("feeds", "create", "bridge", "--symbol", "BTCUSD", "--timeframe", "1h", "-q")
    feed = out.strip()
    sid = stored_strategy(cli, "live cli push")
    out, _ = cli("live", "start", sid, "--feed", feed)
    assert f"on feed {feed}" in out, out

    out, _ = cli("feeds", "push", feed, "btc.csv", "--symbol", "BTCUSD")
    assert f"pushed {BARS} bars of BTCUSD: {BARS} accepted, 0 rejected" in out, out
    deadline = time.monotonic() + 20
    while run_json(cli, "live", "status", sid)["bars_processed"] != BARS:  # type: ignore[index]
        assert time.monotonic() < deadline, "the strategy did not trade every pushed bar"
        time.sleep(0.1)
    assert run_json(cli, "live", "signals", sid)  # it traded the pushed bars

    # The same bars again: each refused on its own, with its row and reason.
    out, _ = cli("feeds", "push", feed, "btc.csv", "--symbol", "BTCUSD")
    assert f"0 accepted, {BARS} rejected" in out and "REASON" in out, out
    shown = run_json(cli, "feeds", "show", feed)
    assert isinstance(shown, dict)
    assert (shown["bars_accepted"], shown["bars_rejected"]) == (BARS, BARS)
    assert shown["running_strategy_count"] == 1
    assert feed in [f["id"] for f in run_json(cli, "feeds", "ls")]  # type: ignore[union-attr]

    # Paced: one bar every 1/rate seconds on an open stream.
    (tmp_path / "eth.csv").write_text(
        (tmp_path / "btc.csv").read_text().splitlines(keepends=True)[0]
        + "".join((tmp_path / "btc.csv").read_text().splitlines(keepends=True)[1:21])
    )
    paced = cli("feeds", "create", "paced", "--symbol", "ETHUSD", "-q")[0].strip()
    start = time.monotonic()
    out, _ = cli("feeds", "push", paced, "eth.csv", "--symbol", "ETHUSD", "--rate", "40")
    assert "20 accepted" in out and time.monotonic() - start >= 19 / 40

    cli("live", "stop", sid)
    out, _ = cli("feeds", "rm", feed, paced)
    assert f"deleted feed {feed}" in out and f"deleted feed {paced}" in out


def test_a_shared_replay_feed(cli: Run, dataset: str) -> None:
    out, _ = cli("feeds", "create", "shared", "--data", dataset, "--speed", "50")
    assert "replay" in out and f"dataset {dataset} at 50 bars/s" in out, out
    feed = run_json(cli, "feeds", "ls")[-1]["id"]  # type: ignore[index]
    cli("feeds", "rm", feed)


def test_feed_and_time_errors(cli: Run, dataset: str, tmp_path: Path) -> None:
    _, err = cli("feeds", "show", "no-such-feed", code=1)
    assert "NOT_FOUND" in err
    _, err = cli("feeds", "push", "no-such-feed", "missing.csv", "--symbol", "X", code=2)
    assert "missing.csv: no such file" in err
    (tmp_path / "bad.csv").write_text("timestamp,open,high,low,close,volume\nyesterday,1,2,3,4,5\n")
    _, err = cli("feeds", "push", "no-such-feed", "bad.csv", "--symbol", "X", code=2)
    assert "bad.csv:" in err
    sid = stored_strategy(cli, "live cli bad time")
    _, err = cli("live", "start", sid, "--data", dataset, "--from", "soon", code=2)
    assert "--from 'soon': expected a time such as 2021-03-01" in err
