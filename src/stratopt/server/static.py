"""The gateway's HTTP server for everything that is not an RPC: the web console, the OpenAPI
document and its reference page, and a REST health check.

Envoy routes `/v1/...` (REST, transcoded) and `application/grpc*` requests (gRPC, gRPC-Web) to
the gRPC server and every other request here (deploy/envoy/envoy.yaml.tmpl):

- `/healthz` asks the gRPC server's own health service (`?service=stratopt.engine` for one
  service), so the REST answer is exactly what gRPC health checks see: 200 when SERVING, 503
  otherwise (the database monitor turns it NOT_SERVING).
- `/openapi.json` is the document generated from the protos (`make generate`).
- `/docs` is a Swagger UI page served from files shipped in the package: no CDN, works offline.
- everything else is a file of the web console's build (`STRATOPT_WEB_DIR`, default the
  checkout's `web/dist`), with `index.html` for unknown page paths (client-side routing), or a
  short "console not built" page when there is no build.

It runs in threads (`ThreadingHTTPServer`), never on the gRPC server's event loop: a slow disk
or a large file cannot stall RPCs. Paths are resolved inside their root and hidden files are
refused, so `..`, encoded slashes and symlinks out of the root all answer 404.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import json
import logging
import mimetypes
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("stratopt.server.static")

DOCS_DIR = Path(str(resources.files("stratopt.server") / "docs"))
"""Swagger UI, its start script and openapi.json: package data (`make generate` copies the
generated and vendored files there)."""
OPENAPI = DOCS_DIR / "openapi.json"
REPO_WEB_DIST = Path(__file__).resolve().parents[3] / "web" / "dist"
"""The console's build in a checkout (an installed wheel sets STRATOPT_WEB_DIR instead)."""
HEALTH_TIMEOUT_S = 2.0
GZIP_MIN_BYTES = 1024
GZIP_CACHE_BYTES = 32 * 1024 * 1024
"""Compressed bodies kept in memory; the docs bundle is ~1.5 MB before compression."""
_TEXT_TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
# Swagger UI needs inline styles; scripts come only from this origin.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)
NOT_BUILT_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stratopt</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>stratopt</h1>
<p>The web console is not built. Build it with <code>make web</code> (or
<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>), or point
<code>STRATOPT_WEB_DIR</code> at a build.</p>
<p>The API is here all the same: <a href="/docs">REST reference</a>,
<a href="/openapi.json">OpenAPI document</a>, <a href="/healthz">health</a>.</p>
</body></html>
"""


def default_web_dir() -> Path:
    return REPO_WEB_DIST


def content_type(path: Path) -> str:
    known = _TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def resolve_inside(root: Path, url_path: str) -> Path | None:
    """The file or folder that `url_path` (already percent-decoded, relative to the root)
    names inside `root`, or None when it would leave the root or names a hidden file."""
    if "\x00" in url_path or "\\" in url_path:
        return None
    parts = [p for p in url_path.split("/") if p]
    if any(p.startswith(".") for p in parts):  # "..", ".env", ".git"
        return None
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*parts).resolve()
    except (OSError, RuntimeError):
        return None
    return target if target.is_relative_to(base) else None


@dataclass(frozen=True)
class _Body:
    data: bytes
    encoding: str | None


class _GzipCache:
    """Compressed bodies by (path, mtime, size): a rebuilt file is compressed anew."""

    def __init__(self, limit: int = GZIP_CACHE_BYTES) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, path: Path, mtime_ns: int, raw: bytes) -> bytes:
        key = (str(path), mtime_ns, len(raw))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        with self._lock:
            if key not in self._items and len(packed) <= self.limit:
                self._items[key] = packed
                self._size += len(packed)
                while self._size > self.limit:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
        return packed


class StaticServer(ThreadingHTTPServer):
    """Serves the console, the API docs and /healthz on `listen_addr` (port 0 = any free)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        listen_addr: str = "127.0.0.1:0",
        *,
        upstream_addr: str | None = None,
        web_dir: Path | None = None,
        docs_dir: Path = DOCS_DIR,
    ) -> None:
        host, _, port = listen_addr.rpartition(":")
        super().__init__((host.strip("[]") or "127.0.0.1", int(port)), _Handler)
        self.upstream_addr = upstream_addr
        self.web_dir = web_dir if web_dir is not None else default_web_dir()
        self.docs_dir = docs_dir
        self.gzip = _GzipCache()
        self._channel: grpc.Channel | None = None
        self._channel_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serves in a background thread until `stop()`."""
        self._thread = threading.Thread(
            # A short poll: stop() (in the gateway's shutdown) waits for one.
            target=self.serve_forever,
            args=(0.05,),
            name="stratopt-static",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "static files listening",
            extra={"port": self.port, "web_dir": str(self.web_dir), "upstream": self.upstream_addr},
        )

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()
        with self._channel_lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def health(self, service: str) -> tuple[HTTPStatus, dict[str, str]]:
        """The gRPC server's health for `service` ("" = the whole server) as HTTP."""
        if self.upstream_addr is None:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "UNKNOWN", "error": "no upstream"}
        with self._channel_lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.upstream_addr)
            channel = self._channel
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=HEALTH_TIMEOUT_S
            )
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.NOT_FOUND:
                return HTTPStatus.NOT_FOUND, {"status": "SERVICE_UNKNOWN", "service": service}
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "UNREACHABLE", "error": code.name}
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        ok = reply.status == health_pb2.HealthCheckResponse.SERVING
        return (HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE), {"status": name}


class _Handler(BaseHTTPRequestHandler):
    server: StaticServer
    protocol_version = "HTTP/1.1"  # keep-alive with Envoy's connection pool
    server_version = "stratopt-static"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection frees its thread

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_method(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"method not allowed\n",
            "text/plain; charset=utf-8",
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_method

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def _serve(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        srv = self.server
        if path == "/healthz":
            service = parse_qs(url.query).get("service", [""])[0]
            status, body = srv.health(service)
            data = json.dumps(body).encode() + b"\n"
            self._send(status, data, "application/json", head=head, cache="no-store")
        elif path == "/openapi.json":
            self._file(srv.docs_dir / "openapi.json", head=head, cache="no-cache")
        elif path in ("/docs", "/docs/"):
            self._file(srv.docs_dir / "index.html", head=head, cache="no-cache", csp=True)
        elif path.startswith("/docs/"):
            found = resolve_inside(srv.docs_dir, path.removeprefix("/docs/"))
            self._file(found, head=head, cache="no-cache", csp=True)
        else:
            self._console(path, head=head)

    def _console(self, path: str, *, head: bool) -> None:
        root = self.server.web_dir
        index = root / "index.html"
        if not index.is_file():
            self._send(
                HTTPStatus.NOT_FOUND, NOT_BUILT_PAGE, _TYPES[".html"], head=head, cache="no-cache"
            )
            return
        found = resolve_inside(root, path)
        if found is not None and found.is_dir():
            found = found / "index.html"
        if found is not None and found.is_file():
            # Vite's hashed assets never change under one name.
            immutable = found.parent.name == "assets"
            cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
            self._file(found, head=head, cache=cache)
        elif "." not in path.rsplit("/", 1)[-1] and resolve_inside(root, path) is not None:
            # A page of the single-page app (/strategies/42): its index decides what to show.
            self._file(index, head=head, cache="no-cache")
        else:
            self._not_found(head=head)

    def _not_found(self, *, head: bool) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head=head)

    def _file(self, path: Path | None, *, head: bool, cache: str, csp: bool = False) -> None:
        if path is None or not path.is_file():
            self._not_found(head=head)
            return
        try:
            stat = path.stat()
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if etag in (self.headers.get("If-None-Match") or ""):
                self._send(HTTPStatus.NOT_MODIFIED, b"", None, head=True, cache=cache, etag=etag)
                return
            raw = path.read_bytes()
        except OSError:
            self._not_found(head=head)
            return
        ctype = content_type(path)
        body = _Body(raw, None)
        wants_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
        if wants_gzip and len(raw) >= GZIP_MIN_BYTES and ctype.startswith(_TEXT_TYPES):
            body = _Body(self.server.gzip.get(path, stat.st_mtime_ns, raw), "gzip")
        extra = {"Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True)}
        if csp:
            extra["Content-Security-Policy"] = DOCS_CSP
        self._send(
            HTTPStatus.OK, body.data, ctype, head=head, cache=cache, etag=etag,
            encoding=body.encoding, extra=extra,
        )  # fmt: skip

    def _send(
        self,
        status: HTTPStatus,
        data: bytes,
        ctype: str | None,
        *,
        head: bool = False,
        cache: str = "no-store",
        etag: str | None = None,
        encoding: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Vary", "Accept-Encoding")
        if etag:
            self.send_header("ETag", etag)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head and status != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stratopt.server.static`: the static server on its own, for a standalone
    Envoy (`python -m stratopt.server.gateway render --static ...`)."""
    parser = argparse.ArgumentParser(prog="python -m stratopt.server.static")
    parser.add_argument("--listen", default="127.0.0.1:8081", help="listen address")
    parser.add_argument("--upstream", default="127.0.0.1:50051", help="gRPC server, for /healthz")
    parser.add_argument("--web-dir", type=Path, default=None, help="the console's build")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = StaticServer(args.listen, upstream_addr=args.upstream, web_dir=args.web_dir)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
