"""`STRATOPT_EVENT_LOOP`: server processes run on uvloop unless told otherwise."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from stratopt.server import event_loop
from stratopt.server.bootstrap import BootstrapError
from stratopt.server.settings import Settings, from_env


async def loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default_and_asyncio_on_request() -> None:
    assert Settings().event_loop == "uvloop"
    assert from_env({"STRATOPT_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert event_loop.run(loop_type(), "uvloop") is uvloop.Loop
    assert not issubclass(event_loop.run(loop_type(), "asyncio"), uvloop.Loop)


def test_an_unknown_loop_is_a_clear_start_up_error() -> None:
    with pytest.raises(BootstrapError, match="uvloop, asyncio"):
        event_loop.run(loop_type(), "trio")
