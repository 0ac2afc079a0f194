"""OptimizationService: optimization jobs over gRPC (submit, read, cancel, watch, results)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from stratopt.api.context import current_principal
from stratopt.api.optimization_convert import (
    event_to_pb,
    job_to_pb,
    priority_from_pb,
    result_to_pb,
    spec_from_pb,
    state_from_pb,
    trial_to_pb,
)
from stratopt.errors import InvalidArgument
from stratopt.jobs.events import JobEvent
from stratopt.services.optimization_jobs import OptimizationJobs
from stratopt.v1 import optimization_pb2 as pb
from stratopt.v1 import optimization_pb2_grpc as pbg

Ctx: TypeAlias = grpc.aio.ServicerContext
_CONVERTED_MAX = 256


class OptimizationServicer(pbg.OptimizationServiceServicer):
    def __init__(self, jobs: OptimizationJobs) -> None:
        self.jobs = jobs
        # Every watcher of a job receives the same event objects: convert each once.
        self._converted: OrderedDict[int, tuple[JobEvent, pb.WatchJobResponse]] = OrderedDict()

    def _event_pb(self, event: JobEvent) -> pb.WatchJobResponse:
        key = id(event)
        hit = self._converted.get(key)
        if hit is not None and hit[0] is event:
            return hit[1]
        message = event_to_pb(event)
        self._converted[key] = (event, message)  # holding the event keeps its id unique
        if len(self._converted) > _CONVERTED_MAX:
            self._converted.popitem(last=False)
        return message

    async def StartOptimization(
        self, request: pb.StartOptimizationRequest, context: Ctx
    ) -> pb.StartOptimizationResponse:
        spec = spec_from_pb(request.spec)
        job = await self.jobs.start(current_principal(), spec, priority_from_pb(request.priority))
        return pb.StartOptimizationResponse(job=job_to_pb(job))

    async def BatchStartOptimizations(
        self, request: pb.BatchStartOptimizationsRequest, context: Ctx
    ) -> pb.BatchStartOptimizationsResponse:
        batch_id, jobs = await self.jobs.batch_start(
            current_principal(),
            spec_from_pb(request.spec),
            [t.strip() for t in request.strategy_types],
            [i.strip() for i in request.strategy_ids],
            [d.strip() for d in request.dataset_ids],
            [t.strip() for t in request.timeframes],
            priority_from_pb(request.priority),
        )
        return pb.BatchStartOptimizationsResponse(
            batch_id=batch_id, jobs=[job_to_pb(j) for j in jobs]
        )

    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> pb.GetJobResponse:
        job = await self.jobs.get(current_principal(), _job_id(request.job_id))
        return pb.GetJobResponse(job=job_to_pb(job))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        jobs, token = await self.jobs.list_jobs(
            current_principal(),
            state_from_pb(request.state),
            request.batch_id.strip(),
            request.page_size,
            request.page_token,
        )
        return pb.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs], next_page_token=token)

    async def CancelJob(self, request: pb.CancelJobRequest, context: Ctx) -> pb.CancelJobResponse:
        job = await self.jobs.cancel(current_principal(), _job_id(request.job_id))
        return pb.CancelJobResponse(job=job_to_pb(job))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchJobResponse]:
        async for event in self.jobs.watch(current_principal(), _job_id(request.job_id)):
            yield self._event_pb(event)

    async def GetOptimizationResult(
        self, request: pb.GetOptimizationResultRequest, context: Ctx
    ) -> pb.GetOptimizationResultResponse:
        result = await self.jobs.result(current_principal(), _job_id(request.job_id))
        return result_to_pb(result)

    async def ListTrials(
        self, request: pb.ListTrialsRequest, context: Ctx
    ) -> pb.ListTrialsResponse:
        trials, token = await self.jobs.trials(
            current_principal(),
            _job_id(request.job_id),
            request.order_by,
            request.page_size,
            request.page_token,
        )
        return pb.ListTrialsResponse(trials=[trial_to_pb(t) for t in trials], next_page_token=token)


def _job_id(value: str) -> str:
    if not value.strip():
        raise InvalidArgument.field("job_id", "required")
    return value.strip()
