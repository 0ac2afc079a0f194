"""The durable job queue: job rows and leases (`repo`), worker loops (`worker`), running one
job on one worker (`runner`), progress events and their fan-out (`events`, `watch`), and
read-only views of jobs and trials (`views`).

Only the queue: submitting, access checks and reading results are the application service
(`services/optimization_jobs.py`); studies and scoring are `optimize/`. Nothing here imports
`services/`, `api/` or `server/` (import-linter contract "jobs-queue-only").
"""
