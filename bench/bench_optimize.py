"""Optimization throughput, end to end through gRPC, against backtesting.py's optimizer.

Run: ``python bench/bench_optimize.py [--bars 100000] [--trials 200] [--no-peer]
[--long-trials 20000 | --no-long]`` (or ``make bench-optimize``). What is measured:

(a) stratopt: a real ``stratopt serve --dev`` subprocess with one in-process worker and a
    SQLite database. The clock runs from the StartOptimization call to the terminal event on
    WatchJob: queueing, claiming, loading the dataset, every TPE trial (sma_crossover, fast
    2..200 x slow 5..400 log-scaled, the strategy's default space) written durably to the
    Optuna study, validation, and the SUCCEEDED event. One 20-trial job runs first so numba
    kernels and the study storage are loaded (a fresh server does that at start anyway).
(b) backtesting.py: ``Backtest.optimize`` over the same number of combinations of the same
    SMA crossover on the same bars (random sampling of the grid via ``max_tries``; it uses
    every core through multiprocessing). Printed as trials/s and as the ratio (a) / (b).
(c) a long study on the same server and bars: one seeded ``--long-trials`` TPE job (20,000 by
    default), watched to the end like (a). Printed per 1,000 trials: the trials/s in that
    stretch (times of the WatchJob events that cross each mark), the job's own throughput
    and ETA at the mark, and the time that was actually left; then the average from
    StartOptimization to SUCCEEDED. Target: above 100 trials/s on average. ``--long`` runs
    (c) alone.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stratopt.v1 import auth_pb2, auth_pb2_grpc
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

from stratopt.data.storage import DatasetStore
from stratopt.server.bootstrap import DEMO_USERS

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars (read at import)

try:  # the peer is an optional bench extra; its strategy must be importable for its workers
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):  # type: ignore[misc]
        n1 = 10
        n2 = 50

        def init(self) -> None:
            self.s1 = self.I(SMA, self.data.Close, self.n1)
            self.s2 = self.I(SMA, self.data.Close, self.n2)

        def next(self) -> None:
            if crossover(self.s1, self.s2):
                self.position.close()
                self.buy()
            elif crossover(self.s2, self.s1):
                self.position.close()
                self.sell()

except ImportError:
    Backtest = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    addr = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "STRATOPT_GRPC_ADDR": addr,
        "STRATOPT_DATA_DIR": str(data_dir),
        "STRATOPT_SAMPLE_DATA": "0",
        "STRATOPT_WORKERS": "1",
        "STRATOPT_LOG_LEVEL": "WARNING",
    }
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratopt.client.cli", "serve", "--dev"],
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
    return proc, addr


def login(ch: grpc.Channel) -> list[tuple[str, str]]:
    username, _, password = next(u for u in DEMO_USERS if u[0] == "trader")
    token = (
        auth_pb2_grpc.AuthServiceStub(ch)
        .Login(auth_pb2.LoginRequest(username=username, password=password))
        .access_token
    )
    return [("authorization", f"Bearer {token}")]


def run_job(
    stub: pbg.OptimizationServiceStub, md: Any, dataset_id: str, trials: int
) -> tuple[float, pb.Job]:
    spec = pb.OptimizationSpec(
        strategy_type="sma_crossover",
        dataset_id=dataset_id,
        trials=trials,
        sampler=pb.SAMPLER_TPE,
        seed=1,
    )
    start = time.perf_counter()
    job = stub.StartOptimization(pb.StartOptimizationRequest(spec=spec), metadata=md).job
    final = job
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=md):
        final = event.job
    return time.perf_counter() - start, final


def run_long(
    stub: pbg.OptimizationServiceStub, md: Any, dataset_id: str, trials: int, step: int = 1_000
) -> tuple[float, pb.Job]:
    """Like `run_job`, printing a line each time the job passes a multiple of `step` trials."""
    spec = pb.OptimizationSpec(
        strategy_type="sma_crossover",
        dataset_id=dataset_id,
        trials=trials,
        sampler=pb.SAMPLER_TPE,
        seed=1,
    )
    print(
        f"{'trials':>15}  {'trials/s':>8}  {'job rate':>8}  {'job ETA':>8}  {'left':>7}"
        "   (trials/s in each stretch; the job's own rate and ETA at the mark)"
    )
    start = time.perf_counter()
    job = stub.StartOptimization(pb.StartOptimizationRequest(spec=spec), metadata=md).job
    final = job
    marks: list[tuple[int, float, float, float | None]] = []
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=md):
        final = event.job
        done = final.trials_completed
        if done >= (len(marks) + 1) * step and done < trials:
            eta = final.eta.seconds + final.eta.nanos / 1e9 if final.HasField("eta") else None
            marks.append((done, time.perf_counter() - start, final.throughput, eta))
    seconds = time.perf_counter() - start
    marks.append((final.trials_completed, seconds, final.throughput, None))
    prev_n, prev_t = 0, 0.0
    for n, t, rate, eta in marks:
        eta_s = f"{eta:7.1f}s" if eta is not None else f"{'-':>8}"
        print(
            f"{prev_n:>6,} - {n:>6,}  {(n - prev_n) / (t - prev_t):8.1f}  {rate:8.1f}  {eta_s}"
            f"  {seconds - t:6.1f}s"
        )
        prev_n, prev_t = n, t
    return seconds, final


def bench_stratopt(
    bars: int, trials: int, long_trials: int, data_dir: Path
) -> tuple[float | None, float | None, str]:
    proc, addr = start_server(data_dir)
    ours = long = None
    try:
        with grpc.insecure_channel(addr) as ch:
            md = login(ch)
            ds = (
                md_grpc.MarketDataServiceStub(ch)
                .GenerateSyntheticDataset(
                    md_pb.GenerateSyntheticDatasetRequest(
                        name="bench", symbol="BENCH", bar_count=bars, seed=7
                    ),
                    metadata=md,
                )
                .dataset
            )
            stub = pbg.OptimizationServiceStub(ch)
            run_job(stub, md, ds.id, 20)
            if trials:
                seconds, job = run_job(stub, md, ds.id, trials)
                check(job, trials)
                print(
                    f"stratopt        {trials} TPE trials on {bars:,} bars via gRPC: "
                    f"{seconds:6.2f} s  {trials / seconds:8.1f} trials/s  "
                    f"(best sharpe {job.best_value:.3f})"
                )
                ours = trials / seconds
            if long_trials:
                print(f"\nlong study: {long_trials:,} TPE trials on {bars:,} bars via gRPC")
                seconds, job = run_long(stub, md, ds.id, long_trials)
                check(job, long_trials)
                long = long_trials / seconds
                print(
                    f"{long_trials:,} trials in {seconds:.1f} s: {long:.1f} trials/s on average"
                    f" (best sharpe {job.best_value:.3f})"
                )
            return ours, long, ds.id
    finally:
        proc.terminate()
        proc.wait(15)


def check(job: pb.Job, trials: int) -> None:
    if job.state != pb.JOB_STATE_SUCCEEDED or job.trials_completed != trials:
        raise RuntimeError(f"job ended {pb.JobState.Name(job.state)}: {job.error}")


def bench_backtesting_py(data_dir: Path, dataset_id: str, trials: int) -> float | None:
    if Backtest is None:
        print("backtesting.py not installed (pip install -e '.[bench]'): no peer figure")
        return None
    bars = DatasetStore(data_dir / "datasets").load(dataset_id, mmap=False)
    frame = bars.to_frame().rename(columns=str.capitalize)
    frame.index = frame.index.tz_localize(None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(frame, SmaCross, cash=10_000_000, finalize_trades=True)
        start = time.perf_counter()
        bt.optimize(
            n1=range(2, 201),
            n2=range(5, 401),
            constraint=lambda p: p.n1 < p.n2,
            maximize="Sharpe Ratio",
            max_tries=trials,
            random_state=0,
        )
        seconds = time.perf_counter() - start
    print(
        f"backtesting.py  {trials} combinations, Backtest.optimize:     {seconds:6.2f} s"
        f"  {trials / seconds:8.1f} trials/s  ({os.cpu_count()} processes)"
    )
    return trials / seconds


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--long-trials", type=int, default=20_000, help="0 or --no-long: skip (c)")
    ap.add_argument("--no-long", dest="long_trials", action="store_const", const=0)
    ap.add_argument("--long", action="store_true", help="run the long study (c) alone")
    args = ap.parse_args()
    if args.long:
        args.trials, args.no_peer, args.long_trials = 0, True, args.long_trials or 20_000
    with tempfile.TemporaryDirectory(prefix="stratopt-bench-") as tmp:
        ours, long, dataset_id = bench_stratopt(args.bars, args.trials, args.long_trials, Path(tmp))
        peer = (
            None
            if args.no_peer or not args.trials
            else bench_backtesting_py(Path(tmp), dataset_id, args.trials)
        )
    if ours is not None:
        print(f"target >= 50 trials/s: {'met' if ours >= 50 else 'NOT met'}")
    if long is not None:
        print(f"long study target > 100 trials/s on average: {'met' if long > 100 else 'NOT met'}")
    if ours and peer:
        ratio = ours / peer
        verdict = "met" if ratio >= 20 else "NOT met"
        print(f"ratio stratopt / backtesting.py: {ratio:.1f}x (target >= 20x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
