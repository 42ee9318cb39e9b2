"""The job runner: claims jobs from the store's queue and runs the registered handler for each kind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from inbox.domain import Job

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

JobHandler = Callable[["Runtime", Job], Awaitable[None]]


class RetryLater(Exception):
    """Raised by a handler for a temporary failure; the job is retried after ``delay_s``."""

    def __init__(self, reason: str, delay_s: float | None = None):
        super().__init__(reason)
        self.delay_s = delay_s


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes straight to the dead letters."""


def backoff(attempts: int, base: float, maximum: float) -> float:
    return float(min(maximum, base * (2 ** max(0, attempts - 1))))


def worker_name(prefix: str = "jobs") -> str:
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}:{id(asyncio.current_task()):x}"


async def run_one(rt: Runtime, job: Job, worker: str) -> str:
    handler = rt.job_handlers.get(job.kind)
    cfg = rt.settings.workers
    beat = asyncio.create_task(_heartbeat(rt, job, worker, cfg.job_lease_s))
    try:
        if handler is None:
            raise PermanentFailure(f"no handler for job kind {job.kind!r}")
        await handler(rt, job)
    except RetryLater as exc:
        delay = exc.delay_s if exc.delay_s is not None else backoff(job.attempts, cfg.job_backoff_base_s,
                                                                    cfg.job_backoff_max_s)
        return await rt.store.fail(job.id, worker, str(exc), delay)
    except PermanentFailure as exc:
        return await rt.store.fail(job.id, worker, str(exc), None)
    except Exception as exc:  # a bug or an unexpected outage: retry with backoff, dead-letter at the end
        log.exception("job %s (%s) failed", job.id, job.kind)
        err = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return await rt.store.fail(job.id, worker, err,
                                   backoff(job.attempts, cfg.job_backoff_base_s, cfg.job_backoff_max_s))
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    await rt.store.complete(job.id, worker)
    return "done"


async def _heartbeat(rt: Runtime, job: Job, worker: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(max(1.0, lease_s / 3))
        if not await rt.store.heartbeat(job.id, worker, lease_s):
            log.warning("lost the lease of job %s", job.id)
            return


async def run_jobs(rt: Runtime, kinds: list[str] | None = None, stop: asyncio.Event | None = None,
                   concurrency: int = 4) -> None:
    """Claim and run jobs until ``stop`` is set."""
    stop = stop or asyncio.Event()

    async def loop() -> None:
        worker = worker_name()
        while not stop.is_set():
            job = await rt.store.claim(worker, kinds, rt.settings.workers.job_lease_s)
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rt.settings.workers.poll_interval_s)
                continue
            await run_one(rt, job, worker)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
