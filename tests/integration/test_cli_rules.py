"""`stratopt rules` against a real server, and user types in the rest of the CLI.

The verbs run in-process (`cli.main`, output captured) as in test_cli_commands.py; a user
strategy type made with `rules create` is then listed by `types`, backtested and optimized
with `--strategy user_<id>`, and named by its definition in reports. Names carry a
per-module prefix: the session's one server is shared with the other test files.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from stratopt.client.cli import build_parser, main
from stratopt.client.completion import bash_script
from stratopt.strategies import registry
from tests.conftest import LiveServer

Run = Callable[..., tuple[str, str]]

BLEND = """\
input src: series
input n: int
return (sma(src, n) + ema(src, n)) / 2
"""

CROSS = """\
# a blended fast average against a slow SMA
param fast: int = 8 in [3, 20] "the blended average's length"
param slow: int = 30 in [21, 80]
constraint fast < slow
f = {fast}(close, fast)
s = sma(close, slow)
long_entry: crossover(f, s)
long_exit: crossunder(f, s)
short_entry: crossunder(f, s)
short_exit: crossover(f, s)
"""

BAD = """\
param fast: int = 8 in [3, 20]
x = smaa(close, fast)
long_entry: x > close
"""


@pytest.fixture(scope="module")
def srv(live_server: LiveServer) -> LiveServer:
    return live_server


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    """3,000 hourly bars of the trader's."""
    req = md_pb.GenerateSyntheticDatasetRequest(
        name="cli-rules-bars", symbol="RUL", timeframe="1h", bar_count=3_000, seed=5
    )
    with srv.channel() as ch:
        reply = md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            req, metadata=srv.md("trader")
        )
    return str(reply.dataset.id)


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    (tmp_path / "clirules_blend.rules").write_text(BLEND)
    (tmp_path / "cross.rules").write_text(CROSS.format(fast="clirules_blend"))
    (tmp_path / "cross_ema.rules").write_text(CROSS.format(fast="ema"))
    (tmp_path / "bad.rules").write_text(BAD)
    return tmp_path


@pytest.fixture()
def cli(
    srv: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: Path,
) -> Run:
    """Runs `stratopt ARGS` as `user` (default trader) in this process; returns (stdout,
    stderr) after checking the exit status."""
    for k in [k for k in os.environ if k.startswith("STRATOPT_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("STRATOPT_SERVER", srv.addr)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(files / "config"))
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(files)

    def run(*args: str, code: int = 0, user: str = "trader") -> tuple[str, str]:
        monkeypatch.setenv("STRATOPT_TOKEN", srv.token(user))
        rc = main(list(args))
        out, err = capsys.readouterr()
        assert rc == code, (args, rc, out, err)
        return out, err

    return run


def run_json(cli: Run, *args: str, user: str = "trader") -> object:
    out, _ = cli(*args, "--json", user=user)
    return json.loads(out)


def _rm(cli: Run, *ids: str) -> None:
    cli("rules", "rm", *ids)


# -- validate ---------------------------------------------------------------------------------


def test_validate_locally_prints_positions_or_the_parameter_space(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server is reached: point the client at a closed port.
    monkeypatch.setenv("STRATOPT_SERVER", "127.0.0.1:9")
    out, _ = cli("rules", "validate", "cross_ema.rules")
    assert "cross_ema.rules: a valid strategy" in out
    assert re.search(r"fast\s+int\s+8\s+3:20", out) and "the blended average's length" in out
    assert "constraint: fast < slow" in out

    out, err = cli("rules", "validate", "bad.rules", code=1)
    assert out == "" and err.strip() == "bad.rules:2:5: unknown function 'smaa'"
    out, err = cli("rules", "validate", "bad.rules", "--json", code=1)
    reply = json.loads(out)
    assert reply["valid"] is False and reply["parameters"] == []
    assert reply["problems"] == [{"line": 2, "column": 5, "message": "unknown function 'smaa'"}]

    # A strategy that calls a user indicator checks locally with the indicator's file.
    _, err = cli("rules", "validate", "cross.rules", code=1)
    assert err.startswith("cross.rules:5:5: ") and "clirules_blend" in err
    out, _ = cli("rules", "validate", "cross.rules", "--indicator", "clirules_blend.rules")
    assert "a valid strategy" in out and "user indicators it calls: clirules_blend" in out
    out, _ = cli(
        "rules", "validate", "cross.rules", "--indicator", "clirules_blend=clirules_blend.rules"
    )
    assert "a valid strategy" in out
    out, _ = cli("rules", "validate", "clirules_blend.rules", "--kind", "indicator")
    assert "a valid indicator" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(BAD))
    _, err = cli("rules", "validate", "-", code=1)
    assert err.strip() == "<stdin>:2:5: unknown function 'smaa'"
    _, err = cli("rules", "validate", "missing.rules", code=2)
    assert "missing.rules: no such file" in err


def test_validate_on_the_server_knows_the_stored_indicators(cli: Run) -> None:
    _, err = cli("rules", "validate", "cross.rules", "--server", code=1)
    assert err.startswith("cross.rules:5:5: ")
    ind = cli(
        "rules", "create", "clirules_blend", "clirules_blend.rules", "--kind", "indicator", "-q"
    )[0].strip()
    try:
        reply = run_json(cli, "rules", "validate", "cross.rules", "--server")
        assert isinstance(reply, dict) and reply["valid"] is True
        assert reply["indicators"] == ["clirules_blend"]
        assert [p["name"] for p in reply["parameters"]] == ["fast", "slow"]
        out, _ = cli("rules", "validate", "cross.rules", "--server")
        assert "a valid strategy" in out and "clirules_blend" in out
        _, err = cli("rules", "validate", "bad.rules", "--server", code=1)
        assert err.strip() == "bad.rules:2:5: unknown function 'smaa'"
    finally:
        _rm(cli, ind)


# -- the stored definitions -------------------------------------------------------------------


def test_create_ls_show_update_share_rm(cli: Run) -> None:
    out, _ = cli(
        "rules", "create", "clirules_blend", "clirules_blend.rules", "--kind", "indicator",
        "--description", "SMA and EMA, averaged",
    )  # fmt: skip
    assert out.startswith("created indicator: clirules_blend (id ")
    ind = re.search(r"id ([0-9a-f]{32})", out).group(1)  # type: ignore[union-attr]
    made = run_json(cli, "rules", "create", "clirules_cross", "cross.rules")
    assert isinstance(made, dict)
    d = made["definition"]
    sid, stype = d["id"], d["strategy_type"]
    assert stype == f"user_{sid}" and d["indicators"] == ["clirules_blend"]
    assert made["strategy_type"]["name"] == stype
    assert [p["name"] for p in made["strategy_type"]["parameters"]] == ["fast", "slow"]
    try:
        # A definition that does not compile is refused with its positions, nothing saved.
        _, err = cli("rules", "create", "clirules_bad", "bad.rules", code=1)
        assert "bad.rules:2:5: unknown function 'smaa'" in err and "nothing was saved" in err

        _, err = cli("rules", "create", "Not Snake", "cross_ema.rules", code=1)
        assert "INVALID_ARGUMENT" in err and "definition.name: snake_case" in err
        _, err = cli("rules", "create", "clirules_cross", "cross_ema.rules", code=1)
        assert "ALREADY_EXISTS" in err

        out, _ = cli("rules", "ls")
        assert sid in out and ind in out and "fast=8 slow=30" in out and "user_<ID>" in out
        listed = run_json(cli, "rules", "ls", "--kind", "indicator")
        assert isinstance(listed, list) and ind in [x["id"] for x in listed]
        assert sid not in [x["id"] for x in listed]

        # show: by id, by type name, by name; source and parameter space.
        for ref in (sid, stype, "clirules_cross"):
            out, _ = cli("rules", "show", ref)
            assert f"{stype}" in out and "owner" in out and "trader" in out
            assert "constraint: fast < slow" in out and re.search(r"slow\s+int\s+30\s+21:80", out)
            assert out.rstrip().endswith("short_exit: crossover(f, s)")
            assert "# a blended fast average" in out
        shown = run_json(cli, "rules", "show", sid)
        assert isinstance(shown, dict)
        assert shown["definition"]["source"] == CROSS.format(fast="clirules_blend")
        assert shown["strategy_type"]["constraints"] == [
            {"left": "fast", "op": "<", "right": "slow"}
        ]
        out, _ = cli("rules", "show", "clirules_blend")
        assert "an indicator" in out and "SMA and EMA, averaged" in out
        _, err = cli("rules", "show", "no_such_definition", code=2)
        assert "no definition named 'no_such_definition'" in err
        _, err = cli("rules", "show", "0" * 32, code=1)
        assert "NOT_FOUND" in err

        # update: a new source recompiles (a new default shows), a bad one is refused.
        (Path("cross.rules")).write_text(CROSS.format(fast="ema").replace("= 8 in", "= 9 in"))
        out, _ = cli("rules", "update", sid, "cross.rules", "--description", "now an EMA")
        assert "version 2" in out and "source, description" in out
        shown = run_json(cli, "rules", "show", sid)
        assert isinstance(shown, dict) and shown["definition"]["version"] == 2
        assert shown["definition"]["indicators"] == []
        assert shown["strategy_type"]["parameters"][0]["default_value"] == 9
        _, err = cli("rules", "update", sid, "bad.rules", code=1)
        assert "bad.rules:2:5: unknown function 'smaa'" in err
        _, err = cli("rules", "update", sid, code=2)
        assert "nothing to update" in err

        # share: the analyst sees it (not its shares) and may not change it.
        before = run_json(cli, "rules", "ls", user="analyst")
        assert isinstance(before, list) and sid not in [x["id"] for x in before]
        out, _ = cli("rules", "share", sid, "analyst")
        assert "shared clirules_cross with analyst; shared with: analyst" in out
        seen = run_json(cli, "rules", "ls", user="analyst")
        assert isinstance(seen, list)
        mine = [x for x in seen if x["id"] == sid]
        assert mine and mine[0]["owner_username"] == "trader" and mine[0]["shared_with"] == []
        _, err = cli("rules", "update", sid, "cross.rules", user="analyst", code=1)
        assert "PERMISSION_DENIED" in err
        out, _ = cli("rules", "unshare", sid, "analyst")
        assert "analyst no longer shares" in out
        _, err = cli("rules", "show", sid, user="analyst", code=1)
        assert "NOT_FOUND" in err
    finally:
        out, _ = cli("rules", "rm", sid, "clirules_blend")
    assert out.splitlines() == [
        f"deleted definition {sid}",
        f"deleted definition clirules_blend ({ind})",  # given by name: its id too
    ]
    _, err = cli("rules", "rm", sid, code=1)
    assert "NOT_FOUND" in err


def test_completion_knows_the_rules_verbs(tmp_path: Path) -> None:
    (tmp_path / "c.bash").write_text(bash_script(build_parser()))
    (tmp_path / "mine.rules").write_text(BLEND)

    def complete(*words: str) -> list[str]:
        probe = (
            f"cd {shlex.quote(str(tmp_path))}; source c.bash; "
            f"COMP_WORDS=(stratopt {shlex.join(words)}); COMP_CWORD={len(words)}; "
            "_stratopt_complete; printf '%s\\n' \"${COMPREPLY[@]}\""
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert "rules" in complete("ru")
    verbs = {"validate", "create", "ls", "show", "update", "rm", "share", "unshare"}
    assert verbs <= set(complete("rules", ""))
    assert complete("rules", "create", "--kind", "i") == ["indicator"]
    assert "mine.rules" in complete("rules", "validate", "mi")


# -- user types everywhere --------------------------------------------------------------------


def test_types_lists_own_and_shared_user_types_after_the_built_ins(
    cli: Run, srv: LiveServer
) -> None:
    sid = cli("rules", "create", "clirules_types", "cross_ema.rules", "-q")[0].strip()
    stype = f"user_{sid}"
    builtins = [t.name for t in registry.all()]
    try:
        listed = run_json(cli, "types")
        assert isinstance(listed, list)
        names = [t["name"] for t in listed]
        assert names[: len(builtins)] == builtins and stype in names[len(builtins) :]
        mine = next(t for t in listed if t["name"] == stype)
        assert mine["display_name"] == "clirules_types"
        assert [p["name"] for p in mine["parameters"]] == ["fast", "slow"]
        out, _ = cli("types")
        assert stype in out and "clirules_types" in out
        out, _ = cli("types", stype)
        assert f"{stype}: clirules_types" in out and "constraint: fast < slow" in out

        # Not another user's until it is shared with them; an admin's library holds only
        # their own and shared types too (they still reach any type by name).
        assert stype not in [t["name"] for t in run_json(cli, "types", user="admin")]  # type: ignore[union-attr]
        out, _ = cli("types", stype, user="admin")
        assert f"{stype}: clirules_types" in out
        assert stype not in [t["name"] for t in run_json(cli, "types", user="analyst")]  # type: ignore[union-attr]
        cli("rules", "share", sid, "analyst")
        assert stype in [t["name"] for t in run_json(cli, "types", user="analyst")]  # type: ignore[union-attr]

        # The library's filters apply to user types as to built-ins (they are filed as
        # trend following, medium risk).
        with srv.channel() as ch:
            stub = s_grpc.StrategyServiceStub(ch)
            md = srv.md("trader")

            def names_of(**kw: int) -> list[str]:
                req = s_pb.ListStrategyTypesRequest(**kw)  # type: ignore[arg-type]
                return [t.name for t in stub.ListStrategyTypes(req, metadata=md).strategy_types]

            assert stype in names_of(category=c.STRATEGY_CATEGORY_TREND_FOLLOWING)
            assert stype in names_of(risk_level=c.RISK_LEVEL_MEDIUM)
            assert stype not in names_of(category=c.STRATEGY_CATEGORY_MEAN_REVERSION)
            assert stype not in names_of(risk_level=c.RISK_LEVEL_HIGH)
            # ListCategories counts the types ListStrategyTypes lists, per category.
            for user in ("trader", "analyst", "admin"):
                md = srv.md(user)
                counts = {
                    k.category: k.strategy_type_count
                    for k in stub.ListCategories(
                        s_pb.ListCategoriesRequest(), metadata=md
                    ).categories
                }
                for category, count in counts.items():
                    assert count == len(names_of(category=category)), (user, category)
    finally:
        _rm(cli, sid)
    assert stype not in [t["name"] for t in run_json(cli, "types")]  # type: ignore[union-attr]


def test_backtest_and_optimize_a_user_type_on_the_server_with_named_reports(
    cli: Run, dataset: str, files: Path
) -> None:
    sid = cli("rules", "create", "clirules_run", "cross_ema.rules", "-q")[0].strip()
    stype = f"user_{sid}"
    try:
        bt = run_json(
            cli, "backtest", "--server", "--data", dataset, "--strategy", stype, "-p", "fast=5"
        )
        assert isinstance(bt, dict) and bt["strategy_type"] == stype
        assert bt["parameters"] == {"fast": 5, "slow": 30} and bt["bar_count"] == 3_000
        out, _ = cli("report", "--backtest", bt["id"], "-o", "bt.json")
        report = json.loads((files / "bt.json").read_text())
        assert report["title"] == "clirules_run: backtest report", report["title"]

        out, _ = cli(
            "optimize", "--data", dataset, "--strategy", stype, "--param", "fast=3:20",
            "--trials", "6", "--seed", "1", "--holdout", "0",
        )  # fmt: skip
        job_id = out.split()[1]
        assert "succeeded" in out and "Best" in out
        cli("report", "--job", job_id, "-o", "job.json")
        report = json.loads((files / "job.json").read_text())
        assert report["title"] == "clirules_run: optimization report", report["title"]

        _, err = cli("export", "pine", "--type", stype, "-p", "fast=6", "--server", "-o", "u.pine")
        pine = (files / "u.pine").read_text()
        assert "//@version=6" in pine and "strategy(" in pine and "ta.crossover" in pine

        # Without --server the type is unknown here: the error says what to do.
        _, err = cli("backtest", "--data", "bars.csv", "--strategy", stype, code=2)
        assert "user strategy type stored on a server: add --server" in err
        _, err = cli("export", "pine", "--type", stype, code=2)
        assert "user strategy type stored on a server: add --server" in err
    finally:
        _rm(cli, sid)
