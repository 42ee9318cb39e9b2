"""What drives the quality features: an ingest job planner, and a periodic ``quality_tick`` job.

- The planner (on ``rt.pipeline.job_planners``) starts the SLA timers of a new ticket (``sla_check``), re-checks them
  when a citizen writes again, schedules the ticket's assignment once triage had time to set its queue, and keeps the
  tick chain alive.
- The tick reads the event log from a saved cursor (``cursors/quality:events``) and reacts to what agents and other
  workers did: status, priority and reply events re-check SLAs; a resolution schedules the survey; a queue change or
  an unassignment (re)assigns. It then assigns waiting tickets, reassigns those of agents gone offline, runs
  retention when due, and enqueues the next tick. Ticks are jobs keyed by time bucket, so any number of job workers
  run each at most once; the ``quality`` worker (``inbox worker quality``) only keeps the chain going.

Every reaction is a job with a dedupe key, so reading an event twice (after a crash) enqueues nothing new."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from inbox.domain import EventKind, Job, utcnow
from inbox.store.base import JobSpec
from workers.quality import assignment, csat, retention, sla

if TYPE_CHECKING:
    from inbox.ingest import IngestContext, Pipeline
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

CURSOR = ("cursors", "quality:events")
BATCH = 1000
MAX_EVENTS_PER_TICK = 20_000
SURVEY_MAX_AGE = timedelta(days=3)  # resolutions older than this (e.g. a first run on an old database) get no survey
SLA_KINDS = {EventKind.STATUS, EventKind.PRIORITY, EventKind.QUEUE, EventKind.REPLY_QUEUED, EventKind.REPLY_SENT,
             EventKind.REPLY_FAILED, EventKind.MESSAGE_ADDED, EventKind.TICKET_CREATED}
WATCHED = sorted(str(k) for k in SLA_KINDS | {EventKind.ASSIGNED})


def tick_spec(rt: Runtime, now: datetime | None = None) -> JobSpec:
    """The tick of the next time bucket (one job per bucket whoever enqueues it)."""
    interval = rt.settings.assignment.sweep_interval_s
    now = now or utcnow()
    bucket = math.floor(now.timestamp() / interval) + 1
    at = datetime.fromtimestamp(bucket * interval, UTC)
    return JobSpec("quality_tick", {"bucket": bucket}, not_before=at, max_attempts=1,
                   dedupe_key=f"quality_tick:{int(interval)}:{bucket}")


def plan_quality(rt: Runtime, p: Pipeline, ctx: IngestContext) -> list[JobSpec]:
    if ctx.ticket is None or ctx.automated:
        return []
    tid = ctx.ticket.id
    tag = "in:" + ":".join(ctx.inbound.dedupe_key)
    jobs = [tick_spec(rt)]
    if rt.settings.sla.enabled:
        jobs.append(sla.check_job_spec(tid, tag))
    if ctx.ticket_is_new and rt.settings.assignment.enabled:
        when = utcnow() + timedelta(seconds=rt.settings.assignment.wait_for_triage_s)
        jobs.append(assignment.assign_job_spec(tid, "created", not_before=when))
    return jobs


async def process_events(rt: Runtime, now: datetime | None = None) -> int:
    """React to new events since the cursor; returns how many were read."""
    now = now or utcnow()
    state = await rt.store.get_doc(*CURSOR) or {}
    seq = int(state.get("seq", 0))
    read = 0
    while read < MAX_EVENTS_PER_TICK:
        events = await rt.store.list_events(after_seq=seq, limit=BATCH, kinds=WATCHED)
        if not events:
            break
        sla_check: dict[str, int] = {}
        specs: list[JobSpec] = []
        for e in events:
            seq = e.seq
            tid = e.ticket_id
            if tid is None:
                continue
            if e.kind in SLA_KINDS:
                sla_check[tid] = e.seq
            if csat.is_resolution(e.kind, e.data) and now - e.at < SURVEY_MAX_AGE and rt.settings.csat.enabled:
                specs.append(csat.send_job_spec(tid, e.at + timedelta(seconds=rt.settings.csat.delay_s)))
            if e.actor == assignment.ACTOR:
                continue
            if e.kind == EventKind.QUEUE or (e.kind == EventKind.ASSIGNED and e.data.get("to") is None):
                specs.append(assignment.assign_job_spec(tid, f"e{e.seq}", requeue=True))
            elif e.kind == EventKind.TICKET_CREATED:
                when = e.at + timedelta(seconds=rt.settings.assignment.wait_for_triage_s)
                specs.append(assignment.assign_job_spec(tid, "created", not_before=when))
        if rt.settings.sla.enabled:
            specs.extend(sla.check_job_spec(tid, f"e{s}") for tid, s in sla_check.items())
        for spec in specs:
            await rt.store.enqueue(spec)
        read += len(events)
        await rt.store.put_doc(*CURSOR, {"seq": seq, "at": now.isoformat()})
        if len(events) < BATCH:
            break
    return read


async def retention_due(rt: Runtime, now: datetime) -> bool:
    s = rt.settings.retention
    if not s.enabled or not s.policies:
        return False
    state = await rt.store.get_doc(*retention.STATE) or {}
    last = state.get("last_run")
    return last is None or now - datetime.fromisoformat(last) >= timedelta(hours=s.run_interval_h)


async def tick(rt: Runtime, now: datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    out = {"events": await process_events(rt, now)}
    out["reassigned"] = await assignment.reassign_offline(rt, now)
    out["assigned"] = await assignment.assign_waiting(rt, now)
    if await retention_due(rt, now):
        r = await retention.run_retention(rt, now)
        out["retained"] = r["anonymized"] + r["deleted"]
    return out


async def tick_job(rt: Runtime, job: Job) -> None:
    try:
        result = await tick(rt)
        if any(result.values()):
            log.debug("quality tick: %s", result)
    finally:
        await rt.store.enqueue(tick_spec(rt))


async def quality_worker(rt: Runtime, stop: asyncio.Event) -> None:
    """Keeps the tick chain alive (the job workers run the ticks)."""
    while not stop.is_set():
        await rt.store.enqueue(tick_spec(rt))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rt.settings.assignment.sweep_interval_s)
