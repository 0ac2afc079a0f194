"""Load test of a real server (`make load`; not part of `make test`): one table of figures.

Starts `stratopt serve --dev --gateway --processes N` on free ports with a fresh data folder
and measures, each phase for a few seconds:

- unary calls at concurrency 1/16/64: GetStrategy (authenticated, a stored strategy) and
  ListStrategyTypes, straight to the gRPC port and through Envoy;
- 1,000 StreamSignals subscribers of one running paper strategy (bench/go_subscribers):
  deliveries per second and how far behind the first subscriber the others get each signal;
- 10 optimization jobs with 20 watchers each: trials per second and each job's wall time;
- a 1,000,000-row CSV upload (ImportBars);
- GetStrategy at concurrency 64 through Envoy with N = 1, 2, 3, 4 server processes, each
  followed at once by its peer: N bare grpc.aio servers (bench/bare_server.py: the same
  answer, no interceptors, authentication or database) behind the same Envoy configuration.
  The note gives stratopt's throughput as a share of the peer's, and the servers' CPU
  milliseconds per call beside the peer's: figures that stay comparable on a shared machine
  whose speed drifts between runs (CPU per call moves least).

Unary load comes from bench/go_load (Go: a Python asyncio client saturates at 1-2k calls/s
by itself). "peak RSS" is the sum over the server's Python processes (not Envoy), sampled
every 0.2 s during the phase. Run: ``python bench/load.py [--seconds 4] [--processes 1 2 3 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import bench_live  # noqa: E402  (its Api and the Go subscriber program)

MB = 1024 * 1024
WARMUP_S = 0.5  # unmeasured seconds at the start of each go_load run


def over_servers(pids: Sequence[int], measure: Callable[[psutil.Process], float]) -> float:
    """`measure` summed over these processes and their children, Envoy excluded (the Python
    servers); a process that ends meanwhile counts for nothing."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    if "envoy" not in proc.name():
                        total += measure(proc)
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def go_build(name: str) -> Path:
    if shutil.which("go") is None:
        raise SystemExit("make load needs Go (bench/go_load is the load generator)")
    out = Path(tempfile.mkdtemp(prefix=f"load-{name}-")) / name
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=BENCH / name, check=True)
    return out


# -- the server ------------------------------------------------------------------------------


class Server:
    """`stratopt serve --dev --gateway --processes N` with its own data folder."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"load-{processes}p-"))
        self.addr = f"127.0.0.1:{free_port()}"
        self.gateway = f"127.0.0.1:{free_port()}"
        limit = "1000000/s burst 1000000"
        env = {
            **os.environ,
            "STRATOPT_GRPC_ADDR": self.addr,
            "STRATOPT_GATEWAY_ADDR": self.gateway,
            "STRATOPT_DATA_DIR": str(self.data_dir),
            "STRATOPT_SAMPLE_DATA": "0",
            "STRATOPT_LOG_LEVEL": "WARNING",
            "STRATOPT_PROCESSES": str(processes),
            "STRATOPT_MAX_STREAMS_PER_USER": "0",
            **{
                f"STRATOPT_RATE_LIMIT_{c}": limit
                for c in ("GENERAL", "BACKTEST", "OPTIMIZATION", "EXPORT", "DATA", "AUTH")
            },
        }
        self.log = self.data_dir / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stratopt.client.cli", "serve", "--dev", "--gateway"],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.token = ""
        self._peak = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def start(self, timeout: float = 180) -> None:
        from stratopt.v1 import auth_pb2, auth_pb2_grpc

        from stratopt.server.bootstrap import DEMO_USERS

        deadline = time.monotonic() + timeout
        username, _, password = next(u for u in DEMO_USERS if u[0] == "trader")
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")
            try:
                with grpc.insecure_channel(self.addr) as ch:
                    reply = auth_pb2_grpc.AuthServiceStub(ch).Login(
                        auth_pb2.LoginRequest(username=username, password=password), timeout=2
                    )
                self.token = reply.access_token
                # The gateway starts after every process serves.
                self.rest("/v1/strategyTypes")
                break
            except (grpc.RpcError, OSError):
                time.sleep(0.3)
        # The numba warm-up runs in a thread after the server starts; measuring before it
        # ends would charge its CPU to the first phases.
        while not self._engines_ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"engines not warm:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        self._sampler.start()

    def _engines_ready(self) -> bool:
        """Every server process reports its engine warmed up (health `stratopt.engine`).
        With several processes, each check may land on any of them: a few in a row must
        all answer SERVING."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from stratopt.server.app import ENGINE_HEALTH

        request = health_pb2.HealthCheckRequest(service=ENGINE_HEALTH)
        for _ in range(4 * self.processes):
            # A new connection each time: SO_REUSEPORT spreads connections, not calls.
            try:
                with grpc.insecure_channel(self.addr) as ch:
                    reply = health_pb2_grpc.HealthStub(ch).Check(request, timeout=5)
            except grpc.RpcError:  # not registered yet
                return False
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
        return True

    def rest(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://{self.gateway}{path}", headers={"authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    @property
    def md(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]

    def rss(self) -> int:
        """Bytes resident in the server's Python processes (Envoy excluded)."""
        return int(over_servers([self.proc.pid], lambda p: p.memory_info().rss))

    def _sample(self) -> None:
        while self._sampling:
            self._peak = max(self._peak, self.rss())
            time.sleep(0.2)

    def reset_peak(self) -> None:
        self._peak = self.rss()

    @property
    def peak_mib(self) -> float:
        return max(self._peak, self.rss()) / MB

    def stop(self) -> None:
        self._sampling = False
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# -- rows ------------------------------------------------------------------------------------


@dataclass
class Row:
    phase: str
    throughput: str
    p50: str
    p99: str
    errors: int
    peak_mib: float
    note: str = ""


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))] if ordered else 0.0


def unary(
    srv: Server, go_load: Path, args: argparse.Namespace, addr: str, method: str, c: int, sid: str
) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(go_load), "-addr", addr, "-token", srv.token, "-method", method, "-id", sid,
            "-c", str(c), "-conns", str(min(c, 8)), "-seconds", str(args.seconds),
            "-warmup", str(WARMUP_S),
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def unary_row(name: str, r: dict[str, Any], peak: float, target: str = "") -> Row:
    note = target
    if r["first_error"]:
        note = (note + "; " if note else "") + f"first error: {r['first_error'][:80]}"
    return Row(
        name, f"{r['throughput']:,.0f} calls/s", ms(r["p50_ms"]), ms(r["p99_ms"]), r["errors"],
        peak, note,
    )  # fmt: skip


async def create_strategy(srv: Server) -> str:
    api = bench_live.Api(srv.addr)
    api.md = srv.md
    try:
        return await api.strategy("load", "sma_crossover", {"fast": 5, "slow": 20})
    finally:
        await api.channel.close()


def unary_phase(srv: Server, go_load: Path, args: argparse.Namespace, sid: str) -> list[Row]:
    rows = []
    for route, addr in (("direct", srv.addr), ("Envoy", srv.gateway)):
        for method, label in (("get_strategy", "GetStrategy"), ("list_types", "ListStrategyTypes")):
            for c in (1, 16, 64):
                srv.reset_peak()
                r = unary(srv, go_load, args, addr, method, c, sid)
                target = "3,000/s, p99 < 50 ms" if (route, method, c) == (
                    "Envoy", "get_strategy", 64
                ) else ""  # fmt: skip
                rows.append(unary_row(f"{label} c={c} {route}", r, srv.peak_mib, target))
                progress(rows[-1])
    return rows


async def streams_phase(srv: Server, args: argparse.Namespace) -> Row:
    """1,000 StreamSignals subscribers of one paper strategy on a fast replay."""
    go = bench_live.build_go_subscribers()
    if go is None:
        return Row("1,000 stream subscribers", "-", "-", "-", 0, 0, "needs Go")
    api = bench_live.Api(srv.addr)
    api.md = srv.md
    bps = 10.0  # as bench_live.py's fan-out phase
    try:
        dataset_id = await api.dataset(int(bps * (args.seconds + 600)))
        feed_id = await api.replay_feed(dataset_id, 0, bps)
        sid = await api.strategy("load-streams", "sma_crossover", {"fast": 2, "slow": 5})
        await api.start(sid, feed_id, 0)
        srv.reset_peak()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                str(go), "-addr", srv.addr, "-token", srv.token, "-strategy", sid,
                "-n", str(args.subscribers), "-conns", str(args.subscribers),
                "-seconds", str(args.seconds + 2),
            ],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        line = await asyncio.to_thread(proc.stderr.readline)
        ready_ns = time.monotonic_ns()  # the subscribers stamp CLOCK_MONOTONIC too
        connect_s = time.monotonic() - t0
        if line.strip() != b"ready":
            raise RuntimeError(f"go_subscribers: {line!r}")
        out, _ = await asyncio.to_thread(proc.communicate)
        await api.stop(sid)
    finally:
        await api.channel.close()
    received: dict[int, list[int]] = {}
    for row in out.split(b"\n"):
        if row.strip():
            bar, got = row.split()
            received.setdefault(int(bar), []).append(int(got))
    # Only signals sent once every subscriber was open (those sent while they connected come
    # out of the early subscribers' buffers in the first moments), and early enough to reach
    # them all before the subscribers stop counting (2 s before the end of the window).
    first_ns = ready_ns + 500_000_000
    end_ns = ready_ns + int((args.seconds + 2) * 1e9)
    by_signal = {
        bar: ts for bar, ts in received.items() if first_ns <= min(ts) < end_ns - 2_000_000_000
    }
    lags = [(t - min(ts)) / 1e6 for ts in by_signal.values() for t in ts]
    deliveries = sum(len(ts) for ts in by_signal.values())
    missing = sum(args.subscribers - len(ts) for ts in by_signal.values())
    window_s = args.seconds - 0.5
    return Row(
        f"{args.subscribers:,} stream subscribers",
        f"{deliveries / window_s:,.0f} msgs/s",
        ms(pct(lags, 0.5)),
        ms(pct(lags, 0.99)),
        missing + (1 if proc.returncode else 0),
        srv.peak_mib,
        f"{len(by_signal)} signals to each; latency = behind the first subscriber of the "
        f"signal; all connected in {connect_s:.1f} s",
    )


async def jobs_phase(srv: Server, args: argparse.Namespace) -> Row:
    """10 optimization jobs, each watched by 20 WatchJob streams until it ends."""
    from stratopt.v1 import optimization_pb2 as opb
    from stratopt.v1 import optimization_pb2_grpc as opbg

    api = bench_live.Api(srv.addr)
    api.md = srv.md
    channels = [grpc.aio.insecure_channel(srv.addr) for _ in range(4)]
    errors = 0
    try:
        dataset_id = await api.dataset(3_000)
        stub = opbg.OptimizationServiceStub(api.channel)
        srv.reset_peak()
        t0 = time.monotonic()
        jobs = []
        for i in range(args.jobs):
            spec = opb.OptimizationSpec(
                strategy_type="sma_crossover", dataset_id=dataset_id, trials=args.trials, seed=i
            )
            reply = await stub.StartOptimization(
                opb.StartOptimizationRequest(spec=spec), metadata=srv.md
            )
            jobs.append(reply.job.id)

        async def watch(job_id: str, i: int) -> int:
            nonlocal errors
            w = opbg.OptimizationServiceStub(channels[i % len(channels)])
            events = 0
            try:
                call = w.WatchJob(opb.WatchJobRequest(job_id=job_id), metadata=srv.md)
                async for _ in call:
                    events += 1
            except grpc.RpcError:
                errors += 1
            return events

        counts = await asyncio.gather(*(watch(j, i) for j in jobs for i in range(args.watchers)))
        elapsed = time.monotonic() - t0
        walls = []
        for job_id in jobs:
            job = (await stub.GetJob(opb.GetJobRequest(job_id=job_id), metadata=srv.md)).job
            if job.state != opb.JOB_STATE_SUCCEEDED:
                errors += 1
            walls.append((job.end_time.ToNanoseconds() - job.start_time.ToNanoseconds()) / 1e9)
    finally:
        for ch in channels:
            await ch.close()
        await api.channel.close()
    return Row(
        f"{args.jobs} jobs x {args.watchers} watchers",
        f"{args.jobs * args.trials / elapsed:,.0f} trials/s",
        f"{statistics.median(walls):.1f} s",
        f"{pct(walls, 0.99):.1f} s",
        errors,
        srv.peak_mib,
        f"{args.trials} trials each; p50/p99 = a job's wall time; {sum(counts):,} events "
        f"to {len(counts)} watchers; all done in {elapsed:.1f} s",
    )


def csv_rows(rows: int) -> bytes:
    rng = np.random.default_rng(1)
    ts = 1_600_000_000 + np.arange(rows, dtype=np.int64) * 60
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows)))
    table = np.column_stack([ts, close, close * 1.001, close * 0.999, close, np.full(rows, 10.0)])
    out = io.BytesIO()
    out.write(b"ts,open,high,low,close,volume\n")
    np.savetxt(out, table, fmt=["%d", "%.6f", "%.6f", "%.6f", "%.6f", "%.1f"], delimiter=",")
    return out.getvalue()


def upload_phase(srv: Server, args: argparse.Namespace) -> Row:
    from stratopt.v1 import market_data_pb2 as mpb
    from stratopt.v1 import market_data_pb2_grpc as mpbg

    data = csv_rows(args.rows)

    def requests() -> Iterator[mpb.ImportBarsRequest]:
        yield mpb.ImportBarsRequest(
            header=mpb.ImportHeader(name="load", symbol="LOAD", format=mpb.IMPORT_FORMAT_CSV)
        )
        for i in range(0, len(data), MB):
            yield mpb.ImportBarsRequest(chunk=data[i : i + MB])

    srv.reset_peak()
    t0 = time.monotonic()
    errors, note = 0, ""
    with grpc.insecure_channel(srv.addr) as ch:
        try:
            reply = mpbg.MarketDataServiceStub(ch).ImportBars(
                requests(), metadata=srv.md, timeout=300
            )
            note = f"{len(data) / MB:.0f} MB CSV; {reply.dataset.bar_count:,} bars stored"
        except grpc.RpcError as e:
            errors, note = 1, f"{e.code().name}: {e.details()}"
    elapsed = time.monotonic() - t0
    return Row(
        f"upload {args.rows:,} rows",
        f"{args.rows / elapsed:,.0f} rows/s",
        f"{elapsed:.1f} s total",
        "-",
        errors,
        srv.peak_mib,
        note,
    )


class BarePeer:
    """`n` bench/bare_server.py processes behind a gateway (the same Envoy configuration and
    flags as `stratopt serve --gateway`), answering GetStrategy with `canned`."""

    def __init__(self, n: int, canned: bytes) -> None:
        from stratopt.server.gateway import Gateway

        self.work = Path(tempfile.mkdtemp(prefix=f"load-bare-{n}p-"))
        response = self.work / "response.binpb"
        response.write_bytes(canned)
        self.addrs = [f"127.0.0.1:{free_port()}" for _ in range(n)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(BENCH / "bare_server.py"), addr, str(response)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            for addr in self.addrs
        ]
        self.gateway = Gateway(
            f"127.0.0.1:{free_port()}",
            self.addrs[0],
            self.work / "gateway",
            upstream_addrs=self.addrs,
            log_file=self.work / "envoy.log",
        )

    def __enter__(self) -> BarePeer:
        try:
            for proc in self.procs:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != b"serving":
                    raise RuntimeError("bench/bare_server.py did not start")
            self.gateway.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def addr(self) -> str:
        return self.gateway.listen_addr

    def __exit__(self, *_exc: object) -> None:
        self.gateway.stop(grace=0.5)
        for proc in self.procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the Python servers under `pids` used so far."""
    return over_servers(pids, lambda p: p.cpu_times().user + p.cpu_times().system)


def measured(
    pids: Sequence[int], srv: Server, go_load: Path, args: argparse.Namespace, addr: str, sid: str
) -> tuple[dict[str, Any], float]:
    """GetStrategy at c=64 on `addr`, and the servers' CPU milliseconds per call: a figure
    that moves much less than throughput with what else the shared machine is doing."""
    before = cpu_seconds(pids)
    r = unary(srv, go_load, args, addr, "get_strategy", 64, sid)
    spent = cpu_seconds(pids) - before
    # The run includes a warm-up whose calls are not counted: scale to the calls made in it
    # at the measured rate.
    calls = r["throughput"] * (args.seconds + WARMUP_S)
    return r, (spent * 1000 / calls if calls else 0.0)


def canned_response(srv: Server, sid: str) -> bytes:
    """stratopt's GetStrategy answer for `sid`, serialized: what the bare peer answers."""
    from stratopt.v1 import strategy_pb2, strategy_pb2_grpc

    with grpc.insecure_channel(srv.addr) as ch:
        reply = strategy_pb2_grpc.StrategyServiceStub(ch).GetStrategy(
            strategy_pb2.GetStrategyRequest(strategy_id=sid), metadata=srv.md, timeout=10
        )
    return bytes(reply.SerializeToString())


def processes_rows(
    srv: Server, go_load: Path, args: argparse.Namespace, sid: str, n: int
) -> list[Row]:
    """GetStrategy c=64 through Envoy on `n` processes, then the bare peer with as many."""
    unary(srv, go_load, args, srv.gateway, "get_strategy", 64, sid)  # warm every process
    srv.reset_peak()
    r, cpu = measured([srv.proc.pid], srv, go_load, args, srv.gateway, sid)
    plural = "process" if n == 1 else "processes"
    ours = unary_row(f"{n} {plural}, GetStrategy c=64 Envoy", r, srv.peak_mib)
    with BarePeer(n, canned_response(srv, sid)) as peer:
        unary(srv, go_load, args, peer.addr, "get_strategy", 64, sid)
        b, bare_cpu = measured([p.pid for p in peer.procs], srv, go_load, args, peer.addr, sid)
    share = r["throughput"] / b["throughput"] if b["throughput"] else 0.0
    ours.note = (ours.note + "; " if ours.note else "") + (
        f"{share:.0%} of the bare grpc.aio peer's throughput; server CPU {cpu:.3f} ms per "
        f"call against the peer's {bare_cpu:.3f} ms"
    )
    bare = unary_row(f"bare grpc.aio peer, {n} {plural}, c=64 Envoy", b, 0.0)
    for row in (ours, bare):
        progress(row)
    return [ours, bare]


def progress(row: Row) -> None:
    print(f"  {row.phase}: {row.throughput} p50 {row.p50} p99 {row.p99}", file=sys.stderr)


def print_table(rows: list[Row]) -> None:
    head = ("phase", "throughput", "p50", "p99", "errors", "peak RSS")
    cells = [
        (r.phase, r.throughput, r.p50, r.p99, str(r.errors), f"{r.peak_mib:,.0f} MiB") for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    notes = [f"- {r.phase}: {r.note}" for r in rows if r.note]
    if notes:
        print()
        print("\n".join(notes))


async def run(args: argparse.Namespace) -> list[Row]:
    go_load = go_build("go_load")
    rows: list[Row] = []
    srv = Server(1)
    try:
        srv.start()
        sid = await create_strategy(srv)
        if "unary" in args.phases:
            rows += unary_phase(srv, go_load, args, sid)
        if "streams" in args.phases:
            rows.append(await streams_phase(srv, args))
            progress(rows[-1])
        if "jobs" in args.phases:
            rows.append(await jobs_phase(srv, args))
            progress(rows[-1])
        if "upload" in args.phases:
            rows.append(upload_phase(srv, args))
            progress(rows[-1])
        if "processes" in args.phases and 1 in args.processes:
            rows += processes_rows(srv, go_load, args, sid, 1)
    finally:
        srv.stop()
    if "processes" in args.phases:
        for n in (n for n in args.processes if n > 1):
            srv = Server(n)
            try:
                srv.start()
                sid = await create_strategy(srv)
                rows += processes_rows(srv, go_load, args, sid, n)
            finally:
                srv.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per phase")
    ap.add_argument(
        "--phases",
        nargs="+",
        default=["unary", "streams", "jobs", "upload", "processes"],
        help="unary streams jobs upload processes",
    )
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--watchers", type=int, default=20, help="watchers per job")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    rows = asyncio.run(run(args))
    cpus = os.cpu_count()
    print(f"\nstratopt load test: {cpus} CPUs, {args.seconds:g} s per phase\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
