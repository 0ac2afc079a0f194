"""`stratopt backtests` and `stratopt files` against a real server: a stored backtest shows
again exactly as `backtest --server` printed it, its trades page out whole or as a tail,
and it goes away with `rm`; an export file downloads to the same bytes `report` wrote,
under its own name or to stdout, and goes away with `rm`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc

from tests.conftest import LiveServer
from tests.integration.test_cli_commands import Run, cli, env, run_json, srv

_ = (cli, env, srv)  # fixtures shared with the other CLI tests


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    req = md_pb.GenerateSyntheticDatasetRequest(
        name="cli-stored", symbol="STORED", timeframe="1h", bar_count=3_000, seed=31
    )
    with srv.channel() as ch:
        reply = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            req, metadata=srv.md("trader")
        )
    return str(reply.dataset.id)


def server_backtest(cli: Run, dataset: str, *extra: str) -> tuple[str, str, str]:
    """Runs `backtest --server`; returns its id, stdout and stderr."""
    out, err = cli("backtest", "--server", "--data", dataset, "--strategy", "sma_crossover", *extra)
    found = re.search(r"backtest\s+([0-9a-f]{32})", out)
    assert found, out
    return found.group(1), out, err


def test_a_stored_backtest_shows_lists_pages_its_trades_and_goes(cli: Run, dataset: str) -> None:
    bid, ran, ran_err = server_backtest(cli, dataset, "-p", "fast=8", "--commission", "0.001")
    shown, shown_err = cli("backtests", "show", bid)
    assert shown == ran and shown_err == ran_err  # the very same summary
    assert "3,000 bars of 1h" in shown and "Sharpe" in shown and "commission 0.100%" in shown
    body = run_json(cli, "backtests", "show", bid)
    assert isinstance(body, dict) and body["id"] == bid and body["dataset_id"] == dataset
    assert body["parameters"]["fast"] == 8

    out, _ = cli("backtests", "ls")
    assert bid in out and "sma_crossover fast=8" in out
    listed = run_json(cli, "backtests", "ls", "--data", dataset, "--last", "0")
    assert isinstance(listed, list) and bid in [b["id"] for b in listed]
    assert run_json(cli, "backtests", "ls", "--data", "0" * 32) == []

    every = run_json(cli, "backtests", "trades", bid, "--last", "0")
    assert isinstance(every, list) and len(every) == body["trade_count"] > 3
    last3 = run_json(cli, "backtests", "trades", bid, "--last", "3")
    assert last3 == every[-3:]
    out, _ = cli("backtests", "trades", bid, "--last", "3")
    n = len(every)
    numbers = [line.split()[0] for line in out.splitlines() if re.match(r"\s*\d+ ", line)]
    assert f"the last 3 of {n:,} trades" in out and numbers == [str(n - 2), str(n - 1), str(n)]

    out, _ = cli("backtests", "rm", bid)
    assert f"deleted backtest {bid}" in out
    _, err = cli("backtests", "show", bid, code=1)
    assert "NOT_FOUND" in err


def test_a_resampled_backtest_shows_durations_in_bars_not_a_wrong_unit(
    cli: Run, dataset: str
) -> None:
    bid, ran, _ = server_backtest(cli, dataset, "--timeframe", "4h", "--commission", "0.001")
    assert "750 bars of 4h" in ran
    shown, _ = cli("backtests", "show", bid)
    assert "750 bars" in shown and "of 1h" not in shown
    assert re.search(r"Longest drawdown\s+[\d,.]+ bars", shown), shown
    cli("backtests", "rm", bid)


def test_files_get_writes_the_bytes_report_wrote(cli: Run, dataset: str, tmp_path: Path) -> None:
    bid, _, _ = server_backtest(cli, dataset, "--commission", "0.001")
    out, _ = cli("report", "--backtest", bid, "-o", "report.csv")
    export_id = re.search(r"export ([0-9a-f]{32})", out)
    assert export_id, out
    eid = export_id.group(1)
    wrote = (tmp_path / "report.csv").read_bytes()

    listed = run_json(cli, "files", "ls", "--kind", "report")
    assert isinstance(listed, list)
    record = next(f for f in listed if f["id"] == eid)
    assert record["sha256"] == hashlib.sha256(wrote).hexdigest()
    out, _ = cli("files", "ls")
    assert eid in out and "report" in out

    out, _ = cli("files", "get", eid, "-o", "copy.csv")
    assert f"wrote copy.csv ({len(wrote):,} bytes; export {eid})" in out
    assert (tmp_path / "copy.csv").read_bytes() == wrote
    out, _ = cli("files", "get", eid)  # under its own name
    own = tmp_path / record["file_name"]
    assert own.read_bytes() == wrote and f"wrote {record['file_name']}" in out
    _, err = cli("files", "get", eid, code=2)  # not over a file nobody named
    assert "exists" in err
    got = run_json(cli, "files", "get", eid, "-o", "again.csv")
    assert isinstance(got, dict) and got["file"]["id"] == eid and got["path"] == "again.csv"
    out, _ = cli("files", "get", eid, "-o", "-")
    assert out == wrote.decode()

    pine = run_json(cli, "export", "pine", "--type", "sma_crossover", "--server")
    assert isinstance(pine, dict)
    pines = run_json(cli, "files", "ls", "--kind", "pine")
    assert isinstance(pines, list) and [f["id"] for f in pines if f["id"] == pine["export_id"]]
    assert eid not in [f["id"] for f in pines]

    out, _ = cli("files", "rm", eid, pine["export_id"])
    assert f"deleted export {eid}" in out
    _, err = cli("files", "get", eid, "-o", "gone.csv", code=1)
    assert "NOT_FOUND" in err and not (tmp_path / "gone.csv").exists()
    cli("backtests", "rm", bid)
