"""BacktestService: run, read, list and page trades of backtests."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from stratopt.api.backtest_convert import MC_FROM_PB, backtest_to_pb, equity_to_pb, trades_to_pb
from stratopt.api.context import current_principal
from stratopt.api.convert import enum_from_pb, execution_from_pb, params_from_pb, pb_to_ns
from stratopt.errors import InvalidArgument
from stratopt.services.backtests import BacktestCatalog, BacktestSpec
from stratopt.v1 import backtest_pb2 as pb
from stratopt.v1 import backtest_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext


class BacktestServicer(pbg.BacktestServiceServicer):
    def __init__(self, backtests: BacktestCatalog) -> None:
        self.backtests = backtests

    async def RunBacktest(
        self, request: pb.RunBacktestRequest, context: Ctx
    ) -> pb.RunBacktestResponse:
        tr, mc, wf = request.time_range, request.monte_carlo, request.walk_forward
        spec = BacktestSpec(
            strategy_id=request.strategy_id.strip(),
            strategy_type=request.strategy_type.strip(),
            parameters=params_from_pb(request.parameters, "parameters"),
            dataset_id=request.dataset_id.strip(),
            start_ns=pb_to_ns(tr.start_time, "time_range.start_time")
            if tr.HasField("start_time")
            else 0,
            end_ns=pb_to_ns(tr.end_time, "time_range.end_time") if tr.HasField("end_time") else 0,
            timeframe=request.timeframe.strip(),
            execution=execution_from_pb(request.execution, "execution"),
            mc_sims=mc.simulations,
            mc_method=enum_from_pb(mc.method, MC_FROM_PB, "monte_carlo.method") or "shuffle",
            mc_block=mc.block_size or 20,
            mc_seed=mc.seed,
            wf_windows=wf.windows,
            wf_anchored=wf.anchored,
            wf_in_sample=wf.in_sample_fraction or 0.7,
            wf_metric=wf.metric or "sharpe",
            wf_grid_points=wf.grid_points or 5,
            max_equity_points=request.max_equity_points or 1_000,
            trade_limit=request.trade_limit or 100,
            dry_run=request.dry_run,
        )
        out = await self.backtests.run(current_principal(), spec)
        msg = backtest_to_pb(out.row)
        if spec.dry_run:
            msg.id = ""
        msg.trades.extend(trades_to_pb(out.trades.head(spec.trade_limit)))
        if out.walk_forward_equity and not msg.walk_forward.out_of_sample_equity:
            msg.walk_forward.out_of_sample_equity.extend(equity_to_pb(out.walk_forward_equity))
        return pb.RunBacktestResponse(backtest=msg)

    async def GetBacktest(
        self, request: pb.GetBacktestRequest, context: Ctx
    ) -> pb.GetBacktestResponse:
        _require(request.backtest_id)
        row = await self.backtests.get(current_principal(), request.backtest_id)
        msg = backtest_to_pb(row)
        trades = await self.backtests.all_trades(row)
        msg.trades.extend(trades_to_pb(trades.head(100)))
        return pb.GetBacktestResponse(backtest=msg)

    async def ListBacktests(
        self, request: pb.ListBacktestsRequest, context: Ctx
    ) -> pb.ListBacktestsResponse:
        rows, token = await self.backtests.list_page(
            current_principal(),
            request.strategy_id,
            request.dataset_id,
            request.page_size,
            request.page_token,
        )
        return pb.ListBacktestsResponse(
            backtests=[backtest_to_pb(r, summary=True) for r in rows], next_page_token=token
        )

    async def ListBacktestTrades(
        self, request: pb.ListBacktestTradesRequest, context: Ctx
    ) -> pb.ListBacktestTradesResponse:
        _require(request.backtest_id)
        frame, token = await self.backtests.trades(
            current_principal(), request.backtest_id, request.page_size, request.page_token
        )
        return pb.ListBacktestTradesResponse(trades=trades_to_pb(frame), next_page_token=token)

    async def DeleteBacktest(
        self, request: pb.DeleteBacktestRequest, context: Ctx
    ) -> pb.DeleteBacktestResponse:
        _require(request.backtest_id)
        await self.backtests.delete(current_principal(), request.backtest_id)
        return pb.DeleteBacktestResponse()


def _require(value: str) -> None:
    if not value:
        raise InvalidArgument.field("backtest_id", "required")
