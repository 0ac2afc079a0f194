"""Give freed memory back to the system after a call that brought in a very large message.

gRPC reads a message into buffers of about 64 KB, allocated by its own threads in their own
malloc arenas. Once freed they stay with the process: glibc hands back only whole free
pages at the top of an arena, and these lie scattered. Each refused 50 MB request left
some 20-50 MB behind, and RSS crept up by a few hundred MB over a dozen of them (issue 14).
`malloc_trim(0)` returns every free page of every arena, in a few milliseconds; it runs in a
worker thread shortly after such a call, never on the event loop and never twice at a time.
"""

from __future__ import annotations

import asyncio

from stratopt.data.importers import return_freed_memory

TRIM_DELAY_S = 0.2
"""Time for gRPC to drop the call's buffers: some go only once the handler has returned."""

_tasks: set[asyncio.Task[None]] = set()
_waiting: list[bool] = [False]
"""Whether a trim is scheduled and has not started yet (it will cover this call too)."""


def trim_soon() -> None:
    """Schedules a trim on the running loop, unless one is already waiting to start."""
    if _waiting[0]:
        return
    _waiting[0] = True
    task = asyncio.get_running_loop().create_task(_trim())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _trim() -> None:
    try:
        await asyncio.sleep(TRIM_DELAY_S)
    finally:
        _waiting[0] = False
    await asyncio.to_thread(return_freed_memory)
