"""Live paper trading end to end over gRPC: signal latency, and fan-out to many subscribers.

Run: ``python bench/bench_live.py`` (or ``make bench-live``); ``--help`` lists the knobs.
Each phase runs against a fresh ``stratopt serve --dev`` subprocess (SQLite, the stream cap
raised with ``STRATOPT_MAX_STREAMS_PER_USER``); the subscribers are grpc.aio streams in this
process.

(a) Latency, N strategies on ONE replayed feed. A synthetic 1-minute dataset; a REPLAY feed
    (``CreateFeed``) at ``--bps`` bars/s starting past the warm-up bars; ``--strategies``
    strategies started on it with ``StartStrategy(feed_id, warmup_bars=<signal window>)``,
    so each computes its signal over a full window from its first bar (the steady state of
    a long-running strategy), each with one ``StreamSignals`` subscriber. Two mixes: every
    built-in type, and sma_crossover alone; parameters are drawn around each type's
    defaults so that strategies do not all signal on the same bar. The replay starts with
    the first strategy; the others join it where it is (all at once; each join holds the
    replay while the strategy warms up, and the replay then catches up with its schedule),
    and the clock starts once every strategy runs, every subscriber is connected and the
    replay is back on schedule (plus 1 s).

    Latency = receipt of the signal by the subscriber minus the *arrival of its bar*: the
    instant the replay source hands the bar to the runtime, taken in the server process with
    ``time.monotonic()``. On Linux that is CLOCK_MONOTONIC, one clock for every process on
    the machine, so server and bench timestamps subtract directly. The server is this script
    run with ``--serve``: the normal server, with ``ReplaySource.bars`` wrapped to write
    "<bar ts> <monotonic>" per bar to a trace file (nothing else is changed). The line also
    prints how late bars arrive against the replay's own schedule (bar k due at
    t0 + k / bps): a server too slow for the feed shows up there.

(b) Fan-out, ``--subscribers`` subscribers on ONE strategy (sma_crossover 2/5, about one
    signal every 3 bars, on its own replay at ``--fanout-bps``). Every (signal, subscriber)
    pair is a sample, timed from the bar's arrival as in (a); also the slowest subscriber
    per signal. The subscribers share ``--connections`` HTTP/2 connections (one run per
    value: 1,000 = separate clients, as 1,000 browsers or bots would be; 10 = a few
    multiplexing gateways). They are ``bench/go_subscribers`` (``--client go``, the default
    when Go is installed): a Go program whose cost per message is a few microseconds, so
    the figures are the server's, not the queue of a Python client receiving 1,000 messages
    on one event loop (``--client python`` measures that instead: grpc.aio in this process).
    It reads CLOCK_MONOTONIC too. Memory: the server's VmRSS with one warm subscriber, then
    with all of them connected and each having received signals for the whole run; the
    difference divided by their number (it includes whatever else the server allocated
    meanwhile, so it errs high).

Tools for looking into the server, all off by default (environment of ``bench_live.py``):
``BENCH_LIVE_PROFILE=<file>`` writes a cProfile of the server's main thread at exit;
``BENCH_LIVE_GC_LOG=<file>`` lists garbage collections over 5 ms.

Nothing here fails on a slow machine; the targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MINUTE_NS = 60 * 1_000_000_000
START_NS = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z


# -- the traced server (``--serve``) ----------------------------------------------------------


def serve_traced(trace: Path) -> int:
    """The normal server, with every replayed bar's arrival written to `trace`."""
    from stratopt.client.cli import main as cli
    from stratopt.live import sources

    out = trace.open("w", buffering=1)
    original = sources.ReplaySource.bars

    def bars(self: sources.ReplaySource) -> Any:
        async def traced() -> Any:
            async for bar in original(self):
                out.write(f"{bar.ts} {time.monotonic():.6f}\n")
                yield bar

        return traced()

    sources.ReplaySource.bars = bars  # type: ignore[method-assign]
    if os.environ.get("BENCH_LIVE_GC_LOG"):  # slow garbage collections, to a file
        import gc

        gc_log = Path(os.environ["BENCH_LIVE_GC_LOG"]).open("w", buffering=1)  # noqa: SIM115
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            elif (ms := (time.perf_counter() - started[0]) * 1e3) > 5:
                gc_log.write(f"{time.monotonic():.3f} gen{info['generation']} {ms:.1f} ms\n")

        gc.callbacks.append(on_gc)
    profile = os.environ.get("BENCH_LIVE_PROFILE")  # a path: cProfile the server's main thread
    if not profile:
        return cli(["serve", "--dev"])
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return cli(["serve", "--dev"])
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def read_trace(path: Path) -> dict[int, float]:
    arrivals: dict[int, float] = {}
    for line in path.read_text().splitlines():
        ts, _, mono = line.partition(" ")
        if mono:
            arrivals[int(ts)] = float(mono)
    return arrivals


# -- server process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    addr: str
    trace: Path
    data_dir: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(data_dir: Path) -> Server:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    addr = f"127.0.0.1:{free_port()}"
    trace = data_dir / "bars.trace"
    limit = "100000/s burst 100000"
    env = {
        **os.environ,
        "STRATOPT_GRPC_ADDR": addr,
        "STRATOPT_DATA_DIR": str(data_dir),
        "STRATOPT_SAMPLE_DATA": "0",
        "STRATOPT_LOG_LEVEL": "WARNING",
        "STRATOPT_MAX_STREAMS_PER_USER": "100000",
        **{
            f"STRATOPT_RATE_LIMIT_{c}": limit
            for c in ("GENERAL", "BACKTEST", "OPTIMIZATION", "EXPORT", "DATA", "AUTH")
        },
    }
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(trace)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(addr) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "stratopt.engine"):
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((data_dir / "server.log").read_text())
                try:
                    r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
    return Server(proc, addr, trace, data_dir)


# -- API helpers -------------------------------------------------------------------------------


class Api:
    """Stubs over one grpc.aio channel with the demo trader's token."""

    def __init__(self, addr: str) -> None:
        import grpc
        from stratopt.v1 import auth_pb2_grpc, market_data_pb2_grpc, strategy_pb2_grpc

        self.addr = addr
        self.channel = grpc.aio.insecure_channel(addr)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.data = market_data_pb2_grpc.MarketDataServiceStub(self.channel)
        self.strategies = strategy_pb2_grpc.StrategyServiceStub(self.channel)
        self.md: list[tuple[str, str]] = []

    async def login(self) -> None:
        from stratopt.v1 import auth_pb2

        from stratopt.server.bootstrap import DEMO_USERS

        username, _, password = next(u for u in DEMO_USERS if u[0] == "trader")
        reply = await self.auth.Login(auth_pb2.LoginRequest(username=username, password=password))
        self.md = [("authorization", f"Bearer {reply.access_token}")]

    async def dataset(self, bars: int) -> str:
        from google.protobuf.timestamp_pb2 import Timestamp
        from stratopt.v1 import market_data_pb2 as mpb

        start = Timestamp()
        start.FromNanoseconds(START_NS)
        req = mpb.GenerateSyntheticDatasetRequest(
            name=f"bench-live-{random.getrandbits(32):08x}",
            symbol="BENCH",
            timeframe="1m",
            bar_count=bars,
            start_time=start,
            seed=7,
        )
        return str((await self.data.GenerateSyntheticDataset(req, metadata=self.md)).dataset.id)

    async def replay_feed(self, dataset_id: str, first_bar: int, bps: float) -> str:
        from google.protobuf.timestamp_pb2 import Timestamp
        from stratopt.v1 import market_data_pb2 as mpb

        start = Timestamp()
        start.FromNanoseconds(START_NS + first_bar * MINUTE_NS)
        feed = mpb.Feed(
            kind=mpb.FEED_KIND_REPLAY,
            display_name="bench",
            dataset_id=dataset_id,
            start_time=start,
            bars_per_second=bps,
        )
        reply = await self.data.CreateFeed(mpb.CreateFeedRequest(feed=feed), metadata=self.md)
        return str(reply.feed.id)

    async def strategy(self, name: str, stype: str, params: dict[str, Any]) -> str:
        from stratopt.v1 import common_pb2 as c
        from stratopt.v1 import strategy_pb2 as spb

        values = {
            k: c.ParameterValue(int_value=v)
            if isinstance(v, int)
            else c.ParameterValue(double_value=v)
            if isinstance(v, float)
            else c.ParameterValue(string_value=str(v))
            for k, v in params.items()
        }
        s = spb.Strategy(name=name, strategy_type=stype, parameters=values)
        reply = await self.strategies.CreateStrategy(
            spb.CreateStrategyRequest(strategy=s), metadata=self.md
        )
        return str(reply.strategy.id)

    async def start(self, strategy_id: str, feed_id: str, warmup: int) -> None:
        from stratopt.v1 import strategy_pb2 as spb

        req = spb.StartStrategyRequest(strategy_id=strategy_id, feed_id=feed_id, warmup_bars=warmup)
        await self.strategies.StartStrategy(req, metadata=self.md)

    async def stop(self, strategy_id: str) -> None:
        from stratopt.v1 import strategy_pb2 as spb

        with contextlib.suppress(Exception):
            await self.strategies.StopStrategy(
                spb.StopStrategyRequest(strategy_id=strategy_id), metadata=self.md
            )


def varied_params(name: str, rng: random.Random) -> tuple[dict[str, Any], int]:
    """Parameters drawn around the type's defaults (valid ones), and the signal's window."""
    from stratopt.live.signals import StrategySignal
    from stratopt.strategies import registry

    stype = registry.get(name)
    for _ in range(200):
        params: dict[str, Any] = {}
        for p in stype.params:
            if p.kind == "int" and isinstance(p.default, int):
                lo = max(int(p.low or 1), round(p.default * 0.6))
                hi = min(int(p.high or p.default * 2), round(p.default * 1.5))
                params[p.name] = rng.randint(lo, max(lo, hi))
            elif p.kind == "float" and isinstance(p.default, float):
                lo = max(p.low if p.low is not None else 0.0, p.default * 0.7)
                hi = min(p.high if p.high is not None else p.default * 2, p.default * 1.3)
                params[p.name] = round(rng.uniform(lo, hi), 3)
        try:
            return params, StrategySignal(stype, params).window
        except ValueError:
            continue
    return {}, StrategySignal(stype, {}).window


# -- measurement helpers -----------------------------------------------------------------------


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Received:
    """(bar ts, receipt monotonic) per subscriber."""

    samples: list[tuple[int, float]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: str = ""


async def subscribe(stub: Any, md: Any, strategy_id: str, into: Received) -> None:
    from stratopt.v1 import strategy_pb2 as spb

    call = stub.StreamSignals(spb.StreamSignalsRequest(strategy_id=strategy_id), metadata=md)
    try:
        await call.initial_metadata()  # the server accepted the stream
        into.ready.set()
        async for resp in call:
            into.samples.append((resp.signal.time.ToNanoseconds(), time.monotonic()))
    except asyncio.CancelledError:
        call.cancel()
        raise
    except Exception as e:  # a stream that ends with an error is reported, not raised
        into.error = str(e)[:200]
        into.ready.set()


def latencies(
    received: Sequence[Received], arrivals: dict[int, float], since: float, until: float
) -> tuple[list[float], dict[int, float]]:
    """All latencies (ms) of bars that arrived in [since, until), and the slowest per bar."""
    out: list[float] = []
    worst: dict[int, float] = {}
    for r in received:
        for ts, got in r.samples:
            arrived = arrivals.get(ts)
            if arrived is None or not since <= arrived < until:
                continue
            ms = (got - arrived) * 1e3
            out.append(ms)
            worst[ts] = max(worst.get(ts, 0.0), ms)
    return out, worst


def lateness(arrivals: dict[int, float], bps: float, since: float, until: float) -> list[float]:
    """How late bars arrived against the replay schedule (ms), from the first traced bar."""
    items = sorted(arrivals.items())
    if not items:
        return []
    (ts0, t0) = items[0]
    return [
        (t - (t0 + (ts - ts0) / MINUTE_NS / bps)) * 1e3 for ts, t in items if since <= t < until
    ]


async def catch_up(trace: Path, bps: float, timeout: float = 240.0) -> str:
    """Waits until the replay is back on its schedule (joins hold it, then it catches up)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        arrivals = read_trace(trace)
        if arrivals:
            ts0, t0 = min(arrivals.items())
            ts1, t1 = max(arrivals.items())
            late = t1 - (t0 + (ts1 - ts0) / MINUTE_NS / bps)
            if late < 0.05 and time.monotonic() - t1 < 0.5:
                return f"on schedule after {time.monotonic() - start:.1f} s"
        await asyncio.sleep(0.5)
    return f"NOT back on schedule after {timeout:.0f} s (the server cannot keep up)"


@dataclass
class Row:
    name: str
    figures: str
    target: str
    note: str = ""


# -- (a) latency ---------------------------------------------------------------------------------


async def latency_phase(args: argparse.Namespace, types: list[str], label: str) -> list[Row]:
    from stratopt.strategies import registry

    data_dir = Path(tempfile.mkdtemp(prefix="bench-live-a-"))
    server = start_server(data_dir)
    try:
        api = Api(server.addr)
        await api.login()
        rng = random.Random(42)
        names = registry.names() if types == ["all"] else types
        specs = [varied_params(names[i % len(names)], rng) for i in range(args.strategies)]
        warm = max(w for _, w in specs)
        bars = warm + int(args.bps * (args.seconds + 400))
        dataset_id = await api.dataset(bars)
        feed_id = await api.replay_feed(dataset_id, warm, args.bps)
        ids = [
            await api.strategy(f"bench-{i}", names[i % len(names)], params)
            for i, (params, _) in enumerate(specs)
        ]
        received = [Received() for _ in ids]
        tasks: list[asyncio.Task[None]] = []
        t_start = time.monotonic()

        async def start_and_subscribe(i: int) -> None:
            await api.start(ids[i], feed_id, specs[i][1])
            tasks.append(
                asyncio.create_task(subscribe(api.strategies, api.md, ids[i], received[i]))
            )

        # The first start starts the replay; the others join it (each holding it for a
        # moment while it warms up), all at once.
        await start_and_subscribe(0)
        await asyncio.gather(*(start_and_subscribe(i) for i in range(1, len(ids))))
        await asyncio.gather(*(r.ready.wait() for r in received))
        errors = [r.error for r in received if r.error]
        if errors:
            raise RuntimeError(f"{len(errors)} subscriptions failed: {errors[0]}")
        ramp = time.monotonic() - t_start
        behind = await catch_up(server.trace, args.bps)
        await asyncio.sleep(1.0)
        since = time.monotonic()
        cpu0 = server.cpu_seconds()
        await asyncio.sleep(args.seconds)
        until = time.monotonic()
        cpu = (server.cpu_seconds() - cpu0) / (until - since)
        await asyncio.sleep(0.5)  # signals of the last bars in flight
        for sid in ids:
            await api.stop(sid)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.channel.close()
        arrivals = read_trace(server.trace)
        lat, _ = latencies(received, arrivals, since, until)
        late = lateness(arrivals, args.bps, since, until)
        measured_bars = sum(1 for t in arrivals.values() if since <= t < until)
    finally:
        server.stop()
    if not lat:
        return [Row(f"(a) {label}", "no signals measured", "p99 <= 10 ms")]
    kinds = f"{len(names)} types" if len(names) > 1 else names[0]
    return [
        Row(
            f"(a) {args.strategies} strategies ({kinds}), one replay at {args.bps:g} bars/s",
            f"p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  max {max(lat):.1f} ms",
            "p99 <= 10 ms",
            f"{len(lat)} signals over {measured_bars} bars in {args.seconds:g} s; bars late vs "
            f"schedule p50 {pct(late, 0.5):.2f} / p99 {pct(late, 0.99):.2f} ms; server CPU "
            f"{cpu * 100:.0f}% of a core; windows {min(w for _, w in specs)}-{warm} bars; "
            f"all started in {ramp:.1f} s, {behind}",
        )
    ]


# -- (b) fan-out -------------------------------------------------------------------------------


GO_SUBSCRIBERS = Path(__file__).resolve().parent / "go_subscribers"


def build_go_subscribers() -> Path | None:
    """The Go subscriber program (bench/go_subscribers), built once; None without Go."""
    import shutil

    if shutil.which("go") is None:
        return None
    out = Path(tempfile.mkdtemp(prefix="bench-live-go-")) / "go_subscribers"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=GO_SUBSCRIBERS, check=True)
    return out


class Subscribers:
    """N StreamSignals subscribers of one strategy, in this process or in the Go program."""

    def __init__(self, args: argparse.Namespace, api: Api, strategy_id: str, conns: int) -> None:
        self.args, self.api, self.sid = args, api, strategy_id
        self.n = args.subscribers
        self.conns = max(1, min(conns, self.n))
        self.go: Path | None = build_go_subscribers() if args.client == "go" else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.channels: list[Any] = []
        self.received = [Received() for _ in range(self.n)]
        self.tasks: list[asyncio.Task[None]] = []
        self.cpu0 = 0.0

    @property
    def label(self) -> str:
        return "Go client" if self.go else "grpc.aio client"

    async def open(self) -> None:
        if self.go is not None:
            token = self.api.md[0][1].removeprefix("Bearer ")
            self.proc = subprocess.Popen(
                [
                    str(self.go), "-addr", self.api.addr, "-token", token, "-strategy", self.sid,
                    "-n", str(self.n), "-conns", str(self.conns),
                    "-seconds", str(self.args.fanout_seconds + 3),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            assert self.proc.stderr is not None
            line = await asyncio.to_thread(self.proc.stderr.readline)
            if line.strip() != b"ready":
                raise RuntimeError(f"go_subscribers: {line.decode()}{self.proc.stderr.read()!r}")
            return
        import grpc
        from stratopt.v1 import strategy_pb2_grpc

        for i in range(self.conns):  # a local subchannel pool: each channel its own connection
            self.channels.append(
                grpc.aio.insecure_channel(
                    self.api.addr, options=[("grpc.use_local_subchannel_pool", 1), ("x", i)]
                )
            )
        stubs = [strategy_pb2_grpc.StrategyServiceStub(ch) for ch in self.channels]
        self.tasks = [
            asyncio.create_task(
                subscribe(stubs[i % self.conns], self.api.md, self.sid, self.received[i])
            )
            for i in range(self.n)
        ]
        await asyncio.gather(*(r.ready.wait() for r in self.received))
        errors = [r.error for r in self.received if r.error]
        if errors:
            raise RuntimeError(f"{len(errors)} subscriptions failed: {errors[0]}")

    def start_clock(self) -> None:
        self.cpu0 = self.cpu_seconds()

    def cpu_seconds(self) -> float:
        if self.proc is not None:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return time.process_time()

    async def close(self) -> list[Received]:
        if self.proc is not None:
            out, _ = await asyncio.to_thread(self.proc.communicate)
            got = Received()
            for line in out.decode().splitlines():
                bar, _, ns = line.partition(" ")
                got.samples.append((int(bar), int(ns) / 1e9))
            return [got]
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ch in self.channels:
            await ch.close()
        return self.received


async def fanout_phase(args: argparse.Namespace, conns: int) -> list[Row]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-live-b-"))
    server = start_server(data_dir)
    try:
        api = Api(server.addr)
        await api.login()
        n = args.subscribers
        bars = 100 + int(args.fanout_bps * (args.fanout_seconds + 300))
        dataset_id = await api.dataset(bars)
        feed_id = await api.replay_feed(dataset_id, 0, args.fanout_bps)
        sid = await api.strategy("bench-fanout", "sma_crossover", {"fast": 2, "slow": 5})
        await api.start(sid, feed_id, 0)
        warm = Received()
        warm_task = asyncio.create_task(subscribe(api.strategies, api.md, sid, warm))
        await warm.ready.wait()
        await asyncio.sleep(3.0)
        rss0 = server.rss_kib()

        subs = Subscribers(args, api, sid, conns)
        t0 = time.monotonic()
        await subs.open()
        connect_s = time.monotonic() - t0
        await asyncio.sleep(1.0)
        rss_open = server.rss_kib()
        since = time.monotonic()
        cpu0 = server.cpu_seconds()
        subs.start_clock()
        await asyncio.sleep(args.fanout_seconds)
        until = time.monotonic()
        cpu = (server.cpu_seconds() - cpu0) / (until - since)
        client_cpu = (subs.cpu_seconds() - subs.cpu0) / (until - since)
        rss1 = server.rss_kib()
        received = await subs.close()
        await api.stop(sid)
        warm_task.cancel()
        await asyncio.gather(warm_task, return_exceptions=True)
        arrivals = read_trace(server.trace)
        lat, worst = latencies(received, arrivals, since, until)
        late = lateness(arrivals, args.fanout_bps, since, until)
    finally:
        server.stop()
    per_sub = (rss1 - rss0) / n
    if not lat:
        return [Row("(b) fan-out", "no signals measured", "p99 <= 50 ms")]
    slowest = list(worst.values())
    return [
        Row(
            f"(b) {n:,} subscribers on one strategy ({subs.conns:,} connections, {subs.label})",
            f"p50 {pct(lat, 0.5):.1f} ms  p99 {pct(lat, 0.99):.1f} ms  max {max(lat):.1f} ms",
            "p99 <= 50 ms",
            f"{len(worst)} signals x {n} = {len(lat):,} deliveries in {args.fanout_seconds:g} s "
            f"at {args.fanout_bps:g} bars/s; slowest subscriber per signal p50 "
            f"{pct(slowest, 0.5):.1f} / p99 {pct(slowest, 0.99):.1f} ms; bars late p99 "
            f"{pct(late, 0.99):.2f} ms; CPU: server {cpu * 100:.0f}%, subscribers "
            f"{client_cpu * 100:.0f}% of a core; all connected in {connect_s:.1f} s",
        ),
        Row(
            f"(b) server memory per subscriber ({subs.conns:,} connections)",
            f"{per_sub:.1f} KiB",
            "<= 50 KB",
            f"VmRSS {rss0 / 1024:.1f} MiB with 1 subscriber -> {rss1 / 1024:.1f} MiB with "
            f"{n + 1:,} after the run ({(rss_open - rss0) / n:.1f} KiB each right after "
            "connecting)",
        ),
    ]


# -- main --------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    w1 = max(len(r.name) for r in rows)
    w2 = max(len(r.figures) for r in rows)
    w3 = max(len(r.target) for r in rows)
    print(f"{'measure':<{w1}}  {'result':<{w2}}  {'target':<{w3}}")
    print(f"{'-' * w1}  {'-' * w2}  {'-' * w3}")
    for r in rows:
        print(f"{r.name:<{w1}}  {r.figures:<{w2}}  {r.target:<{w3}}")
        if r.note:
            print(f"{'':<{w1}}    {r.note}")


async def run(args: argparse.Namespace) -> None:
    rows: list[Row] = []
    if "a" in args.phases:
        for mix in args.mix:
            rows += await latency_phase(args, mix.split(","), mix)
            print(f"done: {rows[-1].name}: {rows[-1].figures}", file=sys.stderr, flush=True)
    if "b" in args.phases:
        for conns in args.connections:
            rows += await fanout_phase(args, conns)
            print(f"done: {rows[-2].name}: {rows[-2].figures}", file=sys.stderr, flush=True)
    print_table(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--serve", metavar="TRACE", help=argparse.SUPPRESS)
    ap.add_argument("--phases", default="ab", help="a (latency), b (fan-out) or ab")
    ap.add_argument("--strategies", type=int, default=100)
    ap.add_argument("--bps", type=float, default=100.0, help="(a) replay bars per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="(a) measured seconds")
    ap.add_argument(
        "--mix",
        nargs="+",
        default=["all", "sma_crossover"],
        help="(a) strategy mixes: 'all' (every built-in type) or comma-separated type names",
    )
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[1000, 10],
        help="(b) HTTP/2 connections the subscribers share (one run per value)",
    )
    ap.add_argument(
        "--client",
        choices=("go", "python"),
        default="go",
        help="(b) subscribers: bench/go_subscribers (needs Go) or grpc.aio in this process",
    )
    ap.add_argument("--fanout-bps", type=float, default=10.0, help="(b) replay bars per second")
    ap.add_argument("--fanout-seconds", type=float, default=20.0, help="(b) measured seconds")
    args = ap.parse_args(argv)
    if args.serve:
        return serve_traced(Path(args.serve))
    if sys.platform != "linux":
        print("bench_live reads /proc and needs one monotonic clock across processes: Linux only")
        return 1
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
