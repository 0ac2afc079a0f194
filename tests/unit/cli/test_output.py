"""The CLI's formatting and argument parsing, without a server."""

from __future__ import annotations

import io

import pytest
from stratopt.v1 import backtest_pb2 as bpb
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import optimization_pb2 as pb

from stratopt.client import output as o
from stratopt.client.args import parse_params
from stratopt.client.optimize import parse_param
from stratopt.client.output import CliError
from stratopt.client.progress import JobProgress, plain_line


def test_metrics_read_as_percentages_times_and_integers() -> None:
    assert o.metric("total_return", -0.320854) == "-32.09%"
    assert o.metric("max_drawdown", 0.249) == "24.90%"
    assert o.metric("num_trades", 279.0) == "279"
    assert o.metric("final_equity", 74_921.456) == "74,921.46"
    assert o.metric("sharpe", 1.23456) == "1.23"
    assert o.metric("max_drawdown_duration", 16_634, 3600) == "693.1 days"
    assert o.metric("max_drawdown_duration", 30_000, 3600) == "3.4 years"
    assert o.metric("max_drawdown_duration", 48, 3600) == "2.0 days"
    assert o.metric("avg_trade_duration", 5, 3600) == "5.0 hours"
    assert o.metric("max_drawdown_duration", 16_634) == "16,634 bars"
    assert o.metric("winning_trades", 5.0) == "5" and o.metric("alpha", 0.0412) == "+4.12%"


def test_every_metric_of_the_contract_has_a_label_and_a_column() -> None:
    from stratopt.v1 import common_pb2

    names = {f.name for f in common_pb2.Metrics.DESCRIPTOR.fields}
    assert names <= set(o.LABELS)
    assert names <= set(o.LEFT_METRICS) | set(o.RIGHT_METRICS)


def test_money_has_separators_and_no_negative_zero() -> None:
    assert o.money(1234567.891) == "1,234,567.89"
    assert o.money(-12.5) == "-12.50"
    assert o.money(-1e-9) == o.money(0.004) == "0.00"  # a paper run's cash after buying
    assert o.money(float("nan")) == "-"


def test_execution_summary_names_every_option() -> None:
    text = o.execution_summary({"commission": 0.001, "direction": "both"}, 3600)
    for part in ("cash 10,000.00", "size 100% of equity", "long and short", "0.100%/side"):
        assert part in text
    assert "slippage 0.000%" in text and "no stops" in text
    assert "8,766 bars/year (inferred)" in text
    assert "stop-loss 5.00%" in o.execution_summary({"stop_loss": 0.05, "periods_per_year": 252})
    assert o.zero_costs({"commission": 0.0}) and not o.zero_costs({"slippage": 0.0005})


def test_json_keeps_proto_names_zeros_integers_and_plain_parameters() -> None:
    bt = bpb.Backtest(id="b", bar_count=5_000, metrics=c.Metrics(num_trades=62))
    bt.parameters["fast"].CopyFrom(c.ParameterValue(int_value=10))
    bt.parameters["mult"].CopyFrom(c.ParameterValue(double_value=2.5))
    d = o.proto_json(bt)
    assert d["bar_count"] == 5_000 and d["metrics"]["num_trades"] == 62
    assert d["metrics"]["total_return"] == 0 and d["parameters"] == {"fast": 10, "mult": 2.5}
    assert d["trade_count"] == 0 and d["strategy_id"] == ""  # present, even when zero


def test_param_errors_show_the_documented_forms() -> None:
    with pytest.raises(CliError, match=r"fast=5:50"):
        parse_param("fast=5-50")
    with pytest.raises(CliError, match="must be numbers"):
        parse_param("fast=a:b")
    with pytest.raises(CliError, match="LOW:HIGH or LOW:HIGH:STEP"):
        parse_param("fast=1:2:3:4")
    o_ = parse_param("fast=5:50:5")
    assert (o_.min, o_.max, o_.step) == (5, 50, 5)
    assert parse_param("source=close,open").choices == ["close", "open"]
    assert parse_param("slow=-5").fixed.int_value == -5
    assert parse_params(["fast=10", "mult=2.5", "source=close"]) == {
        "fast": 10,
        "mult": 2.5,
        "source": "close",
    }
    with pytest.raises(CliError, match="optimize --param fast=LOW:HIGH"):
        parse_params(["fast=5-50"])
    with pytest.raises(CliError, match="NAME=VALUE"):
        parse_params(["fast"])


def _job(done: int, state: int = pb.JOB_STATE_RUNNING) -> pb.Job:
    job = pb.Job(id="j1", state=state, trials_completed=done, trials_total=100, throughput=50)
    job.spec.objectives.add(metric="sharpe")
    if done:
        job.best_value = 1.5
        job.best_parameters["fast"].CopyFrom(c.ParameterValue(int_value=9))
    return job


def test_plain_progress_prints_lines_on_changes_and_every_tenth() -> None:
    out = io.StringIO()
    progress = JobProgress(out)
    assert not progress.tty
    for done in range(0, 101):
        progress.update(_job(done))
    progress.update(_job(100, pb.JOB_STATE_SUCCEEDED))
    progress.close()
    lines = out.getvalue().splitlines()
    assert 11 <= len(lines) <= 13, lines
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    assert lines[-1].startswith("job j1 succeeded, 100/100 trials (100%), best sharpe 1.5 (fast=9)")
    assert "50.0 trials/s" in plain_line(_job(40))
