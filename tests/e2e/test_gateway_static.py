"""Through the real Envoy: the console at /, the REST reference at /docs, /openapi.json and
/healthz, while /v1/... stays REST and gRPC stays gRPC on the same port."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stratopt.server.gateway import Gateway
from tests.conftest import LiveServer
from tests.e2e.conftest import access_log
from tests.e2e.rest_client import Rest
from tests.tools import CHROMIUM, in_ci

pytestmark = pytest.mark.e2e
INDEX = b"<!doctype html><title>stratopt console</title><script src=/assets/app.js></script>"


@pytest.fixture(scope="module")
def console_gateway(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway serving a console build of its own (the session gateway serves whatever
    web/dist holds, if anything)."""
    work = tmp_path_factory.mktemp("console-gateway")
    dist = work / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "app.js").write_text("document.title = 'stratopt';\n")
    gw = Gateway("127.0.0.1:0", live_server.addr, work, log_file=work / "envoy.log", web_dir=dist)
    gw.start()
    yield gw
    gw.stop()


def test_docs_page_and_its_assets_load(gateway: Gateway) -> None:
    anonymous = Rest(gateway.url)
    page = anonymous.get("/docs")
    assert page.status == 200, page.body
    assert page.header("content-type") == "text/html; charset=utf-8"
    assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.body.decode())
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js"} <= set(assets)
    for asset in assets:
        r = anonymous.get(asset, headers={"accept-encoding": "gzip"})
        assert r.status == 200, (asset, r.status)
        body = gzip.decompress(r.body) if r.header("content-encoding") == "gzip" else r.body
        assert body, asset
    bundle = anonymous.get("/docs/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"})
    assert bundle.header("content-encoding") == "gzip"
    assert b"SwaggerUIBundle" in gzip.decompress(bundle.body)
    # Nothing on the page comes from another origin: it works offline.
    assert not re.search(rb'(?:src|href)="(?:https?:)?//', page.body)
    init = anonymous.get("/docs/init.js").body
    assert b'url: "/openapi.json"' in init


def test_openapi_document_describes_the_rest_surface(gateway: Gateway) -> None:
    r = Rest(gateway.url).get("/openapi.json")
    assert r.status == 200 and r.header("content-type") == "application/json"
    doc = r.json()
    assert doc["swagger"] == "2.0" and doc["info"]["title"] == "stratopt REST API"
    assert {"get", "post"} <= set(doc["paths"]["/v1/strategies"])
    assert doc["paths"]["/v1/strategies/{strategyId}"]["get"]["operationId"] == (
        "StrategyService_GetStrategy"
    )
    # The client-streaming route the plugin cannot express got its path parameter back.
    push = doc["paths"]["/v1/feeds/{feedId}:push"]["post"]
    assert push["parameters"][0] == {
        "in": "path", "name": "feedId", "required": True, "type": "string"
    }  # fmt: skip
    assert set(doc["securityDefinitions"]) == {"bearer", "apiKey"}


def test_healthz_is_the_grpc_health(gateway: Gateway, live_server: LiveServer) -> None:
    anonymous = Rest(gateway.url)
    r = anonymous.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "SERVING"}
    assert r.header("cache-control") == "no-store"
    with live_server.channel() as ch:
        grpc_status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert grpc_status.status == health_pb2.HealthCheckResponse.SERVING
    engine = anonymous.get("/healthz?service=stratopt.engine")
    assert engine.status == 200 and engine.json() == {"status": "SERVING"}
    unknown = anonymous.get("/healthz?service=no.such.Service")
    assert unknown.status == 404 and unknown.json()["status"] == "SERVICE_UNKNOWN"


def test_console_at_the_root_beside_rest_and_grpc(
    console_gateway: Gateway, live_server: LiveServer
) -> None:
    anonymous = Rest(console_gateway.url)
    root = anonymous.get("/")
    assert root.status == 200 and root.body == INDEX
    assert root.header("content-type") == "text/html; charset=utf-8"
    # A page of the single-page app is its index; a missing asset is a 404.
    assert anonymous.get("/strategies/abc").body == INDEX
    assert anonymous.get("/assets/app.js").header("content-type").startswith("text/javascript")
    assert anonymous.get("/assets/nope.js").status == 404
    assert anonymous.get("/../../etc/passwd").status in (400, 404)
    # REST is still transcoded, and an unknown REST path is still Envoy's JSON 404.
    types = Rest(console_gateway.url, live_server.token("trader")).get("/v1/strategyTypes")
    assert types.status == 200 and types.json()["strategyTypes"]
    unknown = anonymous.get("/v1/noSuchCollection")
    assert unknown.status == 404 and unknown.json()["code"] == 5
    # A browser's gRPC-Web preflight (no content-type yet) is answered by the CORS filter,
    # not by the static server.
    preflight = anonymous.call(
        "OPTIONS",
        "/stratopt.v1.StrategyService/ListStrategyTypes",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web,authorization",
        },
    )
    assert preflight.status == 200
    assert preflight.header("access-control-allow-origin") == "http://localhost:5173"
    # Native gRPC through the gateway port.
    host = console_gateway.url.removeprefix("http://")
    with grpc.insecure_channel(host) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_request_id_through_the_gateway(gateway: Gateway, rest: Rest) -> None:
    given = rest.get("/v1/strategyTypes", headers={"x-request-id": "rest-req-0001"})
    assert given.status == 200 and given.header("x-request-id") == "rest-req-0001"
    failed = rest.get("/v1/strategies/no-such-id", headers={"x-request-id": "rest-req-0002"})
    assert failed.status == 404 and failed.header("x-request-id") == "rest-req-0002"
    # None given: Envoy makes one, the server answers with it, and the access log has it.
    made = rest.get("/v1/strategyTypes").header("x-request-id")
    assert re.fullmatch(r"[0-9a-f-]{36}", made), made
    deadline = time.monotonic() + 5
    while not any(made in line for line in access_log(gateway)):
        assert time.monotonic() < deadline, "no access log line with the request id"
        time.sleep(0.1)


@pytest.mark.skipif(
    not CHROMIUM.exists() and not in_ci(),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
def test_docs_render_in_a_browser_without_leaving_the_gateway(gateway: Gateway) -> None:
    """Swagger UI draws every operation from /openapi.json, under the page's CSP, with every
    request to another origin refused (as offline)."""
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            def only_the_gateway(route: Any) -> None:
                if route.request.url.startswith(gateway.url):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_gateway)
            page.goto(f"{gateway.url}/docs", wait_until="load")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = page.eval_on_selector_all(
                ".opblock-summary-path", "els => els.map(e => e.dataset.path || e.textContent)"
            )
        finally:
            browser.close()
    assert "/v1/strategies" in {p.replace("\u200b", "") for p in paths}
    assert len(paths) > 50
    assert elsewhere == [] and errors == []
