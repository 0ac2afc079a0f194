"""Structured logs: one JSON object per line (or plain text for humans), secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from stratopt.api.request_id import current_request_id
from stratopt.security.redact import RedactingFilter

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
MAX_TEXT = 2_000
"""Longest message or string field in a log line: a hostile request cannot make 1 MB lines."""
MAX_TRACEBACK = 12_000
"""Longest traceback kept (its head and, mostly, its tail, where the error is)."""


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class BoundedFilter(logging.Filter):
    """Shortens long messages and string fields. Runs after redaction, which must see whole
    secrets to recognise them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_TEXT:
            record.msg, record.args = _clip(message, MAX_TEXT), ()
        for k, v in list(record.__dict__.items()):
            if k not in _STD and isinstance(v, str) and len(v) > MAX_TEXT:
                setattr(record, k, _clip(v, MAX_TEXT))
        return True


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records made while an RPC is served (api/metrics_interceptor.py
    sets it), so every line of one call, from any layer, can be found by that id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and (request_id := current_request_id()):
            record.request_id = request_id
        return True


def _clip_traceback(text: str) -> str:
    if len(text) <= MAX_TRACEBACK:
        return text
    head = MAX_TRACEBACK // 5
    tail = MAX_TRACEBACK - head
    return f"{text[:head]}\n... ({len(text) - head - tail:,} characters) ...\n{text[-tail:]}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            # exc_text is the traceback as the redaction filter left it.
            out["exc"] = _clip_traceback(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def setup(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(BoundedFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy.engine", "aiosqlite", "numba", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
