"""Benchmark of the stream fan-out (`stratopt.fanout`): publish cost, fan-out latency, memory.

Run: ``python bench/bench_hub.py [--events 2000] [--latency-events 300]``. Everything runs in
one asyncio event loop (the default loop, no uvloop), subscribers are tasks iterating
``async for delivery in subscription`` as a stream handler would.

(a) publish cost per event at 1 / 100 / 1,000 subscribers:
    - ``publish()``: the synchronous call alone, with every subscriber waiting (the
      expensive case: each waiting subscriber's future is resolved), median and p99;
    - full cycle: from ``publish()`` until every subscriber has received the event
      (the wake-ups of all subscriber tasks included), median;
    - for comparison, the same full cycle with one ``asyncio.Queue`` per subscriber (no
      bound, no drop counter), the obvious alternative.
(b) fan-out latency with 1,000 subscribers: events published every 10 ms (a 100 bars/s
    feed); latency is ``perf_counter()`` at receipt minus at publish, over every
    (event, subscriber) pair, and for the last subscriber of each event.
(c) memory per idle subscriber (tracemalloc, Python allocations): the subscription alone,
    and with a task waiting on it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc

from stratopt.fanout import Event, Subscription, Topic


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def publish_cost(n: int, events: int) -> tuple[float, float, float]:
    topic: Topic[Event[int]] = Topic("bench", maxsize=1024)
    received = 0
    done = asyncio.Event()

    async def consume(sub: Subscription[Event[int]]) -> None:
        nonlocal received
        async for _ in sub:
            received += 1
            if received == n:
                done.set()

    tasks = [asyncio.create_task(consume(topic.subscribe())) for _ in range(n)]
    await asyncio.sleep(0)
    publish: list[float] = []
    cycle: list[float] = []
    for seq in range(1, events + 1):
        received = 0
        done.clear()
        start = time.perf_counter()
        topic.publish(Event(seq, seq))
        publish.append(time.perf_counter() - start)
        await done.wait()
        cycle.append(time.perf_counter() - start)
    topic.close()
    await asyncio.gather(*tasks)
    return statistics.median(publish), pct(publish, 0.99), statistics.median(cycle)


async def queue_cycle(n: int, events: int) -> float:
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(n)]
    received = 0
    done = asyncio.Event()

    async def consume(queue: asyncio.Queue[int]) -> None:
        nonlocal received
        while True:
            if await queue.get() < 0:
                return
            received += 1
            if received == n:
                done.set()

    tasks = [asyncio.create_task(consume(q)) for q in queues]
    await asyncio.sleep(0)
    cycle: list[float] = []
    for seq in range(1, events + 1):
        received = 0
        done.clear()
        start = time.perf_counter()
        for queue in queues:
            queue.put_nowait(seq)
        await done.wait()
        cycle.append(time.perf_counter() - start)
    for queue in queues:
        queue.put_nowait(-1)
    await asyncio.gather(*tasks)
    return statistics.median(cycle)


async def fanout_latency(n: int, events: int, interval: float) -> dict[str, float]:
    topic: Topic[Event[float]] = Topic("bench", maxsize=1024)
    latencies: list[float] = []
    last: dict[int, float] = {}
    dropped = 0

    async def consume(sub: Subscription[Event[float]]) -> None:
        nonlocal dropped
        async for d in sub:
            lat = time.perf_counter() - d.event.payload
            latencies.append(lat)
            seq = d.event.sequence
            if lat > last.get(seq, 0.0):
                last[seq] = lat
            dropped = max(dropped, d.dropped)

    tasks = [asyncio.create_task(consume(topic.subscribe())) for _ in range(n)]
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for seq in range(1, events + 1):
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        topic.publish(Event(seq, time.perf_counter()))
    await asyncio.sleep(0.2)
    topic.close()
    await asyncio.gather(*tasks)
    per_event = list(last.values())
    return {
        "p50": pct(latencies, 0.50),
        "p99": pct(latencies, 0.99),
        "max": max(latencies),
        "last_p50": pct(per_event, 0.50),
        "last_p99": pct(per_event, 0.99),
        "deliveries": len(latencies),
        "dropped": dropped,
    }


async def memory_per_subscriber(n: int) -> tuple[float, float]:
    topic: Topic[Event[int]] = Topic("bench")
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    subs = [topic.subscribe() for _ in range(n)]
    bare = (tracemalloc.get_traced_memory()[0] - base) / n

    async def wait_one(sub: Subscription[Event[int]]) -> None:
        async for _ in sub:
            pass

    tasks = [asyncio.create_task(wait_one(s)) for s in subs]
    await asyncio.sleep(0)
    waiting = (tracemalloc.get_traced_memory()[0] - base) / n
    tracemalloc.stop()
    topic.close()
    await asyncio.gather(*tasks)
    return bare, waiting


async def main(events: int, latency_events: int) -> None:
    print("(a) publish cost per event (one event loop, every subscriber waiting)")
    print(
        f"  {'subscribers':>11}  {'publish() p50':>14}  {'publish() p99':>14}  "
        f"{'full cycle p50':>15}  {'asyncio.Queue cycle':>20}"
    )
    for n in (1, 100, 1000):
        count = events if n < 1000 else max(200, events // 5)
        p50, p99, cycle = await publish_cost(n, count)
        baseline = await queue_cycle(n, count)
        print(
            f"  {n:>11}  {p50 * 1e6:>11.1f} us  {p99 * 1e6:>11.1f} us  "
            f"{cycle * 1e6:>12.1f} us  {baseline * 1e6:>17.1f} us"
        )
    print(
        f"(b) fan-out latency, 1,000 subscribers, {latency_events} events at 100 events/s "
        "(publish -> receipt)"
    )
    stats = await fanout_latency(1000, latency_events, 0.01)
    print(
        f"  all deliveries: p50 {stats['p50'] * 1e3:.2f} ms  p99 {stats['p99'] * 1e3:.2f} ms  "
        f"max {stats['max'] * 1e3:.2f} ms  ({int(stats['deliveries'])} deliveries, "
        f"dropped {int(stats['dropped'])})"
    )
    print(
        f"  last subscriber per event: p50 {stats['last_p50'] * 1e3:.2f} ms  "
        f"p99 {stats['last_p99'] * 1e3:.2f} ms"
    )
    bare, waiting = await memory_per_subscriber(1000)
    print("(c) memory per idle subscriber (tracemalloc, 1,000 subscribers)")
    print(f"  subscription alone {bare:,.0f} B; with a task waiting on it {waiting:,.0f} B")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency-events", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.latency_events))
