"""The paper broker: fills spelled out in order, flatten requests, exact snapshots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stratopt.engine.options import ExecutionOptions
from stratopt.live.broker import Fill, PaperBroker

FLAT = (100.0, 101.0, 99.0, 100.0)


def test_entry_at_next_open_then_stopped_in_the_same_bar() -> None:
    broker = PaperBroker(
        ExecutionOptions(initial_cash=1000.0, commission=0.001, slippage=0.001, stop_loss=0.05)
    )
    first = broker.on_bar(0, *FLAT, target=1)
    assert first.fills == () and first.side == 0 and first.equity == 1000.0
    update = broker.on_bar(1, 100.0, 100.5, 90.0, 92.0, target=1)
    entry_price = 100.0 * 1.001
    units = 1000.0 / (entry_price * 1.001)
    level = entry_price * 0.95
    assert update.fills == (
        Fill(1, "entry", "buy", units, entry_price, units * entry_price * 0.001, "signal"),
        Fill(1, "exit", "sell", units, level * 0.999, units * level * 0.999 * 0.001, "stop"),
    )
    (trade,) = update.trades
    assert (trade.entry_idx, trade.exit_idx, trade.bars_held, trade.exit_reason) == (
        1,
        1,
        0,
        "stop",
    )
    assert update.side == 0 and update.equity == update.cash == pytest.approx(1000 + trade.pnl)
    # Still long-minded, but blocked after the stop: no re-entry until the target changes.
    assert broker.on_bar(2, *FLAT, target=1).fills == ()
    broker.on_bar(3, *FLAT, target=0)
    broker.on_bar(4, *FLAT, target=1)
    assert broker.on_bar(5, *FLAT, target=1).fills[0].kind == "entry"


def test_reversal_on_close_reports_exit_then_entry() -> None:
    broker = PaperBroker(ExecutionOptions(direction="both", fill_on_close=True))
    opened = broker.on_bar(0, *FLAT, target=1)
    assert [f.kind for f in opened.fills] == ["entry"] and opened.side == 1
    update = broker.on_bar(1, 100.0, 103.0, 99.0, 102.0, target=-1)
    assert [(f.kind, f.side, f.reason) for f in update.fills] == [
        ("exit", "sell", "signal"),
        ("entry", "sell", "signal"),
    ]
    assert update.side == -1 and update.position < 0
    assert update.trades[0].pnl == pytest.approx(opened.position * 2.0)


def test_close_position_flattens_at_the_given_price() -> None:
    broker = PaperBroker(ExecutionOptions(commission=0.001))
    broker.on_bar(0, *FLAT, target=1)
    held = broker.on_bar(1, *FLAT, target=1)
    assert held.side == 1 and broker.entry_price == 100.0
    flat = broker.close_position(110.0)
    assert [(f.kind, f.reason, f.price) for f in flat.fills] == [("exit", "end", 110.0)]
    assert flat.bar_index == 1 and flat.side == 0 and flat.equity == flat.cash
    assert broker.entry_price is None
    assert broker.close_position(110.0).fills == ()  # nothing left to close
    with pytest.raises(ValueError, match="positive number"):
        broker.close_position(float("nan"))


def test_bar_indices_must_increase() -> None:
    broker = PaperBroker(ExecutionOptions())
    broker.on_bar(5, *FLAT, target=0)
    with pytest.raises(ValueError, match="not after bar 5"):
        broker.on_bar(5, *FLAT, target=0)


def test_snapshot_is_small_json_and_restores_exactly() -> None:
    options = ExecutionOptions(
        direction="both", commission=0.0007, slippage=0.0003, trailing_stop=0.02
    )
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    bars = [(c * 1.001, c * 1.01, c * 0.99, c) for c in closes]
    targets = np.sign(np.sin(np.arange(400) / 9.0)).astype(int)

    def run(broker: PaperBroker, start: int, stop: int) -> list[object]:
        return [broker.on_bar(t, *bars[t], target=int(targets[t])) for t in range(start, stop)]

    straight = PaperBroker(options)
    expected = run(straight, 0, 400)
    first = PaperBroker(options)
    head = run(first, 0, 173)
    data = first.snapshot()
    assert set(data) == {"version", "bar_index", "config", "state"}
    assert data["state"]["side"] in (-1, 0, 1) and isinstance(data["state"]["entry_idx"], int)
    resumed = PaperBroker.from_snapshot(json.loads(json.dumps(data)))
    assert head + run(resumed, 173, 400) == expected
    assert resumed.snapshot() == straight.snapshot()


def test_from_snapshot_rejects_garbage() -> None:
    data = PaperBroker(ExecutionOptions()).snapshot()
    with pytest.raises(ValueError, match="version"):
        PaperBroker.from_snapshot({**data, "version": 99})
    with pytest.raises(ValueError, match="state must have exactly"):
        PaperBroker.from_snapshot({**data, "state": {"cash": 1.0}})
    with pytest.raises(ValueError, match="non-finite"):
        PaperBroker.from_snapshot({**data, "state": {**data["state"], "cash": float("nan")}})
