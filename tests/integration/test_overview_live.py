"""GetOverview's live figures on a fresh server: trades today, paper portfolio value and
open server streams, for the caller (everyone for admins)."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg
from stratopt.v1 import system_pb2 as pb
from stratopt.v1 import system_pb2_grpc as pbg

from tests.conftest import LiveServer


def overview(ch: grpc.Channel, srv: LiveServer, who: str) -> pb.GetOverviewResponse:
    return pbg.SystemServiceStub(ch).GetOverview(pb.GetOverviewRequest(), metadata=srv.md(who))


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_live_figures(fresh_server: LiveServer) -> None:
    srv = fresh_server
    with srv.channel() as ch:
        for who in ("trader", "admin", "viewer"):
            o = overview(ch, srv, who)
            assert (o.trades_today, o.paper_portfolio_value, o.open_stream_count) == (0, 0.0, 0)

        # Any server stream counts while it is open: the caller's, or everyone's for admins.
        system = pbg.SystemServiceStub(ch)
        data = md_grpc.MarketDataServiceStub(ch)
        ds = data.GenerateSyntheticDataset(
            md_pb.GenerateSyntheticDatasetRequest(name="ov", symbol="OV", bar_count=20_000, seed=5),
            metadata=srv.md("trader"),
        ).dataset
        notes = system.StreamNotifications(
            pb.StreamNotificationsRequest(), metadata=srv.md("trader")
        )
        bars = data.ReadBars(
            md_pb.ReadBarsRequest(dataset_id=ds.id, page_size=1), metadata=srv.md("trader")
        )
        next(bars)  # the stream is open and flow-controlled until read further
        try:
            eventually(lambda: overview(ch, srv, "trader").open_stream_count == 2)
            assert overview(ch, srv, "admin").open_stream_count == 2
            assert overview(ch, srv, "viewer").open_stream_count == 0
        finally:
            notes.cancel()
            bars.cancel()
        eventually(lambda: overview(ch, srv, "admin").open_stream_count == 0)

        # A running paper strategy: its equity and today's fills, until it stops.
        strategies = spbg.StrategyServiceStub(ch)
        strategy = strategies.CreateStrategy(
            spb.CreateStrategyRequest(
                strategy=spb.Strategy(
                    name="ov-fast",
                    strategy_type="sma_crossover",
                    parameters={
                        "fast": c.ParameterValue(int_value=3),
                        "slow": c.ParameterValue(int_value=8),
                    },
                )
            ),
            metadata=srv.md("trader"),
        ).strategy
        strategies.StartStrategy(
            spb.StartStrategyRequest(
                strategy_id=strategy.id, dataset_id=ds.id, bars_per_second=200
            ),
            metadata=srv.md("trader"),
        )
        try:
            eventually(lambda: overview(ch, srv, "trader").trades_today >= 2)
            o = overview(ch, srv, "trader")
            assert o.paper_portfolio_value == pytest.approx(10_000.0, rel=0.5)
            fills = strategies.ListFills(
                spb.ListFillsRequest(strategy_id=strategy.id, page_size=1000),
                metadata=srv.md("trader"),
            ).fills
            assert o.trades_today <= len(fills)  # fills keep coming after the overview
            assert overview(ch, srv, "admin").trades_today >= o.trades_today
            viewer = overview(ch, srv, "viewer")
            assert (viewer.trades_today, viewer.paper_portfolio_value) == (0, 0.0)
        finally:
            strategies.StopStrategy(
                spb.StopStrategyRequest(strategy_id=strategy.id), metadata=srv.md("trader")
            )
        o = overview(ch, srv, "trader")
        assert (o.trades_today, o.paper_portfolio_value) == (0, 0.0)
