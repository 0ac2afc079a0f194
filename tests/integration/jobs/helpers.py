"""Small clients for the optimization tests: datasets, jobs, watching to the end."""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

Metadata = Sequence[tuple[str, str]]
TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


def make_dataset(ch: grpc.Channel, md: Metadata, bars: int = 5_000, seed: int = 3) -> str:
    req = md_pb.GenerateSyntheticDatasetRequest(
        name=f"opt{seed}", symbol="OPT", bar_count=bars, seed=seed
    )
    return str(
        md_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(req, metadata=md).dataset.id
    )


def start(stub: pbg.OptimizationServiceStub, md: Metadata, **spec: object) -> pb.Job:
    spec.setdefault("strategy_type", "sma_crossover")
    request = pb.StartOptimizationRequest(spec=pb.OptimizationSpec(**spec))  # type: ignore[arg-type]
    return stub.StartOptimization(request, metadata=md).job


def watch_all(
    stub: pbg.OptimizationServiceStub, md: Metadata, job_id: str, timeout: float = 120
) -> list[pb.WatchJobResponse]:
    return list(stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=md, timeout=timeout))


def wait_done(
    stub: pbg.OptimizationServiceStub, md: Metadata, job_id: str, timeout: float = 120
) -> pb.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=md).job
        if job.state in TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def all_trials(
    stub: pbg.OptimizationServiceStub, md: Metadata, job_id: str, order_by: str = ""
) -> list[pb.TrialSummary]:
    out: list[pb.TrialSummary] = []
    token = ""
    while True:
        page = stub.ListTrials(
            pb.ListTrialsRequest(job_id=job_id, page_size=97, page_token=token, order_by=order_by),
            metadata=md,
        )
        out += page.trials
        token = page.next_page_token
        if not token:
            return out


def params(t: pb.TrialSummary) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, v.int_value) for k, v in t.parameters.items()))
