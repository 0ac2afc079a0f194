"""Sequenced fan-out: one publisher, many subscribers, bounded memory, exact resume.

Shared by the live streams (signals, alerts, performance, notifications: `stratopt.live`)
and the job watchers (`stratopt.jobs.watch`), which is why it is the bottom layer and
imports nothing but the standard library.

A `Topic` is one stream (for example ``("signals", strategy_id)``, ``("alerts",
strategy_id)`` or ``("notifications", user_id)``). The publisher numbers its events: every
event has an integer ``sequence`` and each published sequence must be greater than the
previous one (gaps are allowed; the topic rejects a sequence that does not increase with
`SequenceError`). Events are any object with a ``sequence`` attribute (the `Sequenced`
protocol); `Event` is a ready-made generic dataclass for ``(sequence, payload)``.

Publishing is synchronous and never awaits: `Topic.publish` appends the event to each
subscriber's bounded queue (a `collections.deque`) and wakes the subscribers that are
waiting (one future each). A slow subscriber therefore never slows the publisher or the
other subscribers. When a subscriber's queue is full, its *oldest* entry is dropped and
its ``dropped`` counter grows; the subscriber sees the running total on every `Delivery`
it reads afterwards, so a client can tell that (and how much) it missed. In *coalescing*
mode (for snapshot streams such as performance), each subscriber keeps only the latest
event and ``dropped`` counts the snapshots that were replaced before being read.

Resume (`Topic.subscribe`):

- ``after_sequence=0`` (the default) means *only new events*: the subscription sees what
  is published after `subscribe` returns. This matches the contract's
  ``after_sequence = 0 = only new``.
- ``after_sequence=N > 0`` (or ``from_start=True``, which means "after 0") replays the
  stored history first, then continues live, with no gap and no duplicate across the
  boundary. It needs a ``history`` reader: ``async (after_sequence, limit) -> events``,
  returning at most ``limit`` events with ``sequence > after_sequence`` in ascending order;
  a page shorter than ``limit`` means "no more for now". The subscription registers for
  live events *before* reading history, buffers them in its bounded queue while it pages
  through history, then drops the buffered events that history already delivered. If
  the live buffer overflowed while history was being read (events were dropped that
  history had not yet returned), it reads history again until it has caught up, so the
  drops are recovered from storage and not reported. History must also reach the last
  sequence that was published before the subscription was made. This is exact provided
  an event is visible to the history reader once it has been published (persisted
  first, or kept in a write-behind buffer that the reader also reads). A reader that
  lags behind (a flush in progress, a replica) is re-read after short pauses, for about
  1.6 s in all; after that the subscription fails with `HubError` rather than skip.
- A subscription never delivers an event at or below the sequence it has reached (its
  ``after_sequence``, then the last event delivered from history). A publisher that
  crashed after publishing events but before storing them publishes them again, with the
  same sequences, once it resumes; a client that saw them before the crash and resumes
  after the newest one gets each exactly once. Such events are not counted as dropped.

Without a history reader only ``after_sequence=0`` is accepted (a silent gap would be
worse than an error). The history reader is called with pages of ``page_size`` events, so
a long replay holds one page in memory at a time.

Lifetime: a subscription is registered from `subscribe` until it is closed: by
`Subscription.close`/`aclose`, by leaving ``async with``, by cancelling a task that is
waiting in ``__anext__`` (like an async generator: cancellation ends the subscription), by
garbage collection of an unclosed subscription, or when the topic closes. `Topic.close`
(for example when a strategy stops) lets each subscriber read what is already queued for
it and then ends its iteration; the optional reason is available as
`Subscription.close_reason`. A topic holds no events of its own: with no subscribers it
holds nothing but its last sequence.

Everything here runs on one event loop thread; call `Topic.publish` from that thread
(from another thread use ``loop.call_soon_threadsafe(topic.publish, event)``).

`Hub` is a small registry of topics by key: the runner ``open``s a topic when a strategy
starts and ``close``s it when it stops; ``subscribe`` on a key that nobody opened creates
an ephemeral topic that disappears with its last subscriber (for per-user notifications,
which are published to whoever is listening).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "DEFAULT_MAXSIZE",
    "DEFAULT_PAGE_SIZE",
    "Delivery",
    "Event",
    "HistoryReader",
    "Hub",
    "HubError",
    "SequenceError",
    "Sequenced",
    "Subscription",
    "Topic",
    "TopicClosedError",
]

DEFAULT_MAXSIZE = 1024
DEFAULT_PAGE_SIZE = 500
# A history reader that has not caught up with what was published (a write-behind buffer
# being flushed, a lagging replica) is re-read with these pauses, then the read fails.
_LAG_DELAYS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.25, 0.25, 0.25, 0.25)


class Sequenced(Protocol):
    """Anything with an integer ``sequence`` (a dataclass, a protobuf message, a row)."""

    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=Sequenced)
P = TypeVar("P")

HistoryReader = Callable[[int, int], Awaitable[Sequence[E]]]
"""``async (after_sequence, limit) -> events`` with ``sequence > after_sequence``, ascending."""


@dataclass(frozen=True, slots=True)
class Event(Generic[P]):
    """A generic sequenced event: the hub only looks at ``sequence``."""

    sequence: int
    payload: P


@dataclass(frozen=True, slots=True)
class Delivery(Generic[E]):
    """One event as a subscriber receives it.

    ``dropped`` is the running total of events this subscription lost because its queue
    was full (or, in coalescing mode, snapshots replaced by a newer one) before this
    delivery; it never decreases, so a change between two deliveries is the size of the
    gap. ``replayed`` is true for events read from history rather than received live.
    """

    event: E
    dropped: int = 0
    replayed: bool = False


class HubError(Exception):
    """Base class for the hub's errors."""


class SequenceError(HubError, ValueError):
    """A published sequence did not increase."""


class TopicClosedError(HubError, RuntimeError):
    """Publishing to a closed topic."""


class _Sink:
    """A subscriber's side of the topic: what `Topic.publish` touches, nothing else."""

    __slots__ = ("closed", "dropped", "floor", "last_dropped", "maxsize", "queue", "waiter")

    def __init__(self, maxsize: int, floor: int = 0) -> None:
        self.queue: deque[Any] = deque()
        self.maxsize = maxsize
        # Events at or below this sequence are not queued: the subscriber has them already
        # (it resumed after them). A publisher that re-publishes after a restart (events
        # published but not yet stored when it crashed) must not deliver them twice.
        self.floor = floor
        self.dropped = 0
        # Sequence of the newest dropped event: the resume logic re-reads history past it.
        self.last_dropped = 0
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)


def _wake_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class Topic(Generic[E]):
    """One stream: sequenced events fanned out to bounded per-subscriber queues.

    ``maxsize`` is the default per-subscriber queue bound (a subscription may ask for its
    own); ``coalesce=True`` keeps only the latest undelivered event per subscriber;
    ``last_sequence`` is the sequence already published before this topic existed (after a
    restart the next event must be greater).
    """

    def __init__(
        self,
        key: Hashable = None,
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        coalesce: bool = False,
        last_sequence: int = 0,
    ) -> None:
        self._key = key
        self._maxsize = _check_size("maxsize", maxsize)
        self._coalesce = bool(coalesce)
        self._last = int(last_sequence)
        self._sinks: dict[_Sink, None] = {}
        self._closed = False
        self._reason: str | None = None
        self._on_idle: Callable[[Topic[E]], None] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Topic {self._key!r} {state} last_sequence={self._last} "
            f"subscribers={len(self._sinks)}>"
        )

    @property
    def key(self) -> Hashable:
        return self._key

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def coalesce(self) -> bool:
        return self._coalesce

    @property
    def last_sequence(self) -> int:
        """The newest published sequence (or the starting value)."""
        return self._last

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def close_reason(self) -> str | None:
        return self._reason

    @property
    def subscriber_count(self) -> int:
        return len(self._sinks)

    def publish(self, event: E) -> int:
        """Queue `event` for every subscriber; returns how many there were.

        Never blocks and never awaits. Raises `SequenceError` if ``event.sequence`` is not
        greater than the last published one, `TopicClosedError` after `close`.
        """
        sequence = event.sequence
        if self._closed:
            raise TopicClosedError(f"topic {self._key!r} is closed")
        if sequence <= self._last:
            raise SequenceError(
                f"topic {self._key!r}: sequence {sequence} does not follow {self._last}"
            )
        self._last = sequence
        for sink in self._sinks:
            if sequence <= sink.floor:
                continue
            queue = sink.queue
            if len(queue) >= sink.maxsize:
                sink.last_dropped = queue.popleft().sequence
                sink.dropped += 1
            queue.append(event)
            waiter = sink.waiter
            if waiter is not None:
                sink.waiter = None
                if not waiter.done():
                    waiter.set_result(None)
        return len(self._sinks)

    def close(self, reason: str | None = None) -> None:
        """End every subscription (after it reads what is queued) and refuse new events.

        Idempotent; the first reason wins.
        """
        if self._closed:
            return
        self._closed = True
        self._reason = reason
        sinks = list(self._sinks)
        self._sinks.clear()
        for sink in sinks:
            sink.closed = True
            sink.wake()
        if self._on_idle is not None:
            self._on_idle(self)

    def subscribe(
        self,
        *,
        after_sequence: int = 0,
        from_start: bool = False,
        history: HistoryReader[E] | None = None,
        maxsize: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Subscription[E]:
        """Register a subscriber now and return its async iterator of `Delivery`.

        ``after_sequence=0`` without ``from_start``: live events only. ``after_sequence > 0``
        or ``from_start=True``: stored history after that sequence (read from ``history`` in
        pages of ``page_size``), then live, exactly once each. On a closed topic the
        subscription replays the requested history, then ends.
        """
        if isinstance(after_sequence, bool) or not isinstance(after_sequence, int):
            raise TypeError(f"after_sequence must be an int, got {after_sequence!r}")
        if after_sequence < 0:
            raise ValueError(f"after_sequence must be >= 0, got {after_sequence}")
        _check_size("page_size", page_size)
        replay = from_start or after_sequence > 0
        if replay and history is None:
            raise ValueError(
                "resuming after a sequence (after_sequence > 0 or from_start) needs a "
                "history reader"
            )
        if self._coalesce:
            size = 1
        else:
            size = self._maxsize if maxsize is None else _check_size("maxsize", maxsize)
        sink = _Sink(size, after_sequence)
        if self._closed:
            sink.closed = True
        else:
            self._sinks[sink] = None
        return Subscription(
            self,
            sink,
            history=history if replay else None,
            after_sequence=after_sequence,
            page_size=page_size,
            required=self._last,
        )

    def _remove(self, sink: _Sink) -> None:
        if self._sinks.pop(sink, 0) is None and not self._sinks and self._on_idle is not None:
            self._on_idle(self)


class Subscription(Generic[E]):
    """An async iterator of `Delivery` values; also an async context manager.

    Read it with ``async for delivery in sub`` (or `get` with a timeout, or `poll`). It
    is not safe to read one subscription from two tasks at once.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_cursor",
        "_history",
        "_history_done",
        "_lag",
        "_page",
        "_page_size",
        "_required",
        "_sink",
        "_topic",
    )

    def __init__(
        self,
        topic: Topic[E],
        sink: _Sink,
        *,
        history: HistoryReader[E] | None,
        after_sequence: int,
        page_size: int,
        required: int = 0,
    ) -> None:
        self._topic = topic
        self._sink = sink
        self._history = history
        self._history_done = False
        # Only a replaying subscription needs a page buffer (an empty deque is ~760 bytes).
        self._page: deque[E] | None = deque() if history is not None else None
        self._page_size = page_size
        self._cursor = after_sequence
        self._closed = False
        # Published before this subscription existed, so history must reach it.
        self._required = required
        self._lag = (after_sequence, 0)  # (cursor at the last check, fruitless re-reads)

    def __repr__(self) -> str:
        phase = "ended" if self._closed else ("replaying" if self._history else "live")
        return (
            f"<Subscription {self._topic.key!r} {phase} last_sequence={self._cursor} "
            f"dropped={self.dropped}>"
        )

    @property
    def topic(self) -> Topic[E]:
        return self._topic

    @property
    def dropped(self) -> int:
        """Events lost so far (the value the next `Delivery` carries, or more)."""
        return 0 if self._history is not None else self._sink.dropped

    @property
    def pending(self) -> int:
        """Live events queued and not yet read."""
        return len(self._sink.queue)

    @property
    def last_sequence(self) -> int:
        """Sequence of the last event delivered (or the ``after_sequence`` it started at)."""
        return self._cursor

    @property
    def replaying(self) -> bool:
        """Still delivering stored history."""
        return self._history is not None

    @property
    def closed(self) -> bool:
        """No more events will be delivered (closed, or ended by the topic and drained)."""
        return self._closed

    @property
    def close_reason(self) -> str | None:
        """The reason given to `Topic.close`, if the topic ended this subscription."""
        return self._topic.close_reason if self._sink.closed else None

    def __aiter__(self) -> Subscription[E]:
        return self

    async def __anext__(self) -> Delivery[E]:
        if self._history is None:
            # The live hot path, inlined (one coroutine per read, not two).
            sink = self._sink
            queue = sink.queue
            while True:
                if queue:
                    event = queue.popleft()
                    self._cursor = event.sequence
                    return Delivery(event, sink.dropped)
                if self._closed or sink.closed:
                    self._end()
                    raise StopAsyncIteration
                if sink.waiter is not None:
                    raise RuntimeError("another task is already reading this subscription")
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                sink.waiter = waiter  # publish(), close() and Topic.close() reset it
                try:
                    await waiter
                except asyncio.CancelledError:
                    self.close()
                    raise
        delivery = await self._next(None)
        assert delivery is not None  # without a timeout, _next returns or raises
        return delivery

    async def get(self, timeout: float | None = None) -> Delivery[E] | None:
        """The next delivery; None if none arrives within `timeout` seconds (live phase).

        Unlike ``asyncio.wait_for(anext(sub), t)``, a timeout does not end the
        subscription (use it for heartbeats). Raises `StopAsyncIteration` once the
        subscription has ended. History pages are not subject to the timeout.
        """
        return await self._next(timeout)

    def poll(self) -> Delivery[E] | None:
        """The next queued live delivery without waiting, or None if none is queued.

        Raises `StopAsyncIteration` once ended, and `RuntimeError` while history is still
        to be replayed (that needs awaiting).
        """
        if self._history is not None:
            raise RuntimeError("poll() is not available while history is replayed; use get()")
        sink = self._sink
        if sink.queue:
            return self._take(sink)
        if sink.closed or self._closed:
            self._end()
            raise StopAsyncIteration
        return None

    def close(self) -> None:
        """Unsubscribe and discard anything queued. Idempotent; safe from any callback."""
        if self._closed:
            return
        self._closed = True
        sink = self._sink
        self._topic._remove(sink)
        sink.queue.clear()
        self._page = None
        self._history = None
        sink.wake()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> Subscription[E]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # An abandoned subscription must not stay registered (and keep receiving events).
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self._topic._remove(self._sink)

    # internals

    def _take(self, sink: _Sink) -> Delivery[E]:
        event = sink.queue.popleft()
        self._cursor = event.sequence
        return Delivery(event, sink.dropped)

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._topic._remove(self._sink)

    async def _next(self, timeout: float | None) -> Delivery[E] | None:
        if self._history is not None:
            replayed = await self._next_replayed()
            if replayed is not None:
                return replayed
        sink = self._sink
        if sink.queue:
            return self._take(sink)
        loop: asyncio.AbstractEventLoop | None = None
        # The wake-up timer and its deadline, kept here: uvloop answers call_later(0) with a
        # plain Handle, which has no when().
        handle: asyncio.Handle | None = None
        deadline = 0.0
        try:
            while True:
                if self._closed or sink.closed:
                    self._end()
                    raise StopAsyncIteration
                if sink.waiter is not None:
                    raise RuntimeError("another task is already reading this subscription")
                if loop is None:
                    loop = asyncio.get_running_loop()
                waiter: asyncio.Future[None] = loop.create_future()
                if timeout is not None and handle is None:
                    deadline = loop.time() + timeout
                    handle = loop.call_later(timeout, _wake_future, waiter)
                elif handle is not None:
                    # A spurious wake-up: keep the original deadline for the new waiter.
                    remaining = deadline - loop.time()
                    handle.cancel()
                    if remaining <= 0:
                        return None
                    handle = loop.call_later(remaining, _wake_future, waiter)
                sink.waiter = waiter
                try:
                    await waiter
                except asyncio.CancelledError:
                    self.close()
                    raise
                finally:
                    if sink.waiter is waiter:
                        sink.waiter = None
                if sink.queue:
                    return self._take(sink)
                if handle is not None and loop.time() >= deadline:
                    return None
        finally:
            if handle is not None:
                handle.cancel()

    async def _next_replayed(self) -> Delivery[E] | None:
        """The next history event, or None once switched to live."""
        while True:
            page = self._page
            if page is None:  # closed meanwhile
                raise StopAsyncIteration
            if page:
                event = page.popleft()
                self._cursor = event.sequence
                return Delivery(event, 0, True)
            if self._closed:
                raise StopAsyncIteration
            sink = self._sink
            if self._history_done:
                # History must reach what was published before we subscribed, and what the
                # live buffer dropped meanwhile; if it has not, read on.
                behind = max(self._required, sink.last_dropped)
                if self._cursor < behind:
                    await self._wait_for_history(behind)
                    self._history_done = False
                    continue
                # Switch to live, atomically with respect to publish (no await below).
                queue = sink.queue
                cursor = self._cursor
                while queue and queue[0].sequence <= cursor:
                    queue.popleft()
                sink.floor = cursor
                sink.dropped = 0  # every drop so far was recovered from history
                self._history = None
                self._page = None
                return None
            reader = self._history
            assert reader is not None
            try:
                events = await reader(self._cursor, self._page_size)
            except BaseException:
                self.close()  # like an async generator: an error or a cancel ends it
                raise
            if self._closed:
                raise StopAsyncIteration
            previous = self._cursor
            for event in events:
                sequence = event.sequence
                if sequence <= previous:
                    if page:
                        self.close()
                        raise HubError(
                            f"history reader for {self._topic.key!r} returned sequence "
                            f"{sequence} after {previous} (must be ascending)"
                        )
                    continue  # tolerate a reader that includes after_sequence itself
                page.append(event)
                previous = sequence
            if len(events) < self._page_size:
                self._history_done = True
            elif not page:
                self.close()
                raise HubError(
                    f"history reader for {self._topic.key!r} returned a full page with "
                    f"nothing after {self._cursor}"
                )

    async def _wait_for_history(self, behind: int) -> None:
        """Pause before re-reading history that made no progress; give up after a while."""
        last_cursor, fruitless = self._lag
        if self._cursor != last_cursor:
            self._lag = (self._cursor, 0)  # progress: re-read at once
            return
        if fruitless >= len(_LAG_DELAYS):
            self.close()
            raise HubError(
                f"history for {self._topic.key!r} ends at sequence {self._cursor} but "
                f"{behind} was published; the store is not catching up"
            )
        self._lag = (last_cursor, fruitless + 1)
        try:
            await asyncio.sleep(_LAG_DELAYS[fruitless])
        except BaseException:
            self.close()
            raise


class Hub(Generic[E]):
    """Topics by key.

    ``maxsize`` is the default per-subscriber queue bound; ``coalesce(key)`` decides
    whether a topic created for `key` coalesces (for example
    ``lambda key: key[0] == "performance"``). A topic is forgotten when it is closed
    (through the hub or directly), and an ephemeral one also when its last subscriber
    leaves; the next `open` or `subscribe` for the key starts a fresh topic.
    """

    def __init__(
        self,
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        coalesce: Callable[[Hashable], bool] | None = None,
    ) -> None:
        self._maxsize = _check_size("maxsize", maxsize)
        self._coalesce = coalesce
        self._topics: dict[Hashable, Topic[E]] = {}
        self._pinned: set[Hashable] = set()

    def _create(self, key: Hashable, last_sequence: int) -> Topic[E]:
        coalesce = bool(self._coalesce(key)) if self._coalesce is not None else False
        topic: Topic[E] = Topic(
            key, maxsize=self._maxsize, coalesce=coalesce, last_sequence=last_sequence
        )
        topic._on_idle = self._idle
        self._topics[key] = topic
        return topic

    def _idle(self, topic: Topic[E]) -> None:
        """A topic lost its last subscriber, or was closed: forget it unless it is open."""
        key = topic.key
        if self._topics.get(key) is not topic:
            return
        if topic.closed:
            self._pinned.discard(key)
            del self._topics[key]
        elif key not in self._pinned:
            del self._topics[key]

    def open(self, key: Hashable, *, last_sequence: int | None = None) -> Topic[E]:
        """The topic for `key`, kept until `close` (a running strategy's streams).

        Adopts an ephemeral topic that subscribers created (they keep their subscriptions).
        ``last_sequence`` sets where sequences resume; it may not go backwards.
        """
        topic = self._topics.get(key)
        if topic is None:
            topic = self._create(key, last_sequence or 0)
        elif last_sequence is not None:
            if last_sequence < topic.last_sequence:
                raise SequenceError(
                    f"topic {key!r}: last_sequence {last_sequence} is behind {topic.last_sequence}"
                )
            topic._last = last_sequence
        self._pinned.add(key)
        return topic

    def get(self, key: Hashable) -> Topic[E] | None:
        return self._topics.get(key)

    def subscribe(
        self,
        key: Hashable,
        *,
        after_sequence: int = 0,
        from_start: bool = False,
        history: HistoryReader[E] | None = None,
        maxsize: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Subscription[E]:
        """Subscribe to `key`, creating an ephemeral topic if nobody opened it."""
        topic = self._topics.get(key)
        if topic is None:
            topic = self._create(key, 0)
        return topic.subscribe(
            after_sequence=after_sequence,
            from_start=from_start,
            history=history,
            maxsize=maxsize,
            page_size=page_size,
        )

    def publish(self, key: Hashable, event: E) -> int:
        """Publish to `key` if its topic exists; returns the number of subscribers."""
        topic = self._topics.get(key)
        if topic is None:
            return 0
        return topic.publish(event)

    def close(self, key: Hashable, reason: str | None = None) -> None:
        """Close and forget the topic for `key` (its subscribers end)."""
        self._pinned.discard(key)
        topic = self._topics.pop(key, None)
        if topic is not None:
            topic.close(reason)

    def close_all(self, reason: str | None = None) -> None:
        for key in list(self._topics):
            self.close(key, reason)

    @property
    def topic_count(self) -> int:
        return len(self._topics)

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions across all topics (the overview's "open streams")."""
        return sum(topic.subscriber_count for topic in self._topics.values())

    def keys(self) -> list[Hashable]:
        return list(self._topics)
