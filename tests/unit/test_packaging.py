"""Packaging: the hand-kept package list names every package, the package has no loose modules
but two, and a wheel carries everything the service reads at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    src = ROOT / "src"
    found = {
        ".".join(p.parent.relative_to(src).parts)
        for p in src.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    found.add("stratopt.v1")
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"


def test_only_init_and_errors_sit_loose_in_the_package() -> None:
    """Everything else belongs to one of the layers (docs/ARCHITECTURE.md)."""
    loose = {p.name for p in (ROOT / "src" / "stratopt").iterdir() if p.is_file()}
    assert loose <= {"__init__.py", "errors.py", "py.typed"}, (
        f"move into a package of docs/ARCHITECTURE.md: {sorted(loose)}"
    )


def test_the_gateway_reads_its_envoy_files_from_the_package() -> None:
    """An installed wheel has no deploy/ folder: the gateway must not need one, and the
    package's copies (written by `make generate`) must match deploy/envoy."""
    from importlib import resources

    from stratopt.server import gateway

    packaged = Path(str(resources.files("stratopt.server") / "envoy"))
    for path, name in (
        (gateway.TEMPLATE, "envoy.yaml.tmpl"),
        (gateway.DESCRIPTOR, "stratopt.binpb"),
    ):
        assert path == packaged / name
        assert path.read_bytes() == (ROOT / "deploy" / "envoy" / name).read_bytes(), (
            f"src/stratopt/server/envoy/{name} differs from deploy/envoy/{name}: run make generate"
        )
    assert "stratopt.v1.BacktestService" in gateway.api_services(gateway.DESCRIPTOR)


def test_the_docs_serve_the_generated_openapi_document() -> None:
    """/openapi.json is the package's copy of generated/openapi (`make generate`)."""
    from stratopt.server import static

    generated = ROOT / "generated" / "openapi" / "stratopt.swagger.json"
    assert static.OPENAPI.read_bytes() == generated.read_bytes(), "run make generate"


@pytest.mark.slow
def test_the_wheel_is_self_contained(tmp_path: Path) -> None:
    """Builds the wheel from a copy of the sources (the work tree stays clean) and looks
    inside: the stubs, the migrations and the gateway's Envoy files must all be there."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info")
    shutil.copytree(ROOT / "src", src / "src", ignore=skip)
    shutil.copytree(ROOT / "generated" / "python", src / "generated" / "python", ignore=skip)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True,
        cwd=tmp_path,
        timeout=240,
    )  # fmt: skip
    (wheel,) = out.glob("stratopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for want in (
        "stratopt/server/envoy/envoy.yaml.tmpl",
        "stratopt/server/envoy/stratopt.binpb",
        "stratopt/server/docs/openapi.json",
        "stratopt/server/docs/index.html",
        "stratopt/server/docs/swagger-ui-bundle.js",
        "stratopt/server/gateway.py",
        "stratopt/v1/backtest_pb2.py",
        "stratopt/store/migrations/script.py.mako",
        "stratopt/py.typed",
    ):
        assert want in names, f"{want} is missing from {wheel.name}"
    loose = {n.split("/")[1] for n in names if n.count("/") == 1 and n.startswith("stratopt/")}
    assert loose <= {"__init__.py", "errors.py", "py.typed"}, sorted(loose)
