"""The operations files stay true: systemd units run commands our CLI accepts, the gateway
config they render passes Envoy's own validation, and the configuration reference in
docs/operations.md lists every setting with its current default."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stratopt.client.cli import build_parser
from stratopt.server.settings import reference_markdown

ROOT = Path(__file__).resolve().parents[3]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
BIN = "/opt/stratopt/bin/"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def commands(path: Path) -> list[list[str]]:
    service = unit(path)["Service"]
    return [shlex.split(service[k]) for k in ("ExecStartPre", "ExecStart") if k in service]


def test_there_are_units_for_the_server_workers_and_the_gateway() -> None:
    names = {p.name for p in UNITS}
    assert {"stratopt.service", "stratopt-worker@.service", "stratopt-gateway.service"} <= names


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_are_complete_and_confined(path: Path) -> None:
    u = unit(path)
    assert {"Unit", "Service", "Install"} <= set(u.sections())
    service = u["Service"]
    assert service["User"] == "stratopt" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_stratopt_command_lines_parse(path: Path) -> None:
    for argv in commands(path):
        if argv[0] == BIN + "stratopt":
            args = build_parser().parse_args(argv[1:])
            assert callable(args.func)


def test_the_rendered_gateway_config_passes_envoy_validation(tmp_path: Path) -> None:
    envoy = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    pre = next(c for c in commands(ROOT / "deploy/systemd/stratopt-gateway.service"))
    script = pre[-1]  # sh -c '<python -m ... render ...> > file'
    render = shlex.split(script.split(">")[0])
    assert render[0] == BIN + "python"
    config = subprocess.run(
        [sys.executable, *render[1:]], check=True, capture_output=True, text=True
    ).stdout
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    done = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_configuration_reference_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    start = "<!-- settings-reference:start -->\n"
    inside = doc[doc.index(start) + len(start) : doc.index("<!-- settings-reference:end -->")]
    assert inside == reference_markdown(), (
        "docs/operations.md is stale: paste `python -m stratopt.server.settings` in it"
    )
