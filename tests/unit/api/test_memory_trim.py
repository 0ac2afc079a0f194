"""Trims after very large requests: one at a time, and none missed (api/memory_trim.py)."""

from __future__ import annotations

import asyncio

import pytest

from stratopt.api import memory_trim


async def test_calls_while_a_trim_waits_share_it_and_later_ones_get_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memory_trim, "TRIM_DELAY_S", 0.05)
    monkeypatch.setattr(memory_trim, "return_freed_memory", lambda: trims.append(1))
    for _ in range(5):
        memory_trim.trim_soon()
    assert len(memory_trim._tasks) == 1
    await asyncio.gather(*memory_trim._tasks)
    assert trims == [1]
    memory_trim.trim_soon()  # a call after the trim started frees more: it needs its own
    await asyncio.gather(*memory_trim._tasks)
    assert trims == [1, 1]
