"""Log redaction: a last line of defence so credentials do not end up in log storage.

The code is written never to log secrets; this filter catches the mistakes (an exception
message quoting a header, a debug `repr` of a request). Attach it to *handlers*: a filter on
a logger does not see records propagated from child loggers.

API keys keep their public prefix (``sk_1a2b3c4d_[REDACTED]``) so a redacted line still says
which key was involved.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[REDACTED]"

_SENSITIVE_NAMES = (
    r"password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key|apikey|token"
    r"|access[_-]?token|refresh[_-]?token|id[_-]?token|authorization|x-api-key|cookie"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(sk_[0-9a-f]{8}_)[A-Za-z0-9]+"), rf"\1{REDACTED}"),
    (re.compile(r"\brt_[A-Za-z0-9_-]{16,}"), f"rt_{REDACTED}"),
    (re.compile(r"\$scrypt\$[^\s\"',;]+"), f"$scrypt${REDACTED}"),
    # key=value, key: value, "key": "value" (JSON), with optional quotes around either side.
    (
        re.compile(
            rf"""(?ix)
            (["']?\b(?:{_SENSITIVE_NAMES})\b["']?\s*[:=]\s*)
            (?:"[^"]*"|'[^']*'|[^\s,;&}}\]]+)
            """
        ),
        rf"\1{REDACTED}",
    ),
)
_SENSITIVE_KEY = re.compile(rf"(?i)^(?:{_SENSITIVE_NAMES})$")

# Attributes every LogRecord has; anything else came in through `extra=` and is redacted.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def redact(text: str) -> str:
    """Replace anything that looks like a credential in `text`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites records in place (message, exception text, stack, `extra` fields); never
    drops a record, since losing the log line would hide the event itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(_message_of(record))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRS:
                setattr(record, name, _redact_value(name, value))
        return True


def _message_of(record: logging.LogRecord) -> str:
    """The formatted message, or a raw rendering when the format call itself is broken;
    a filter that raises would turn a bad log call into a crash at the call site."""
    try:
        return record.getMessage()
    except Exception:
        # The arguments cannot be placed, so which one is the secret is unknowable: keep
        # only their types.
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        types = ", ".join(type(a).__name__ for a in args)
        return f"{record.msg} [args not rendered: format error; types: {types}]"


def _redact_value(name: str, value: Any) -> Any:
    if _SENSITIVE_KEY.match(name):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value("", v) for v in value)
    return value


def install(handler: logging.Handler | None = None) -> RedactingFilter:
    """Attach one filter to `handler`, or to every handler of the root logger."""
    log_filter = RedactingFilter()
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for target in handlers:
        target.addFilter(log_filter)
    return log_filter
