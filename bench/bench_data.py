"""Benchmark of the data package: storage load times and import throughput.

Run: ``python bench/bench_data.py [--rows 1000000]``. Prints one line per measurement;
times are the median of several runs unless noted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from stratopt.data import (
    Bars,
    BarStreamImporter,
    DatasetStore,
    generate_bars,
    import_csv,
    import_parquet,
    resample,
    validate_bars,
)

CHUNK = 1 << 20


def timed(action: Callable[[], object], repeat: int) -> float:
    """Median wall time in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def report(label: str, seconds: float, rows: int | None = None, size: int | None = None) -> None:
    parts = [f"{label:<44} {seconds * 1e3:10.2f} ms"]
    if rows:
        parts.append(f"{rows / seconds / 1e6:8.2f} M rows/s")
    if size:
        parts.append(f"{size / seconds / 2**20:8.1f} MiB/s")
    print("  ".join(parts))


def csv_bytes(bars: Bars, *, epoch_ms: bool) -> bytes:
    ts = (
        pa.array(bars.ts // 1_000_000) if epoch_ms else pa.array(bars.ts, pa.timestamp("ns", "UTC"))
    )
    columns = {"timestamp": ts, "open": bars.open, "high": bars.high, "low": bars.low}
    table = pa.table({**columns, "close": bars.close, "volume": bars.volume})
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def stream_csv(data: bytes) -> Bars:
    importer = BarStreamImporter("csv", max_bytes=len(data), max_rows=10**8)
    for start in range(0, len(data), CHUNK):
        importer.feed_bytes(data[start : start + CHUNK])
    return importer.finish()


def bench_storage(bars: Bars, root: Path) -> None:
    store = DatasetStore(root)
    report("save (validate + sha256 + write + fsync)", timed(lambda: store.save("b", bars), 3))
    store.load("b")  # warm the page cache
    report("load mmap (warm)", timed(lambda: store.load("b"), 50), len(bars))
    report(
        "load mmap + read every close",
        timed(lambda: float(store.load("b").close.sum()), 20),
        len(bars),
    )
    report("load copy (mmap=False)", timed(lambda: store.load("b", mmap=False), 10), len(bars))
    report("load mmap + verify checksum", timed(lambda: store.load("b", verify=True), 5))


def bench_imports(bars: Bars, root: Path) -> None:
    n = len(bars)
    for label, epoch_ms in (("ISO timestamps", False), ("epoch ms", True)):
        data = csv_bytes(bars, epoch_ms=epoch_ms)
        assert import_csv(data).equals(bars)
        report(
            f"import_csv {label} ({len(data) / 2**20:.0f} MiB)",
            timed(partial(import_csv, data), 3),
            n,
            len(data),
        )
        report(
            f"stream CSV {label}, 1 MiB chunks",
            timed(partial(stream_csv, data), 3),
            n,
            len(data),
        )
    path = root / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(bars.to_frame()), path)
    data = path.read_bytes()
    report(
        f"import_parquet ({len(data) / 2**20:.0f} MiB)",
        timed(lambda: import_parquet(data), 5),
        n,
        len(data),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    start = time.perf_counter()
    bars = generate_bars(args.rows, timeframe="1m", seed=1, price_decimals=2)
    print(f"{args.rows:,} synthetic 1m bars")
    report("generate_bars (single run)", time.perf_counter() - start, len(bars))
    report("validate_bars", timed(lambda: validate_bars(bars), 5), len(bars))
    report("resample 1m -> 1h", timed(lambda: resample(bars, "1h"), 5), len(bars))
    with tempfile.TemporaryDirectory() as tmp:
        bench_storage(bars, Path(tmp))
        bench_imports(bars, Path(tmp))


if __name__ == "__main__":
    main()
