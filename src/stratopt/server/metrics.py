"""Prometheus metrics of one server process, at http://STRATOPT_METRICS_ADDR/metrics.

Off unless STRATOPT_METRICS_ADDR (host:port) is set. The endpoint runs in a thread of its
own (prometheus-client's server), so a scrape never waits for the event loop. What it shows:

- calls, latency, open streams, backtests, rate-limit refusals: `api/metrics_interceptor.py`;
- `stratopt_optimization_trials_total`: trials finished by this process's workers (take
  `rate(...[1m])` for trials per second), counted from the job event bus as they complete;
- `stratopt_optimization_jobs{state}`, `stratopt_paper_runs_running` and
  `stratopt_backtests_stored`: read from the database every REFRESH_S seconds (a scrape
  cannot await the database), so they cover every replica and `stratopt worker` sharing it;
- the process's memory, CPU and file descriptors, and Python's garbage collector.

Each server has its own registry, so tests can run several servers in one process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from stratopt import __version__
from stratopt.api.metrics_interceptor import RpcMetrics
from stratopt.jobs.events import JobEvent
from stratopt.server.gateway import dialable, split_addr
from stratopt.services.operations import operational_counts
from stratopt.store.db import Database

log = logging.getLogger("stratopt.server.metrics")
REFRESH_S = 5.0


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.rpc = RpcMetrics(self.registry)
        self.info = Gauge(
            "stratopt_build_info", "Always 1; the version as a label", ["version"],
            registry=self.registry,
        )  # fmt: skip
        self.info.labels(__version__).set(1)
        self.trials = Counter(
            "stratopt_optimization_trials",
            "Optimization trials finished by this process's workers",
            registry=self.registry,
        )
        self.jobs = Gauge(
            "stratopt_optimization_jobs",
            "Optimization jobs by state, in the database (all replicas)",
            ["state"],
            registry=self.registry,
        )
        self.paper_runs = Gauge(
            "stratopt_paper_runs_running",
            "Paper-trading runs in the running state, in the database (all replicas)",
            registry=self.registry,
        )
        self.backtests_stored = Gauge(
            "stratopt_backtests_stored",
            "Backtest results kept in the database",
            registry=self.registry,
        )
        self.refresh_failures = Counter(
            "stratopt_metrics_refresh_failures",
            "Database reads for the gauges that failed (the gauges keep their last values)",
            registry=self.registry,
        )
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def on_job_event(self, event: JobEvent) -> None:
        """An EventBus listener: every finished trial is one event of type "trial"."""
        if event.type == "trial":
            self.trials.inc()

    async def refresh(self, db: Database) -> None:
        counts = await operational_counts(db)
        for state, n in counts.jobs_by_state.items():
            self.jobs.labels(state).set(n)
        self.paper_runs.set(counts.running_paper_runs)
        self.backtests_stored.set(counts.stored_backtests)

    async def refresh_forever(self, db: Database, interval: float = REFRESH_S) -> None:
        while True:
            try:
                await self.refresh(db)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # an outage: health reports it; the gauges just wait
                self.refresh_failures.inc()
                log.debug("metrics refresh failed: %s", e)
            await asyncio.sleep(interval)

    def serve(self, addr: str) -> int:
        """Starts /metrics on `addr` (port 0 = any free port); returns the port."""
        host, port = split_addr(addr)
        self._http, self._thread = start_http_server(
            port, addr=host or "0.0.0.0", registry=self.registry
        )
        bound = int(self._http.server_address[1])
        log.info("metrics listening", extra={"addr": f"{dialable(host)}:{bound}"})
        return bound

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
