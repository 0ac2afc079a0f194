"""The data folder holds password hashes (the SQLite file), datasets and exports: only the
server's own user may read it (issue 14: it was created 0755 with files 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stratopt.v1 import backtest_pb2 as bt_pb
from stratopt.v1 import backtest_pb2_grpc as bt_grpc
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc

from tests.conftest import start_server, stop_server


def loose(root: Path) -> list[str]:
    """Everything under root that its group or others may use."""
    out = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:  # a SQLite journal the running server has just removed
            continue
        if mode & 0o077:
            out.append(f"{path.relative_to(root.parent)} {mode:o}")
    return out


def test_the_data_folder_is_private(tmp_path: Path) -> None:
    data = tmp_path / "var"
    old = os.umask(0o022)  # what a typical login shell leaves
    try:
        srv = start_server(tmp_path, {"STRATOPT_DATA_DIR": str(data)})
    finally:
        os.umask(old)
    try:
        with srv.channel() as ch:
            md = srv.md("trader")
            ds = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
                md_pb.GenerateSyntheticDatasetRequest(name="private", bar_count=500, seed=1),
                metadata=md,
            )
            bt_grpc.BacktestServiceStub(ch).RunBacktest(
                bt_pb.RunBacktestRequest(strategy_type="sma_crossover", dataset_id=ds.dataset.id),
                metadata=md,
            )
        assert (data / "stratopt.db").exists() and any((data / "datasets").iterdir())
        assert loose(data) == []
    finally:
        stop_server(srv)


def test_an_existing_loose_folder_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "datasets").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    stray = data / "datasets" / "old.bars"
    stray.write_bytes(b"x")
    stray.chmod(0o644)
    srv = start_server(tmp_path, {"STRATOPT_DATA_DIR": str(data)})
    try:
        assert loose(data) == []
    finally:
        stop_server(srv)
