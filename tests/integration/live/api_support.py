"""Helpers for the live API tests: stubs, strategies, waiting for runs, paging, errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from stratopt.v1 import backtest_pb2_grpc as bg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg
from stratopt.v1 import system_pb2_grpc as yg

from tests.conftest import LiveServer
from tests.integration.helpers import call_error

T = TypeVar("T")

# Every refusal of the live API is one of these; never INTERNAL or UNKNOWN.
CLEAR_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass
class Api:
    srv: LiveServer
    channel: grpc.Channel
    strategies: sg.StrategyServiceStub
    data: mg.MarketDataServiceStub
    backtests: bg.BacktestServiceStub
    system: yg.SystemServiceStub

    @classmethod
    def open(cls, srv: LiveServer) -> Api:
        ch = srv.channel()
        return cls(
            srv,
            ch,
            sg.StrategyServiceStub(ch),
            mg.MarketDataServiceStub(ch),
            bg.BacktestServiceStub(ch),
            yg.SystemServiceStub(ch),
        )

    def close(self) -> None:
        self.channel.close()

    def dataset(self, name: str, bars: int = 600, seed: int = 11, symbol: str = "SYN") -> str:
        return str(
            self.data.GenerateSyntheticDataset(
                mpb.GenerateSyntheticDatasetRequest(
                    name=name, symbol=symbol, bar_count=bars, seed=seed, timeframe="1h"
                ),
                metadata=self.srv.md("trader"),
            ).dataset.id
        )

    def strategy(
        self, name: str, stype: str = "sma_crossover", who: str = "trader", **kw: Any
    ) -> str:
        return str(
            self.strategies.CreateStrategy(
                spb.CreateStrategyRequest(
                    strategy=spb.Strategy(name=name, strategy_type=stype, **kw)
                ),
                metadata=self.srv.md(who),
            ).strategy.id
        )

    def start(self, strategy_id: str, who: str = "trader", **kw: Any) -> spb.StartStrategyResponse:
        resp: spb.StartStrategyResponse = self.strategies.StartStrategy(
            spb.StartStrategyRequest(strategy_id=strategy_id, **kw), metadata=self.srv.md(who)
        )
        return resp

    def stop(self, strategy_id: str, who: str = "trader", close_position: bool = False) -> None:
        self.strategies.StopStrategy(
            spb.StopStrategyRequest(strategy_id=strategy_id, close_position=close_position),
            metadata=self.srv.md(who),
        )

    def performance(self, strategy_id: str, who: str = "trader") -> spb.PerformanceSnapshot:
        return self.strategies.GetPerformance(
            spb.GetPerformanceRequest(strategy_id=strategy_id), metadata=self.srv.md(who)
        ).performance

    def wait_stopped(self, strategy_id: str, timeout: float = 60.0) -> spb.PerformanceSnapshot:
        deadline = time.monotonic() + timeout
        while True:
            p = self.performance(strategy_id)
            if p.run_state != spb.RUN_STATE_RUNNING:
                return p
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{strategy_id} still running after {timeout:.0f} s "
                    f"({p.bars_processed} bars processed); what the server logged besides "
                    f"calls:\n{self.server_notes()}"
                )
            time.sleep(0.05)

    def server_notes(self, last: int = 60) -> str:
        """The server log's last lines other than one line per call: the clue when a run
        does not end (a failed commit, a lost heartbeat, a replay that died)."""
        lines = [ln for ln in self.srv.logs().splitlines() if '"logger": "stratopt.rpc"' not in ln]
        return "\n".join(lines[-last:])

    def fills(self, strategy_id: str, who: str = "trader", page_size: int = 1000) -> list[spb.Fill]:
        return pages(
            lambda token: self.strategies.ListFills(
                spb.ListFillsRequest(
                    strategy_id=strategy_id, page_size=page_size, page_token=token
                ),
                metadata=self.srv.md(who),
            ),
            "fills",
        )

    def signals(
        self, strategy_id: str, who: str = "trader", page_size: int = 1000
    ) -> list[spb.Signal]:
        return pages(
            lambda token: self.strategies.ListSignals(
                spb.ListSignalsRequest(
                    strategy_id=strategy_id, page_size=page_size, page_token=token
                ),
                metadata=self.srv.md(who),
            ),
            "signals",
        )


def pages(call: Callable[[str], Any], field: str) -> list[Any]:
    """Every item of a paged List call."""
    out: list[Any] = []
    token = ""
    for _ in range(10_000):
        page = call(token)
        out.extend(getattr(page, field))
        token = page.next_page_token
        if not token:
            return out
    raise AssertionError("paging never ended")


def eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {what}"
        time.sleep(0.05)


def refused(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The error of a call that must fail with a clear status (never INTERNAL/UNKNOWN)."""
    err = call_error(fn, *args, **kwargs)
    assert err.code() in CLEAR_CODES, f"{err.code()}: {err.details()}"
    return err


def stream_error(stream: Iterator[Any]) -> grpc.RpcError:
    """The error a server stream ends with (it must fail before yielding anything)."""
    try:
        for item in stream:
            raise AssertionError(f"expected an error, got {item}")
    except grpc.RpcError as e:
        assert e.code() in CLEAR_CODES, f"{e.code()}: {e.details()}"
        return e
    raise AssertionError("expected the stream to fail")


def iv(x: int) -> c.ParameterValue:
    return c.ParameterValue(int_value=x)
