"""StrategyService messages <-> strategy views and fields."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from stratopt.api.convert import (
    CATEGORY_TO_PB,
    RISK_TO_PB,
    enum_from_pb,
    execution_from_pb,
    execution_to_pb,
    fill_params,
    param_spec_to_pb,
    params_from_pb,
    ts_to_pb,
)
from stratopt.engine.options import ExecutionOptions
from stratopt.errors import FieldViolation
from stratopt.services.strategies import StrategyView
from stratopt.services.validation import StrategyFields
from stratopt.strategies.base import StrategyType
from stratopt.v1 import strategy_pb2 as pb

STATUS_TO_PB = {
    "draft": pb.STRATEGY_STATUS_DRAFT,
    "active": pb.STRATEGY_STATUS_ACTIVE,
    "archived": pb.STRATEGY_STATUS_ARCHIVED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
RUN_STATE_TO_PB = {
    "stopped": pb.RUN_STATE_STOPPED,
    "running": pb.RUN_STATE_RUNNING,
    "failed": pb.RUN_STATE_FAILED,
}
ENSEMBLE_TO_PB = {
    "weighted_vote": pb.ENSEMBLE_METHOD_WEIGHTED_VOTE,
    "unanimous": pb.ENSEMBLE_METHOD_UNANIMOUS,
    "majority": pb.ENSEMBLE_METHOD_MAJORITY,
}
ENSEMBLE_FROM_PB = {v: k for k, v in ENSEMBLE_TO_PB.items()}
SEVERITY_TO_PB = {
    "info": pb.ALERT_SEVERITY_INFO,
    "warning": pb.ALERT_SEVERITY_WARNING,
    "critical": pb.ALERT_SEVERITY_CRITICAL,
}
SEVERITY_FROM_PB = {v: k for k, v in SEVERITY_TO_PB.items()}
HISTORY_TO_PB = {
    "created": pb.HISTORY_ACTION_CREATED,
    "updated": pb.HISTORY_ACTION_UPDATED,
    "deleted": pb.HISTORY_ACTION_DELETED,
    "started": pb.HISTORY_ACTION_STARTED,
    "stopped": pb.HISTORY_ACTION_STOPPED,
    "shared": pb.HISTORY_ACTION_SHARED,
    "unshared": pb.HISTORY_ACTION_UNSHARED,
}


def fields_from_pb(s: pb.Strategy) -> StrategyFields:
    """The request's fields; bad execution options are reported with the other problems."""
    bad_execution: list[FieldViolation] = []
    execution = execution_from_pb(s.execution, "strategy.execution", bad_execution)
    return StrategyFields(
        name=s.name,
        description=s.description,
        strategy_type=s.strategy_type.strip(),
        parameters=params_from_pb(s.parameters, "strategy.parameters"),
        symbols=list(s.symbols),
        timeframe=s.timeframe,
        tags=list(s.tags),
        status=enum_from_pb(s.status, STATUS_FROM_PB, "strategy.status") or "draft",
        execution=execution,
        ensemble_members=[
            {"strategy_id": m.strategy_id, "weight": m.weight or 1.0} for m in s.ensemble_members
        ],
        ensemble_method=enum_from_pb(
            s.ensemble_method, ENSEMBLE_FROM_PB, "strategy.ensemble_method"
        ),
        alert_rules=[
            {
                "metric": r.metric,
                "op": r.op,
                "threshold": r.threshold,
                "severity": enum_from_pb(
                    r.severity, SEVERITY_FROM_PB, "strategy.alert_rules.severity"
                )
                or "warning",
            }
            for r in s.alert_rules
        ],
        rejected={"execution": bad_execution} if bad_execution else {},
    )


def strategy_to_pb(v: StrategyView) -> pb.Strategy:
    # A shallow view of the fields: strategy_dict_to_pb only reads them and copies what it
    # reads into the message; dataclasses.asdict deep-copied every nested value first (a
    # quarter of a GetStrategy servicer's own time).
    s = strategy_dict_to_pb(dict(vars(v)), v.owner_username)
    s.create_time.CopyFrom(ts_to_pb(v.created_at))
    s.update_time.CopyFrom(ts_to_pb(v.updated_at))
    s.etag = v.etag
    return s


class StrategyMessages:
    """`strategy_to_pb`, once per view object.

    GetStrategy's views come from the catalog's cache, which hands out the same object
    until its strategy changes, so most calls would convert the same view again (a sixth
    of the call's CPU). Holding the view keeps its id from being reused while it is here.
    The messages are shared: callers copy them into their response, never change them."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._by_view: OrderedDict[int, tuple[StrategyView, pb.Strategy]] = OrderedDict()

    def of(self, view: StrategyView) -> pb.Strategy:
        held = self._by_view.get(id(view))
        if held is not None and held[0] is view:
            self._by_view.move_to_end(id(view))
            return held[1]
        message = strategy_to_pb(view)
        self._by_view[id(view)] = (view, message)
        if len(self._by_view) > self._size:
            self._by_view.popitem(last=False)
        return message


def strategy_dict_to_pb(d: dict[str, Any], owner_username: str = "") -> pb.Strategy:
    """A strategy as `services.strategies.snapshot` records it (history snapshots)."""
    s = pb.Strategy(
        id=d["id"],
        name=d["name"],
        description=d.get("description", ""),
        strategy_type=d["strategy_type"],
        category=CATEGORY_TO_PB.get(d.get("category", ""), 0),  # type: ignore[arg-type]
        risk_level=RISK_TO_PB.get(d.get("risk_level", ""), 0),  # type: ignore[arg-type]
        symbols=d.get("symbols", []),
        timeframe=d.get("timeframe", ""),
        tags=d.get("tags", []),
        status=STATUS_TO_PB.get(d.get("status", ""), 0),  # type: ignore[arg-type]
        execution=execution_to_pb(ExecutionOptions.from_dict(d.get("execution", {}))),
        ensemble_method=ENSEMBLE_TO_PB.get(d.get("ensemble_method", ""), 0),  # type: ignore[arg-type]
        run_state=RUN_STATE_TO_PB.get(d.get("run_state", ""), 0),  # type: ignore[arg-type]
        owner_id=d.get("owner_id", ""),
        owner_username=owner_username,
        version=int(d.get("version", 0)),
        etag=f"v{d.get('version', 0)}",
    )
    fill_params(s.parameters, d.get("parameters", {}))
    for m in d.get("ensemble_members", []):
        s.ensemble_members.add(strategy_id=m["strategy_id"], weight=float(m.get("weight", 1.0)))
    for r in d.get("alert_rules", []):
        s.alert_rules.add(
            metric=r["metric"],
            op=r["op"],
            threshold=float(r["threshold"]),
            severity=SEVERITY_TO_PB.get(r.get("severity", ""), 0),  # type: ignore[arg-type]
        )
    return s


# Strategy types are frozen registry constants: each is converted once, not on every
# ListStrategyTypes (that was an eighth of the call's CPU). Keyed by identity and holding
# the type, so an id is never reused while cached; bounded for types made at run time.
_TYPE_PB: dict[int, tuple[StrategyType, pb.StrategyType]] = {}
_TYPE_PB_MAX = 1024


def strategy_type_to_pb(t: StrategyType) -> pb.StrategyType:
    """The message for `t`; shared between calls, so callers copy it (as assigning it to a
    field or a repeated field does) and never modify it."""
    hit = _TYPE_PB.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    out = _strategy_type_to_pb(t)
    if len(_TYPE_PB) >= _TYPE_PB_MAX:
        _TYPE_PB.clear()
    _TYPE_PB[id(t)] = (t, out)
    return out


def _strategy_type_to_pb(t: StrategyType) -> pb.StrategyType:
    out = pb.StrategyType(
        name=t.name,
        display_name=t.display_name,
        description=t.description,
        category=CATEGORY_TO_PB[t.category],  # type: ignore[arg-type]
        risk_level=RISK_TO_PB[t.risk_level],  # type: ignore[arg-type]
    )
    out.parameters.extend(param_spec_to_pb(p) for p in t.params)
    for con in t.constraints:
        out.constraints.add(left=con.left, op=con.op, right=con.right)
    return out
