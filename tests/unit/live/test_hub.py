"""The live stream hub: ordering, bounded queues, drop counters, exact resume, lifetime."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import tracemalloc
import weakref
from collections.abc import Sequence

import pytest
import uvloop

from stratopt.fanout import (
    Delivery,
    Event,
    Hub,
    HubError,
    SequenceError,
    Subscription,
    Topic,
    TopicClosedError,
)


class Store:
    """Stands in for the database: the publisher persists, then publishes."""

    def __init__(self, *, delay: float = 0.0, jitter: float = 0.0, seed: int = 0) -> None:
        self.events: list[Event[int]] = []
        self.delay = delay
        self.jitter = jitter
        self.reads: list[tuple[int, int]] = []
        self._random = random.Random(seed)

    def append(self, event: Event[int]) -> None:
        self.events.append(event)

    async def read(self, after: int, limit: int) -> list[Event[int]]:
        self.reads.append((after, limit))
        if self.delay or self.jitter:
            await asyncio.sleep(self.delay + self._random.random() * self.jitter)
        else:
            await asyncio.sleep(0)
        # Evaluated after the await: what is committed *now* is visible.
        return [e for e in self.events if e.sequence > after][:limit]


def persist_and_publish(topic: Topic[Event[int]], store: Store, sequence: int) -> None:
    event = Event(sequence, sequence * 10)
    store.append(event)
    topic.publish(event)


async def take(sub: Subscription[Event[int]], n: int) -> list[Delivery[Event[int]]]:
    return [await anext(sub) for _ in range(n)]


def seqs(deliveries: Sequence[Delivery[Event[int]]]) -> list[int]:
    return [d.event.sequence for d in deliveries]


# --- basics -------------------------------------------------------------------------------


async def test_delivers_in_order_with_payload() -> None:
    topic: Topic[Event[str]] = Topic("k")
    sub = topic.subscribe()
    for i in range(1, 6):
        assert topic.publish(Event(i, f"p{i}")) == 1
    got = [await anext(sub) for _ in range(5)]
    assert [d.event.payload for d in got] == ["p1", "p2", "p3", "p4", "p5"]
    assert all(d.dropped == 0 and not d.replayed for d in got)
    assert sub.last_sequence == 5


async def test_sequences_must_increase_gaps_allowed() -> None:
    topic: Topic[Event[int]] = Topic("k", last_sequence=10)
    with pytest.raises(SequenceError, match="sequence 10 does not follow 10"):
        topic.publish(Event(10, 0))
    topic.publish(Event(11, 0))
    topic.publish(Event(20, 0))  # gaps are fine
    with pytest.raises(SequenceError):
        topic.publish(Event(20, 0))
    with pytest.raises(SequenceError):
        topic.publish(Event(5, 0))
    assert topic.last_sequence == 20


async def test_publish_without_subscribers_holds_nothing() -> None:
    class Ev:
        __slots__ = ("__weakref__", "sequence")

        def __init__(self, sequence: int) -> None:
            self.sequence = sequence

    topic: Topic[Ev] = Topic("k")
    refs = []
    for i in range(1, 100):
        ev = Ev(i)
        refs.append(weakref.ref(ev))
        assert topic.publish(ev) == 0
        del ev
    gc.collect()
    assert all(r() is None for r in refs)
    assert topic.subscriber_count == 0


def test_publish_is_synchronous_and_needs_no_loop() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()
    topic.publish(Event(1, 1))  # no running loop: appending never awaits
    assert sub.poll() == Delivery(Event(1, 1), 0)
    sub.close()


async def test_invalid_arguments() -> None:
    topic: Topic[Event[int]] = Topic("k")
    with pytest.raises(ValueError, match="maxsize"):
        Topic("k", maxsize=0)
    with pytest.raises(ValueError, match="after_sequence"):
        topic.subscribe(after_sequence=-1)
    with pytest.raises(TypeError):
        topic.subscribe(after_sequence=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history reader"):
        topic.subscribe(after_sequence=3)
    with pytest.raises(ValueError, match="history reader"):
        topic.subscribe(from_start=True)
    with pytest.raises(ValueError, match="page_size"):
        topic.subscribe(after_sequence=1, history=Store().read, page_size=0)
    assert topic.subscriber_count == 0


# --- fan-out --------------------------------------------------------------------------------


async def test_200_concurrent_subscribers_receive_every_event_in_order() -> None:
    topic: Topic[Event[int]] = Topic(("signals", "s1"))
    total = 2_000
    subs = [topic.subscribe() for _ in range(200)]

    async def consume(sub: Subscription[Event[int]]) -> tuple[list[int], int]:
        got: list[int] = []
        dropped = 0
        async for d in sub:
            got.append(d.event.sequence)
            dropped = d.dropped
        return got, dropped

    tasks = [asyncio.create_task(consume(s)) for s in subs]
    for seq in range(1, total + 1):
        topic.publish(Event(seq, seq))
        if seq % 50 == 0:
            await asyncio.sleep(0)  # a real publisher yields between bars
    topic.close("stopped")
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    expected = list(range(1, total + 1))
    for got, dropped in results:
        assert got == expected
        assert dropped == 0
    assert all(s.close_reason == "stopped" and s.closed for s in subs)
    assert topic.subscriber_count == 0


async def test_stalled_subscriber_does_not_delay_others_and_sees_its_drops() -> None:
    topic: Topic[Event[float]] = Topic(("signals", "s1"), maxsize=1024)
    stalled = topic.subscribe(maxsize=100)
    readers = [topic.subscribe() for _ in range(50)]
    latencies: list[float] = []
    total = 3_000

    async def read(sub: Subscription[Event[float]]) -> list[int]:
        got = []
        async for d in sub:
            latencies.append(time.perf_counter() - d.event.payload)
            got.append(d.event.sequence)
            assert d.dropped == 0
        return got

    tasks = [asyncio.create_task(read(s)) for s in readers]
    publish_cost = 0.0
    for seq in range(1, total + 1):
        start = time.perf_counter()
        topic.publish(Event(seq, start))
        publish_cost = max(publish_cost, time.perf_counter() - start)
        await asyncio.sleep(0)
    # The stalled subscriber's queue is capped, and everyone else kept up.
    assert stalled.pending == 100
    assert stalled.dropped == total - 100
    assert all(s.pending == 0 for s in readers)
    assert max(latencies) < 0.5  # generous: they are woken on the same loop turn
    assert publish_cost < 0.1  # publish() is synchronous: no waiting on anyone

    # When it finally reads: the newest 100 events, with the drop counter.
    first = await anext(stalled)
    assert first.event.sequence == total - 99
    assert first.dropped == total - 100
    rest = [stalled.poll() for _ in range(99)]
    assert [d.event.sequence for d in rest if d] == list(range(total - 98, total + 1))
    assert stalled.poll() is None

    # New events after catching up carry the same total.
    topic.publish(Event(total + 1, time.perf_counter()))
    assert (await anext(stalled)).dropped == total - 100
    topic.close()
    results = await asyncio.gather(*tasks)
    assert all(r == list(range(1, total + 2)) for r in results)


async def test_drop_counter_grows_between_reads() -> None:
    topic: Topic[Event[int]] = Topic("k", maxsize=2)
    sub = topic.subscribe()
    for i in range(1, 6):
        topic.publish(Event(i, i))
    assert seqs(await take(sub, 2)) == [4, 5]
    assert sub.dropped == 3
    for i in range(6, 10):
        topic.publish(Event(i, i))
    got = await take(sub, 2)
    assert seqs(got) == [8, 9]
    assert [d.dropped for d in got] == [5, 5]


async def test_coalescing_keeps_latest_and_counts_replaced() -> None:
    topic: Topic[Event[str]] = Topic(("performance", "s1"), coalesce=True, maxsize=1024)
    sub = topic.subscribe(maxsize=50)  # ignored: a coalescing topic keeps one
    other = topic.subscribe()
    for i in range(1, 11):
        topic.publish(Event(i, f"snap{i}"))
    d = await anext(sub)
    assert d.event == Event(10, "snap10")
    assert d.dropped == 9
    assert sub.poll() is None
    topic.publish(Event(11, "snap11"))
    assert (await anext(sub)) == Delivery(Event(11, "snap11"), 9)
    # A subscriber that reads every snapshot loses none.
    topic.publish(Event(12, "snap12"))
    assert (await anext(sub)).dropped == 9
    assert (await anext(other)).event.sequence == 12
    assert other.dropped == 11


async def test_coalescing_reader_keeps_up_without_drops() -> None:
    topic: Topic[Event[int]] = Topic("perf", coalesce=True)
    sub = topic.subscribe()
    got = []

    async def read() -> None:
        async for d in sub:
            got.append((d.event.sequence, d.dropped))

    task = asyncio.create_task(read())
    for i in range(1, 51):
        topic.publish(Event(i, i))
        await asyncio.sleep(0.001)
    topic.close()
    await task
    assert got == [(i, 0) for i in range(1, 51)]


# --- resume ---------------------------------------------------------------------------------


async def test_after_sequence_zero_means_only_new() -> None:
    store = Store()
    topic: Topic[Event[int]] = Topic("k")
    for i in range(1, 6):
        persist_and_publish(topic, store, i)
    sub = topic.subscribe(after_sequence=0, history=store.read)
    persist_and_publish(topic, store, 6)
    assert (await anext(sub)).event.sequence == 6
    assert store.reads == []


async def test_from_start_replays_everything_then_live() -> None:
    store = Store()
    topic: Topic[Event[int]] = Topic("k")
    for i in range(1, 8):
        persist_and_publish(topic, store, i)
    sub = topic.subscribe(from_start=True, history=store.read, page_size=3)
    got = await take(sub, 7)
    assert seqs(got) == list(range(1, 8))
    assert all(d.replayed and d.dropped == 0 for d in got)
    assert sub.replaying
    persist_and_publish(topic, store, 8)
    live = await anext(sub)
    assert live.event.sequence == 8 and not live.replayed
    assert not sub.replaying
    assert store.reads == [(0, 3), (3, 3), (6, 3)]


async def test_resume_across_boundary_no_gap_no_duplicate() -> None:
    store = Store(delay=0.002)
    topic: Topic[Event[int]] = Topic("k")
    for i in range(1, 101):
        persist_and_publish(topic, store, i)
    sub = topic.subscribe(after_sequence=40, history=store.read, page_size=16)

    async def publisher() -> None:
        for i in range(101, 301):
            persist_and_publish(topic, store, i)
            await asyncio.sleep(0.0005)  # publishes while history is being read

    task = asyncio.create_task(publisher())
    got = await asyncio.wait_for(take(sub, 260), 30)
    await task
    assert seqs(got) == list(range(41, 301))
    assert all(d.dropped == 0 for d in got)
    assert any(d.replayed for d in got) and not got[-1].replayed


async def test_resume_recovers_live_buffer_overflow_from_history() -> None:
    """The live buffer (4 events) overflows while history is read: re-read, no gap."""
    store = Store(delay=0.003)
    topic: Topic[Event[int]] = Topic("k", maxsize=4)
    for i in range(1, 21):
        persist_and_publish(topic, store, i)
    sub = topic.subscribe(after_sequence=5, history=store.read, page_size=5)

    async def publisher() -> None:
        for i in range(21, 121):
            persist_and_publish(topic, store, i)
            if i % 10 == 0:
                await asyncio.sleep(0.001)

    task = asyncio.create_task(publisher())
    got: list[Delivery[Event[int]]] = []
    while len(got) < 115:
        got.append(await asyncio.wait_for(anext(sub), 10))
    await task
    assert seqs(got) == list(range(6, 121))
    assert all(d.dropped == 0 for d in got)
    assert len(store.reads) > 4  # it went back to history


@pytest.mark.parametrize("seed", range(12))
async def test_resume_randomized_interleavings(seed: int) -> None:
    rnd = random.Random(seed)
    store = Store(jitter=0.002, seed=seed)
    topic: Topic[Event[int]] = Topic("k", maxsize=rnd.choice([2, 8, 64, 1024]))
    initial = rnd.randint(0, 60)
    total = initial + rnd.randint(1, 150)
    numbers = []
    sequence = 0
    for _ in range(total):
        sequence += rnd.randint(1, 3)  # gaps in sequences
        numbers.append(sequence)
    for n in numbers[:initial]:
        persist_and_publish(topic, store, n)
    after = rnd.choice([0, *numbers[: initial // 2]])
    sub = topic.subscribe(
        after_sequence=after,
        from_start=after == 0,
        history=store.read,
        page_size=rnd.choice([1, 3, 10, 500]),
    )

    async def publisher() -> None:
        for n in numbers[initial:]:
            persist_and_publish(topic, store, n)
            if rnd.random() < 0.3:
                await asyncio.sleep(rnd.random() * 0.002)

    task = asyncio.create_task(publisher())
    got: list[Delivery[Event[int]]] = []
    try:
        while True:
            # A reader that is sometimes slower than the publisher: with a small queue it
            # may lose live events, but only with the counter telling it so.
            d = await asyncio.wait_for(anext(sub), 10)
            got.append(d)
            if rnd.random() < 0.1:
                await asyncio.sleep(0.001)
            if d.event.sequence == numbers[-1]:
                break
    finally:
        sub.close()
    await task
    expected = [n for n in numbers if n > after]
    received = seqs(got)
    assert received == sorted(set(received))  # in order, no duplicate
    assert set(received) <= set(expected)
    missing = set(expected) - set(received)
    assert len(missing) == got[-1].dropped  # every loss is counted
    if topic.maxsize >= total:  # no live loss possible: exact
        assert received == expected
    replayed = [d.event.sequence for d in got if d.replayed]
    assert all(d.dropped == 0 for d in got if d.replayed)
    if replayed:  # nothing is lost before or at the history/live boundary
        assert not {m for m in missing if m <= replayed[-1]}
        first_live = next((d for d in got if not d.replayed), None)
        if first_live is not None and first_live.dropped == 0:
            assert received[: len(replayed) + 1] == expected[: len(replayed) + 1]


async def test_resume_on_closed_topic_replays_history_then_ends() -> None:
    store = Store()
    topic: Topic[Event[int]] = Topic("k")
    for i in range(1, 6):
        persist_and_publish(topic, store, i)
    topic.close("strategy stopped")
    sub = topic.subscribe(after_sequence=2, history=store.read)
    got = [d async for d in sub]
    assert seqs(got) == [3, 4, 5]
    assert sub.closed and sub.close_reason == "strategy stopped"
    live_only = topic.subscribe()
    assert [d async for d in live_only] == []


async def test_history_reader_that_repeats_after_sequence_is_tolerated() -> None:
    events = [Event(i, i) for i in range(1, 6)]

    async def inclusive(after: int, limit: int) -> list[Event[int]]:
        return [e for e in events if e.sequence >= after][:limit]

    topic: Topic[Event[int]] = Topic("k", last_sequence=5)
    sub = topic.subscribe(after_sequence=2, history=inclusive, page_size=2)
    assert seqs(await take(sub, 3)) == [3, 4, 5]


async def test_history_reader_out_of_order_is_an_error() -> None:
    async def bad(after: int, limit: int) -> list[Event[int]]:
        return [Event(5, 0), Event(4, 0)]

    sub = Topic[Event[int]]("k").subscribe(from_start=True, history=bad)
    with pytest.raises(HubError, match="ascending"):
        await anext(sub)


async def test_history_reader_without_progress_is_an_error() -> None:
    async def stuck(after: int, limit: int) -> list[Event[int]]:
        return [Event(1, 0)] * limit

    sub = Topic[Event[int]]("k").subscribe(after_sequence=3, history=stuck, page_size=4)
    with pytest.raises(HubError, match="nothing after 3"):
        await anext(sub)


# --- lifetime -------------------------------------------------------------------------------


async def test_close_topic_drains_then_ends_all_iterators() -> None:
    topic: Topic[Event[int]] = Topic("k")
    subs = [topic.subscribe() for _ in range(10)]
    waiting = [asyncio.create_task(take(s, 1)) for s in subs[:5]]
    await asyncio.sleep(0)
    topic.publish(Event(1, 1))
    topic.publish(Event(2, 2))
    topic.close("strategy stopped")
    topic.close("second reason ignored")
    assert topic.closed and topic.subscriber_count == 0
    with pytest.raises(TopicClosedError):
        topic.publish(Event(3, 3))
    for task in waiting:
        assert seqs(await task) == [1]
    for i, sub in enumerate(subs):
        rest = [d.event.sequence async for d in sub]
        assert rest == ([2] if i < 5 else [1, 2])
        assert sub.close_reason == "strategy stopped"
        with pytest.raises(StopAsyncIteration):
            await anext(sub)


async def test_close_wakes_a_waiting_reader() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()

    async def drain() -> list[Delivery[Event[int]]]:
        return [d async for d in sub]

    task = asyncio.create_task(drain())
    await asyncio.sleep(0.01)
    topic.close()
    assert await asyncio.wait_for(task, 1) == []
    assert sub.close_reason is None and sub.closed


async def test_subscription_close_unsubscribes_and_ends_reader() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()
    topic.publish(Event(1, 1))
    task = asyncio.create_task(take(sub, 2))
    await asyncio.sleep(0.01)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await task
    assert topic.subscriber_count == 0
    assert topic.publish(Event(2, 2)) == 0
    assert sub.close_reason is None


async def test_async_with_unsubscribes() -> None:
    topic: Topic[Event[int]] = Topic("k")
    async with topic.subscribe() as sub:
        assert topic.subscriber_count == 1
        topic.publish(Event(1, 1))
        assert (await anext(sub)).event.sequence == 1
    assert topic.subscriber_count == 0 and sub.closed


async def test_cancelling_the_reader_unsubscribes() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()

    async def reader() -> None:
        async for _ in sub:
            pass

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.01)
    assert topic.subscriber_count == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert topic.subscriber_count == 0 and sub.closed


async def test_cancel_during_history_read_unsubscribes() -> None:
    store = Store(delay=5)
    store.append(Event(1, 1))
    topic: Topic[Event[int]] = Topic("k", last_sequence=1)
    sub = topic.subscribe(from_start=True, history=store.read)
    task = asyncio.create_task(take(sub, 1))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert topic.subscriber_count == 0 and sub.closed


async def test_abandoned_subscription_is_unsubscribed_by_gc() -> None:
    topic: Topic[Event[int]] = Topic("k")
    topic.subscribe()  # never read, never closed
    gc.collect()
    assert topic.subscriber_count == 0
    # `break` does not close a plain async iterator, but dropping the iterator does.
    task = asyncio.create_task(_break_after_one(topic))
    await asyncio.sleep(0)
    assert topic.subscriber_count == 1
    topic.publish(Event(1, 1))
    await task
    gc.collect()
    assert topic.subscriber_count == 0


async def _break_after_one(topic: Topic[Event[int]]) -> None:
    async for d in topic.subscribe():
        assert d.event.sequence == 1
        break


async def test_get_timeout_does_not_end_subscription() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()
    start = time.perf_counter()
    assert await sub.get(timeout=0.05) is None
    assert 0.04 < time.perf_counter() - start < 1
    assert not sub.closed and topic.subscriber_count == 1
    asyncio.get_running_loop().call_later(0.01, topic.publish, Event(1, 1))
    d = await sub.get(timeout=2)
    assert d is not None and d.event.sequence == 1
    topic.close()
    with pytest.raises(StopAsyncIteration):
        await sub.get(timeout=1)


def test_get_with_a_zero_timeout_on_uvloop() -> None:
    """The server runs on uvloop, which answers call_later(0) with a plain Handle (no
    `when()`): a zero or elapsed timeout returns None there too, not AttributeError."""

    async def main() -> None:
        topic: Topic[Event[int]] = Topic("k")
        sub = topic.subscribe()
        assert await sub.get(timeout=0) is None
        assert not sub.closed
        asyncio.get_running_loop().call_later(0.01, topic.publish, Event(1, 1))
        d = await sub.get(timeout=2)
        assert d is not None and d.event.sequence == 1

    uvloop.run(main())


async def test_poll_is_live_only() -> None:
    store = Store()
    topic: Topic[Event[int]] = Topic("k")
    persist_and_publish(topic, store, 1)
    resuming = topic.subscribe(from_start=True, history=store.read)
    with pytest.raises(RuntimeError, match="history"):
        resuming.poll()
    live = topic.subscribe()
    assert live.poll() is None
    topic.close()
    with pytest.raises(StopAsyncIteration):
        live.poll()


async def test_two_readers_on_one_subscription_is_an_error() -> None:
    topic: Topic[Event[int]] = Topic("k")
    sub = topic.subscribe()
    first = asyncio.create_task(take(sub, 1))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already reading"):
        await anext(sub)
    topic.publish(Event(1, 1))
    assert seqs(await first) == [1]


# --- memory ---------------------------------------------------------------------------------


async def test_events_republished_after_a_restart_are_not_delivered_twice() -> None:
    """A publisher crashed after publishing 1..10 and storing only 1..7; restarted, it
    publishes 8.. again. A client that saw up to 10 resumes after 10: it gets 11.. only,
    whether it resumes before or after 8..10 come again, and no drop is counted."""
    store = Store()
    for i in range(1, 8):
        store.append(Event(i, i * 10))
    topic: Topic[Event[int]] = Topic("k", maxsize=4, last_sequence=7)
    early = topic.subscribe(after_sequence=10, history=store.read)
    assert await early.get(timeout=0.05) is None  # history has nothing after 10 yet
    for i in range(8, 12):
        persist_and_publish(topic, store, i)
    late = topic.subscribe(after_sequence=10, history=store.read)
    persist_and_publish(topic, store, 12)
    for sub in (early, late):
        got = await take(sub, 2)
        assert seqs(got) == [11, 12]
        assert [d.dropped for d in got] == [0, 0]


async def test_memory_per_idle_subscriber_is_small() -> None:
    topic: Topic[Event[int]] = Topic(("signals", "s1"))
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        subs = [topic.subscribe() for _ in range(1_000)]
        bare = (tracemalloc.get_traced_memory()[0] - base) / 1_000
        # With a consumer task waiting on each (what a gRPC stream handler looks like).
        tasks = [asyncio.create_task(take(s, 1)) for s in subs]
        await asyncio.sleep(0)
        waiting = (tracemalloc.get_traced_memory()[0] - base) / 1_000
    finally:
        tracemalloc.stop()
    print(f"per idle subscriber: {bare:.0f} B bare, {waiting:.0f} B with a waiting task")
    assert bare < 2_000
    assert waiting < 50_000 / 10
    topic.close()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_memory_of_a_stalled_subscriber_is_bounded() -> None:
    topic: Topic[Event[bytes]] = Topic("k", maxsize=100)
    sub = topic.subscribe()
    for i in range(1, 10_001):
        topic.publish(Event(i, b"x" * 100))
    assert sub.pending == 100 and sub.dropped == 9_900


# --- hub ------------------------------------------------------------------------------------


async def test_hub_open_publish_close() -> None:
    hub: Hub[Event[int]] = Hub(maxsize=8)
    topic = hub.open(("signals", "s1"), last_sequence=3)
    assert hub.get(("signals", "s1")) is topic and topic.maxsize == 8
    sub = hub.subscribe(("signals", "s1"))
    assert hub.publish(("signals", "s1"), Event(4, 4)) == 1
    assert hub.publish(("signals", "other"), Event(1, 1)) == 0  # nobody: no topic, no-op
    assert hub.subscriber_count == 1 and hub.topic_count == 1
    assert (await anext(sub)).event.sequence == 4
    sub.close()
    assert hub.topic_count == 1  # opened topics stay until closed
    sub2 = hub.subscribe(("signals", "s1"))
    hub.close(("signals", "s1"), "stopped")
    assert [d async for d in sub2] == [] and sub2.close_reason == "stopped"
    assert hub.topic_count == 0


async def test_hub_ephemeral_topics_disappear_with_last_subscriber() -> None:
    hub: Hub[Event[int]] = Hub()
    a = hub.subscribe(("notifications", "u1"))
    b = hub.subscribe(("notifications", "u1"))
    assert hub.topic_count == 1
    assert hub.publish(("notifications", "u1"), Event(7, 7)) == 2
    a.close()
    assert hub.topic_count == 1
    b.close()
    assert hub.topic_count == 0 and hub.keys() == []


async def test_hub_open_adopts_ephemeral_topic() -> None:
    hub: Hub[Event[int]] = Hub()
    waiting = hub.subscribe(("signals", "s1"))  # strategy not running yet
    topic = hub.open(("signals", "s1"), last_sequence=41)
    topic.publish(Event(42, 0))
    assert (await anext(waiting)).event.sequence == 42
    with pytest.raises(SequenceError):
        hub.open(("signals", "s1"), last_sequence=10)
    waiting.close()
    assert hub.get(("signals", "s1")) is topic  # pinned by open()


async def test_hub_coalesce_predicate_and_close_all() -> None:
    hub: Hub[Event[int]] = Hub(coalesce=lambda key: isinstance(key, tuple) and key[0] == "perf")
    perf = hub.open(("perf", "s1"))
    sig = hub.open(("signals", "s1"))
    assert perf.coalesce and not sig.coalesce
    subs = [hub.subscribe(("perf", "s1")), hub.subscribe(("signals", "s1"))]
    hub.close_all("shutdown")
    for sub in subs:
        assert [d async for d in sub] == []
        assert sub.close_reason == "shutdown"
    assert hub.topic_count == 0


async def test_history_reader_error_ends_the_subscription() -> None:
    async def broken(after: int, limit: int) -> list[Event[int]]:
        raise OSError("database is gone")

    topic: Topic[Event[int]] = Topic("k", last_sequence=5)
    sub = topic.subscribe(after_sequence=1, history=broken)
    with pytest.raises(OSError, match="gone"):
        await anext(sub)
    assert sub.closed and topic.subscriber_count == 0
    with pytest.raises(StopAsyncIteration):
        await anext(sub)


async def test_hub_forgets_a_topic_closed_directly() -> None:
    hub: Hub[Event[int]] = Hub()
    topic = hub.open(("signals", "s1"))
    sub = hub.subscribe(("signals", "s1"))
    topic.close("error")
    assert hub.topic_count == 0 and hub.publish(("signals", "s1"), Event(1, 1)) == 0
    assert [d async for d in sub] == [] and sub.close_reason == "error"
    reopened = hub.open(("signals", "s1"), last_sequence=1)
    assert reopened is not topic and not reopened.closed


async def test_resume_waits_for_a_lagging_history_reader() -> None:
    """Events 6-10 were published but are not yet readable (a write-behind flush)."""
    store = Store()
    topic: Topic[Event[int]] = Topic("k")
    for i in range(1, 11):
        persist_and_publish(topic, store, i)
    visible = 5

    async def lagging(after: int, limit: int) -> list[Event[int]]:
        await asyncio.sleep(0)
        return [e for e in store.events if after < e.sequence <= visible][:limit]

    def catch_up() -> None:
        nonlocal visible
        visible = 10_000

    sub = topic.subscribe(after_sequence=2, history=lagging)
    asyncio.get_running_loop().call_later(0.03, catch_up)
    persist_and_publish(topic, store, 11)  # live, buffered while history is read
    got = await asyncio.wait_for(take(sub, 9), 5)
    assert seqs(got) == list(range(3, 12))
    assert got[0].replayed and got[7].replayed  # 3-10 came from history after the wait
    assert all(d.dropped == 0 for d in got)


async def test_resume_fails_loudly_if_history_never_catches_up() -> None:
    topic: Topic[Event[int]] = Topic("k", last_sequence=20)  # 1-20 published earlier

    async def stale(after: int, limit: int) -> list[Event[int]]:
        return [Event(i, i) for i in range(after + 1, 11)][:limit]  # the store stops at 10

    sub = topic.subscribe(after_sequence=5, history=stale)
    start = time.perf_counter()
    got = await take(sub, 5)
    assert seqs(got) == [6, 7, 8, 9, 10]
    with pytest.raises(HubError, match="ends at sequence 10 but 20 was published"):
        await anext(sub)
    assert 1.0 < time.perf_counter() - start < 5
    assert sub.closed and topic.subscriber_count == 0
