"""CompareStrategies messages <-> `services.compare` values."""

from __future__ import annotations

from stratopt.api.backtest_convert import metrics_to_pb
from stratopt.api.convert import execution_from_pb, execution_to_pb, ns_to_pb, pb_to_ns
from stratopt.services.compare import Comparison, ComparisonSpec
from stratopt.v1 import strategy_pb2 as pb


def comparison_spec_from_pb(request: pb.CompareStrategiesRequest) -> ComparisonSpec:
    tr = request.time_range
    return ComparisonSpec(
        strategy_ids=tuple(i.strip() for i in request.strategy_ids),
        backtest_ids=tuple(i.strip() for i in request.backtest_ids),
        dataset_id=request.dataset_id.strip(),
        start_ns=pb_to_ns(tr.start_time, "time_range.start_time")
        if tr.HasField("start_time")
        else 0,
        end_ns=pb_to_ns(tr.end_time, "time_range.end_time") if tr.HasField("end_time") else 0,
        execution=execution_from_pb(request.execution, "execution"),
        rank_by=request.rank_by.strip(),
    )


def comparison_to_pb(result: Comparison) -> pb.CompareStrategiesResponse:
    out = pb.CompareStrategiesResponse(
        return_correlations=result.correlations,
        dataset_id=result.dataset_id,
        rank_by=result.rank_by,
    )
    for row in result.rows:
        out.rows.add(
            strategy_id=row.strategy_id,
            strategy_name=row.strategy_name,
            metrics=metrics_to_pb(row.metrics),
            rank=row.rank,
            backtest_id=row.backtest_id,
            execution=execution_to_pb(row.execution),
        )
    out.time_range.start_time.CopyFrom(ns_to_pb(result.start_ns))
    out.time_range.end_time.CopyFrom(ns_to_pb(result.end_ns))
    return out
