"""The backup and restore procedure of docs/operations.md, run as written against a live
server: the restored copy serves the same users, strategies, datasets and exports."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from stratopt.v1 import export_pb2 as e_pb
from stratopt.v1 import export_pb2_grpc as e_grpc
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import start_server, stop_server


def backup(data: Path, dest: Path) -> None:
    """docs/operations.md: the database first (online), then the data folder's files."""
    dest.mkdir()
    source = sqlite3.connect(data / "stratopt.db")
    copy = sqlite3.connect(dest / "stratopt.db")
    source.backup(copy)
    copy.close()
    source.close()
    shutil.copytree(
        data, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("stratopt.db*", "*.log")
    )


def test_a_backup_taken_while_serving_restores_everything(tmp_path: Path) -> None:
    data = tmp_path / "var"
    srv = start_server(tmp_path, {"STRATOPT_DATA_DIR": str(data)})
    try:
        md = srv.md("trader")
        with srv.channel() as ch:
            ds = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
                md_pb.GenerateSyntheticDatasetRequest(name="kept", bar_count=800, seed=3),
                metadata=md,
            )
            strat = s_grpc.StrategyServiceStub(ch).CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(name="kept", strategy_type="sma_crossover")
                ),
                metadata=md,
            )
            pine = e_grpc.ExportServiceStub(ch).ExportPineScript(
                e_pb.ExportPineScriptRequest(strategy_id=strat.strategy.id), metadata=md
            )
        backup(data, tmp_path / "backup")  # the server is still running
    finally:
        stop_server(srv)

    restored_root = tmp_path / "restored"
    restored_root.mkdir()
    shutil.copytree(tmp_path / "backup", restored_root / "var")
    again = start_server(restored_root, {"STRATOPT_DATA_DIR": str(restored_root / "var")})
    try:
        md = again.md("trader")
        with again.channel() as ch:
            got = s_grpc.StrategyServiceStub(ch).GetStrategy(
                s_pb.GetStrategyRequest(strategy_id=strat.strategy.id), metadata=md
            )
            assert got.strategy.name == "kept"
            bars = md_grpc.MarketDataServiceStub(ch).GetDataset(
                md_pb.GetDatasetRequest(dataset_id=ds.dataset.id), metadata=md
            )
            assert bars.dataset.bar_count == 800
            body = b"".join(
                part.data
                for part in e_grpc.ExportServiceStub(ch).DownloadExportFile(
                    e_pb.DownloadExportFileRequest(export_id=pine.file.id), metadata=md
                )
            )
            assert body == pine.script.encode()
    finally:
        stop_server(again)
