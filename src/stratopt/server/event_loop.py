"""The event loop server processes run on: uvloop by default, asyncio's own on request.

uvloop (libuv under asyncio's API) takes about a tenth off the CPU of a small gRPC call
(bench/load.py: 1.39 -> 1.24 ms of server CPU per GetStrategy, and a bare grpc.aio server's
0.35 -> 0.31 ms), because the loop's own bookkeeping (callbacks, timers, the self-pipe the
database threads wake it with) runs in C. grpc.aio needs nothing of the loop but readers
and callbacks, which uvloop implements. `STRATOPT_EVENT_LOOP=asyncio` switches back, for a
platform without uvloop wheels or to rule the loop out when chasing a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from stratopt.server.bootstrap import BootstrapError

T = TypeVar("T")
CHOICES = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T], choice: str) -> T:
    """`asyncio.run(main)` on the loop `choice` names."""
    if choice == "asyncio":
        return asyncio.run(main)
    if choice != "uvloop":
        main.close()
        raise BootstrapError(f"event_loop must be one of {', '.join(CHOICES)}, not {choice!r}")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
