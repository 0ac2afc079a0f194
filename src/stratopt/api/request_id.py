"""The request id of the current RPC: the client's `x-request-id` (Envoy makes one for every
request it forwards) or one made here. Log records carry it (server/logs.py) and responses
return it, so one id ties a client's report, Envoy's access log and the server's logs."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

HEADER = "x-request-id"
_VALID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_request_id: ContextVar[str] = ContextVar("stratopt_request_id", default="")


def accept_or_make(offered: str | None) -> str:
    """The client's id when it is a plain token of at most 128 characters (it is echoed in
    headers and logs), else a new one."""
    if offered and _VALID.fullmatch(offered):
        return offered
    # Not a secret, only unique: the Mersenne Twister (seeded from the OS at start, reseeded
    # in a forked child) is ~40x cheaper than os.urandom here, on every call.
    return f"{random.getrandbits(128):032x}"


def set_request_id(value: str) -> None:
    _request_id.set(value)


def current_request_id() -> str:
    """The id of the RPC this task serves, or "" outside an RPC."""
    return _request_id.get()
