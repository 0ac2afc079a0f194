"""`stratopt strategies` past ls/show/create/rm, against a real server: update (only the
fields given, merged parameters and execution, the etag guard), alert rules, history,
sharing with another user, templates, categories, ensembles and comparisons, and the
errors a person gets for a wrong id, a stale etag or a malformed --alert."""

from __future__ import annotations

import re

import pytest
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc

from tests.conftest import LiveServer
from tests.integration.test_cli_commands import Run, cli, env, run_json, srv

_ = (cli, env, srv)  # fixtures shared with the other CLI tests

MISSING = "0" * 32


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    req = md_pb.GenerateSyntheticDatasetRequest(
        name="cli-strategies", symbol="STRAT", timeframe="1h", bar_count=800, seed=5
    )
    with srv.channel() as ch:
        reply = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            req, metadata=srv.md("trader")
        )
    return str(reply.dataset.id)


def stored(cli: Run, name: str, *extra: str) -> str:
    out, _ = cli(
        "strategies", "create", name, "--type", "sma_crossover", "-p", "fast=5", "-p", "slow=20",
        "--symbol", "STRAT", "--timeframe", "1h", "--tag", "trend", "--commission", "0.001",
        *extra, "-q",
    )  # fmt: skip
    return out.strip()


def shown(cli: Run, sid: str) -> dict[str, object]:
    s = run_json(cli, "strategies", "show", sid)
    assert isinstance(s, dict)
    return s


def as_user(monkeypatch: pytest.MonkeyPatch, srv: LiveServer, username: str) -> None:
    """The next commands run with `username`'s token (the `cli` fixture's env is the trader)."""
    monkeypatch.setenv("STRATOPT_TOKEN", srv.token(username))


# -- update ---------------------------------------------------------------------------------------


def test_update_changes_only_the_fields_given(cli: Run) -> None:
    sid = stored(cli, "cli-upd merge", "--slippage", "0.0005", "--description", "kept")
    out, _ = cli(
        "strategies", "update", sid, "--name", "cli-upd merged", "-p", "fast=8",
        "--commission", "0.002", "--status", "active", "--tag", "a", "--tag", "b",
    )  # fmt: skip
    assert f"updated cli-upd merged ({sid}) to version 2" in out, out
    assert "parameters fast=8 slow=20" in out and "status active" in out, out

    s = shown(cli, sid)
    # Given: changed. Merged: slow kept beside fast, slippage kept beside commission.
    assert s["name"] == "cli-upd merged" and s["parameters"] == {"fast": 8, "slow": 20}
    assert s["tags"] == ["a", "b"] and s["status"] == "STRATEGY_STATUS_ACTIVE"
    execution = s["execution"]
    assert isinstance(execution, dict)
    assert (execution["commission"], execution["slippage"]) == (0.002, 0.0005)
    # Not given: untouched.
    assert s["description"] == "kept" and s["symbols"] == ["STRAT"] and s["timeframe"] == "1h"
    assert s["version"] == 2
    out, _ = cli("strategies", "show", sid)
    assert "fast=8 slow=20" in out and "commission=0.002" in out and "slippage=0.0005" in out

    # Resets: parameters back to the type's defaults, execution to the engine's.
    updated = run_json(
        cli, "strategies", "update", sid, "--reset-params", "--reset-execution", "--no-tags"
    )
    assert isinstance(updated, dict) and updated["version"] == 3
    assert updated["parameters"] == {"fast": 10, "slow": 50} and updated["tags"] == []
    assert updated["execution"]["set_fields"] == ""  # type: ignore[index]  # none set
    out, _ = cli("strategies", "update", sid, "--status", "active")
    assert "nothing changed" in out and shown(cli, sid)["version"] == 3


def test_update_errors_are_clear(cli: Run) -> None:
    sid = stored(cli, "cli-upd errors")
    _, err = cli("strategies", "update", sid, code=2)
    assert "nothing to update" in err and "Traceback" not in err
    _, err = cli("strategies", "update", MISSING, "--name", "x", code=1)
    assert "NOT_FOUND" in err
    _, err = cli("strategies", "update", sid, "-p", "fast=80", code=1)
    assert "INVALID_ARGUMENT" in err and "fast" in err, err
    _, err = cli("strategies", "update", sid, "-p", "fast", code=2)
    assert "expected NAME=VALUE" in err
    assert shown(cli, sid)["version"] == 1  # none of them changed anything


def test_a_stale_etag_is_refused_and_nothing_changes(cli: Run) -> None:
    sid = stored(cli, "cli-upd etag")
    etag = shown(cli, sid)["etag"]
    assert etag == "v1"
    cli("strategies", "update", sid, "--description", "someone else's change")
    _, err = cli("strategies", "update", sid, "--etag", str(etag), "--name", "mine", code=1)
    assert "is no longer at etag v1" in err and "your update was not applied" in err, err
    assert "Traceback" not in err
    s = shown(cli, sid)
    assert s["name"] == "cli-upd etag" and s["description"] == "someone else's change"
    out, _ = cli("strategies", "update", sid, "--etag", "v2", "--name", "cli-upd etag 2")
    assert "to version 3" in out


# -- alert rules ----------------------------------------------------------------------------------


def test_alert_rules_on_create_update_show_and_cleared(cli: Run) -> None:
    sid = stored(
        cli, "cli-alerts", "--alert", "max_drawdown>0.2:critical", "--alert", "equity <= 9000"
    )
    out, _ = cli("strategies", "show", sid)
    assert "max_drawdown > 0.2 (critical); equity <= 9000 (warning)" in out, out
    rules = shown(cli, sid)["alert_rules"]
    assert rules == [
        {"metric": "max_drawdown", "op": ">", "threshold": 0.2,
         "severity": "ALERT_SEVERITY_CRITICAL"},
        {"metric": "equity", "op": "<=", "threshold": 9000.0,
         "severity": "ALERT_SEVERITY_WARNING"},
    ]  # fmt: skip

    out, _ = cli("strategies", "update", sid, "--alert", "total_return<-10%:info")
    assert "alert_rules total_return < -0.1 (info)" in out, out
    assert [r["metric"] for r in shown(cli, sid)["alert_rules"]] == ["total_return"]  # type: ignore[union-attr]
    cli("strategies", "update", sid, "--no-alerts")
    s = shown(cli, sid)
    assert s["alert_rules"] == [] and s["version"] == 3
    out, _ = cli("strategies", "show", sid)
    assert re.search(r"alerts\s+-\n", out), out


def test_a_bad_alert_is_a_usage_error(cli: Run) -> None:
    for bad, says in (
        ("max_drawdown=0.2", "expected METRIC<OP>THRESHOLD"),
        ("max_drawdown>", "is not a number"),
        ("max_drawdown>lots", "is not a number"),
        ("max_drawdown>0.2:fatal", "'fatal' is not one of info, warning, critical"),
        (">0.2", "expected METRIC<OP>THRESHOLD"),
    ):
        _, err = cli("strategies", "create", "cli-bad-alert", "--type", "sma_crossover",
                     "--alert", bad, code=2)  # fmt: skip
        assert says in err and "Traceback" not in err, (bad, err)
    sid = stored(cli, "cli-alert unknown metric")
    _, err = cli("strategies", "update", sid, "--alert", "max_drawdwn>0.2", code=1)
    assert "INVALID_ARGUMENT" in err and "alert_rules[0].metric" in err, err
    with pytest.raises(SystemExit) as exit_info:  # argparse: one or the other
        cli("strategies", "update", sid, "--alert", "max_drawdown>0.2", "--no-alerts")
    assert exit_info.value.code == 2
    assert shown(cli, sid)["version"] == 1


# -- history and sharing --------------------------------------------------------------------------


def test_history_lists_every_version(cli: Run) -> None:
    sid = stored(cli, "cli-history")
    cli("strategies", "update", sid, "-p", "fast=7")
    cli("strategies", "update", sid, "--status", "archived", "--timeframe", "4h")
    out, _ = cli("strategies", "history", sid)
    lines = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s", line)]
    assert [(w[0], w[1], w[2]) for w in lines] == [
        ("3", "updated", "trader"),
        ("2", "updated", "trader"),
        ("1", "created", "trader"),
    ], out
    assert "timeframe, status" in out and "parameters" in out
    events = run_json(cli, "strategies", "history", sid)
    assert isinstance(events, list) and len(events) == 3
    newest = events[0]
    assert newest["action"] == "HISTORY_ACTION_UPDATED" and newest["version"] == 3
    assert newest["changed_fields"] == ["timeframe", "status"]
    assert newest["snapshot"]["timeframe"] == "4h" and newest["actor_username"] == "trader"
    assert events[1]["snapshot"]["parameters"] == {"fast": 7, "slow": 20}
    _, err = cli("strategies", "history", MISSING, code=1)
    assert "NOT_FOUND" in err


def test_a_share_lets_another_user_see_it_until_unshared(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = stored(cli, "cli-shared")
    out, _ = cli("strategies", "shares", sid)
    assert "not shared with anyone" in out
    as_user(monkeypatch, srv, "analyst")
    _, err = cli("strategies", "show", sid, code=1)
    assert "NOT_FOUND" in err

    as_user(monkeypatch, srv, "trader")
    out, _ = cli("strategies", "share", sid, "analyst")
    assert out.strip() == f"shared strategy {sid} with analyst: read"
    share = run_json(cli, "strategies", "share", sid, "analyst", "-a", "execute")
    assert isinstance(share, dict) and share["username"] == "analyst"
    assert share["access"] == ["STRATEGY_ACCESS_READ", "STRATEGY_ACCESS_EXECUTE"]
    out, _ = cli("strategies", "shares", sid)
    assert re.search(r"analyst\s+read, execute\s+20\d\d-", out), out
    assert [s["username"] for s in run_json(cli, "strategies", "shares", sid)] == ["analyst"]  # type: ignore[union-attr]

    as_user(monkeypatch, srv, "analyst")
    assert shown(cli, sid)["name"] == "cli-shared"
    _, err = cli("strategies", "update", sid, "--name", "analyst's", code=1)
    assert "PERMISSION_DENIED" in err, err

    as_user(monkeypatch, srv, "trader")
    cli("strategies", "share", sid, "viewer")
    gone = run_json(cli, "strategies", "unshare", sid, "viewer")
    assert gone == {"strategy_id": sid, "unshared": "viewer"}
    out, _ = cli("strategies", "unshare", sid, "analyst")
    assert f"analyst no longer has access to strategy {sid}" in out
    out, _ = cli("strategies", "history", sid)
    events = [line.split()[1] for line in out.splitlines() if re.match(r"\s*1\s", line)]
    assert events == ["unshared", "unshared", "shared", "shared", "shared", "created"], out
    assert run_json(cli, "strategies", "shares", sid) == []
    as_user(monkeypatch, srv, "analyst")
    _, err = cli("strategies", "show", sid, code=1)
    assert "NOT_FOUND" in err
    as_user(monkeypatch, srv, "trader")
    _, err = cli("strategies", "share", sid, "nobody-by-this-name", code=1)
    assert "NOT_FOUND: user 'nobody-by-this-name' not found" in err, err
    for verb in ("shares", "share", "unshare"):
        _, err = cli(
            "strategies", verb, MISSING, *(["analyst"] if verb != "shares" else []), code=1
        )
        assert "NOT_FOUND" in err, (verb, err)


# -- templates, categories, ensembles, comparisons ------------------------------------------------


def test_templates_and_categories(cli: Run) -> None:
    out, _ = cli("strategies", "templates")
    assert re.search(
        r"golden-cross\s+Golden cross \(50/200 SMA\)\s+sma_crossover\s+fast=50 slow=200", out
    )
    assert "create NAME --template ID" in out
    templates = run_json(cli, "strategies", "templates", "--type", "ema_crossover")
    assert isinstance(templates, list) and [t["id"] for t in templates] == ["fast-ema-cross"]
    assert templates[0]["parameters"] == {"fast": 12, "slow": 26}
    by_category = run_json(cli, "strategies", "templates", "--category", "breakout")
    assert [t["strategy_type"] for t in by_category] == ["donchian_breakout"]  # type: ignore[union-attr]

    sid = stored(cli, "cli-categories")
    out, _ = cli("strategies", "categories")
    assert re.search(r"trend_following\s+\d+\s+[1-9]", out), out
    categories = run_json(cli, "strategies", "categories")
    assert isinstance(categories, list)
    trend = next(k for k in categories if k["category"] == "STRATEGY_CATEGORY_TREND_FOLLOWING")
    assert trend["strategy_type_count"] >= 2 and trend["strategy_count"] >= 1
    cli("strategies", "rm", sid)
    after = run_json(cli, "strategies", "categories")
    assert isinstance(after, list)
    assert next(k for k in after if k["category"] == trend["category"])["strategy_count"] == (
        trend["strategy_count"] - 1
    )


def test_an_ensemble_of_stored_strategies(cli: Run) -> None:
    a = stored(cli, "cli-ens a")
    b = stored(cli, "cli-ens b", "-p", "fast=10", "-p", "slow=40")
    out, _ = cli("strategies", "ensemble", "cli-ens", "--member", a, "--member", f"{b}:2",
                 "--method", "unanimous", "--tag", "combo")  # fmt: skip
    assert re.match(rf"created ensemble [0-9a-f]+: cli-ens \(unanimous of {a} x1, {b} x2\)", out)
    eid = out.split()[2].rstrip(":")
    out, _ = cli("strategies", "show", eid)
    assert f"unanimous of {a} x1, {b} x2" in out and "ensemble" in out
    s = shown(cli, eid)
    assert s["strategy_type"] == "ensemble" and s["tags"] == ["combo"]
    assert s["ensemble_members"] == [
        {"strategy_id": a, "weight": 1.0}, {"strategy_id": b, "weight": 2.0}
    ]  # fmt: skip
    made = run_json(cli, "strategies", "ensemble", "cli-ens json", "-m", a, "-m", b)
    assert isinstance(made, dict) and made["ensemble_method"] == "ENSEMBLE_METHOD_WEIGHTED_VOTE"

    # Members and method are updated like any field: the members given replace the stored.
    c = stored(cli, "cli-ens c")
    out, _ = cli("strategies", "update", eid, "-m", f"{b}:3", "-m", c, "--method", "majority")
    assert f"ensemble_members majority of {b} x3, {c} x1" in out, out
    assert "ensemble_method majority" in out and "version 2" in out, out
    s = shown(cli, eid)
    assert s["ensemble_members"] == [
        {"strategy_id": b, "weight": 3.0}, {"strategy_id": c, "weight": 1.0}
    ]  # fmt: skip
    assert s["ensemble_method"] == "ENSEMBLE_METHOD_MAJORITY" and s["tags"] == ["combo"]
    _, err = cli("strategies", "update", eid, "-m", f"{b}:0", "-m", c, code=2)
    assert "must be a number above 0" in err
    _, err = cli("strategies", "update", eid, "-m", eid, "-m", c, code=1)
    assert "INVALID_ARGUMENT" in err, err  # not a member of itself
    assert shown(cli, eid)["version"] == 2

    _, err = cli("strategies", "ensemble", "cli-ens bad", "-m", a, "-m", f"{b}:heavy", code=2)
    assert "the weight 'heavy' must be a number above 0" in err
    _, err = cli("strategies", "ensemble", "cli-ens one", "-m", a, code=1)
    assert "INVALID_ARGUMENT" in err and "members" in err, err
    _, err = cli("strategies", "ensemble", "cli-ens missing", "-m", a, "-m", MISSING, code=1)
    assert "INVALID_ARGUMENT" in err and "strategy_id: not found" in err, err


def test_compare_prints_one_column_per_strategy(cli: Run, dataset: str) -> None:
    a = stored(cli, "cli-cmp fast")
    b = stored(cli, "cli-cmp slow", "-p", "fast=20", "-p", "slow=80")
    out, _ = cli("strategies", "compare", a, b, "--data", dataset, "--rank-by", "total_return")
    assert f"dataset {dataset}" in out and "ranked by total_return, best first" in out, out
    header = next(line for line in out.splitlines() if "METRIC" in line)
    assert "cli-cmp fast" in header and "cli-cmp slow" in header
    assert "#1" in header and "#2" in header
    assert re.search(r"Total return \(rank\)\s+[+-][\d.,]+%\s+[+-][\d.,]+%", out), out
    assert re.search(r"Sharpe\s+-?[\d.]+\s+-?[\d.]+", out)
    assert re.search(r"Longest drawdown\s+[\d.]+ (days|hours)", out), "a time, not bars"
    assert "return correlation" in out and "+1.00" in out

    reply = run_json(cli, "strategies", "compare", a, b, "--data", dataset, "--commission", "0.01")
    assert isinstance(reply, dict) and reply["rank_by"] == "sharpe"
    rows = reply["rows"]
    assert sorted(r["strategy_id"] for r in rows) == sorted([a, b])
    assert [r["rank"] for r in rows] == [1, 2]
    assert all(r["execution"]["commission"] == 0.01 for r in rows)  # the override
    assert isinstance(rows[0]["metrics"]["num_trades"], int)
    assert len(reply["return_correlations"]) == 4

    _, err = cli("strategies", "compare", a, b, code=2)
    assert "--data DATASET" in err
    _, err = cli("strategies", "compare", a, MISSING, "--data", dataset, code=1)
    assert "NOT_FOUND" in err, err
    _, err = cli("strategies", "compare", a, "--data", dataset, code=1)
    assert "INVALID_ARGUMENT" in err, err
