"""The gateway's static file server on a real socket: console files, docs, refusals."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest

from stratopt.server.static import DOCS_DIR, StaticServer, resolve_inside

INDEX = b"<!doctype html><title>console</title><div id=app></div>"
APP_JS = b"console.log('app');\n" * 200  # big enough to be compressed


@pytest.fixture()
def web(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-1a2b3c.js").write_bytes(APP_JS)
    (root / "assets" / "app-1a2b3c.css").write_text("body{margin:0}")
    (root / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("outside the root")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    return root


@pytest.fixture()
def server(web: Path) -> Iterator[StaticServer]:
    srv = StaticServer(web_dir=web)
    srv.start()
    yield srv
    srv.stop()


def get(
    srv: StaticServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_serves_the_console_with_content_types_and_caching(server: StaticServer) -> None:
    status, headers, body = get(server, "/")
    assert (status, body) == (200, INDEX)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache" and headers["x-content-type-options"] == "nosniff"
    status, headers, body = get(server, "/assets/app-1a2b3c.js")
    assert (status, body) == (200, APP_JS)
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in headers["cache-control"]
    assert int(headers["content-length"]) == len(APP_JS)
    assert get(server, "/assets/app-1a2b3c.css")[1]["content-type"] == "text/css; charset=utf-8"
    assert get(server, "/logo.svg")[1]["content-type"] == "image/svg+xml"


def test_page_paths_fall_back_to_the_index_but_missing_files_do_not(server: StaticServer) -> None:
    assert get(server, "/strategies/42")[::2] == (200, INDEX)
    assert get(server, "/assets/missing.js")[0] == 404
    assert get(server, "/favicon.ico")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/assets/%2e%2e/%2e%2e/outside.txt",
        "/assets/..%2f..%2foutside.txt",
        "/..%5coutside.txt",
        "/escape.txt",  # a symlink out of the root
        "/.env",
        "/%2eenv",
        "/index.html%00.js",
    ],
)
def test_nothing_outside_the_root_or_hidden_is_served(server: StaticServer, path: str) -> None:
    status, _, body = get(server, path)
    assert status == 404, (path, body)
    assert b"outside" not in body and b"SECRET" not in body


def test_resolve_inside_keeps_to_the_root(web: Path) -> None:
    assert resolve_inside(web, "assets/app-1a2b3c.js") == (web / "assets/app-1a2b3c.js").resolve()
    assert resolve_inside(web, "") == web.resolve()
    assert resolve_inside(web, "../outside.txt") is None
    assert resolve_inside(web, "escape.txt") is None
    assert resolve_inside(web / "missing-root", "x") is None


def test_gzip_etag_and_head(server: StaticServer) -> None:
    status, headers, body = get(
        server, "/assets/app-1a2b3c.js", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == APP_JS and len(body) < len(APP_JS) // 10
    assert headers["vary"] == "Accept-Encoding"
    # Small files are sent as they are.
    small = get(server, "/assets/app-1a2b3c.css", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small[1]
    etag = headers["etag"]
    status, headers, body = get(server, "/assets/app-1a2b3c.js", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, headers, body = get(server, "/assets/app-1a2b3c.js", "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(APP_JS)


def test_only_get_and_head(server: StaticServer) -> None:
    status, headers, _ = get(server, "/", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert get(server, "/", "DELETE")[0] == 405


def test_console_not_built(tmp_path: Path) -> None:
    srv = StaticServer(web_dir=tmp_path / "no-build")
    srv.start()
    try:
        status, headers, body = get(srv, "/")
        assert status == 404 and b"console is not built" in body
        assert headers["content-type"].startswith("text/html")
        assert get(srv, "/strategies/1")[0] == 404
        # The docs do not depend on the console.
        assert get(srv, "/docs")[0] == 200
    finally:
        srv.stop()


def test_docs_page_and_openapi_document(server: StaticServer) -> None:
    status, headers, page = get(server, "/docs")
    assert status == 200 and b"swagger-ui" in page
    assert "script-src 'self'" in headers["content-security-policy"]
    assert get(server, "/docs/")[2] == page
    for asset, ctype in [
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
        ("/docs/init.js", "text/javascript"),
    ]:
        assert asset.encode() in page
        status, headers, body = get(server, asset)
        assert status == 200 and headers["content-type"].startswith(ctype) and body
    assert get(server, "/docs/../static.py")[0] == 404
    status, headers, body = get(server, "/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == json.loads((DOCS_DIR / "openapi.json").read_text())


def test_healthz_without_a_reachable_grpc_server(web: Path) -> None:
    srv = StaticServer(upstream_addr="127.0.0.1:1", web_dir=web)
    srv.start()
    try:
        status, headers, body = get(srv, "/healthz")
        assert status == 503 and json.loads(body)["status"] == "UNREACHABLE"
        assert headers["cache-control"] == "no-store"
    finally:
        srv.stop()


def test_healthz_follows_the_grpc_health_service(web: Path) -> None:
    """A real gRPC health service: SERVING is 200, NOT_SERVING (the database monitor's
    answer during an outage) is 503, an unknown service 404."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    srv = StaticServer(upstream_addr=f"127.0.0.1:{port}", web_dir=web)
    srv.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        servicer.set("stratopt.engine", health_pb2.HealthCheckResponse.NOT_SERVING)
        status, _, body = get(srv, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "SERVING"})
        status, _, body = get(srv, "/healthz?service=stratopt.engine")
        assert (status, json.loads(body)) == (503, {"status": "NOT_SERVING"})
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert get(srv, "/healthz")[0] == 503
        status, _, body = get(srv, "/healthz?service=nope")
        assert status == 404 and json.loads(body)["status"] == "SERVICE_UNKNOWN"
    finally:
        srv.stop()
        grpc_server.stop(None)
