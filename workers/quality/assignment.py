"""Queues and automatic assignment.

A ticket's queue is ``ticket.queue`` (the agency's top-level body, set by triage or an agent); tickets without one can
go to a per-channel queue (``assignment.channel_queues``) or ``assignment.default_queue``. Agents belong to the queues
listed in their ``users`` doc ("*" = all); only online agents (``presence`` doc, refreshed recently) with fewer open
tickets than their capacity receive work, in round-robin order or to the least loaded. Tickets of an agent offline
for longer than the grace period go to another agent of the queue (or back to the queue). Every change goes through
``Store.update_ticket``, which records the events."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inbox.domain import Job, Ticket, TicketFilter, utcnow
from inbox.store.base import JobSpec, NotFound, TicketChanges
from inbox.store.codec import parse_ts

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "system:assignment"
RR_COLLECTION = "assignment"


@dataclass
class AgentState:
    email: str
    queues: list[str]
    capacity: int
    load: int
    online: bool
    offline_since: datetime | None = None

    def serves(self, queue: str) -> bool:
        return queue in self.queues or "*" in self.queues

    @property
    def available(self) -> bool:
        return self.online and self.load < self.capacity


def presence_state(doc: dict | None, now: datetime, stale_s: float) -> tuple[bool, datetime | None]:
    """(online, offline since). No presence doc: offline since an unknown time (never reassigned for it)."""
    if not doc:
        return False, None
    last_seen = parse_ts(doc.get("last_seen"))
    if doc.get("online") and last_seen is not None and (now - last_seen).total_seconds() <= stale_s:
        return True, None
    if doc.get("online") and last_seen is None:
        return True, None
    return False, last_seen


def choose(candidates: list[AgentState], strategy: str, last: str | None) -> AgentState | None:
    """The next agent: available ones in e-mail order starting after ``last``; least_loaded takes the first of the
    lowest load in that order (so ties rotate too)."""
    ordered = sorted((a for a in candidates if a.available), key=lambda a: a.email)
    if not ordered:
        return None
    if last:
        ordered = [a for a in ordered if a.email > last] + [a for a in ordered if a.email <= last]
    if strategy == "least_loaded":
        return min(ordered, key=lambda a: a.load)
    return ordered[0]


def queue_for(ticket: Ticket, settings: object) -> str | None:
    return ticket.queue or settings.channel_queues.get(ticket.channel) or settings.default_queue or None  # type: ignore[attr-defined]


def _lock(rt: Runtime) -> asyncio.Lock:
    lock = rt.services.get("quality.assign_lock")
    if lock is None:
        lock = rt.services["quality.assign_lock"] = asyncio.Lock()
    return lock


async def load_agents(rt: Runtime, now: datetime | None = None) -> list[AgentState]:
    s = rt.settings.assignment
    now = now or utcnow()
    presence = dict(await rt.store.list_docs("presence"))
    agents = []
    for email, doc in await rt.store.list_docs("users"):
        if doc.get("role", "agent") not in s.assign_roles or not doc.get("active", True):
            continue
        online, since = presence_state(presence.get(email), now, s.presence_stale_s)
        load = await rt.store.count_tickets(TicketFilter(assignee=email, status=list(s.load_statuses)))
        capacity = doc.get("capacity")
        agents.append(AgentState(email, list(doc.get("queues") or []),
                                 int(capacity if capacity is not None else s.default_capacity), load, online, since))
    return agents


async def _assign_locked(rt: Runtime, ticket: Ticket, agents: list[AgentState],
                         exclude: str | None = None) -> str | None:
    s = rt.settings.assignment
    queue = queue_for(ticket, s)
    if queue is None:
        return None
    rr_key = f"rr:{queue}"
    rr = await rt.store.get_doc(RR_COLLECTION, rr_key) or {}
    agent = choose([a for a in agents if a.serves(queue) and a.email != exclude], s.strategy, rr.get("last"))
    if agent is None:
        return None
    changes = TicketChanges(assignee=agent.email, meta={"auto_assigned": agent.email})
    if ticket.queue != queue:
        changes.queue = queue
    await rt.store.update_ticket(ticket.id, changes, ACTOR)
    agent.load += 1
    for a in agents:  # the same person may appear once only, but keep any copy in step
        if a is not agent and a.email == agent.email:
            a.load = agent.load
    await rt.store.put_doc(RR_COLLECTION, rr_key, {"last": agent.email, "at": utcnow().isoformat()})
    return agent.email


async def assign_ticket(rt: Runtime, ticket_id: str, agents: list[AgentState] | None = None) -> str | None:
    """Assign one waiting ticket; returns the agent's e-mail or None (not waiting, no queue, nobody available)."""
    s = rt.settings.assignment
    if not s.enabled:
        return None
    async with _lock(rt):
        ticket = await rt.store.get_ticket(ticket_id)
        if ticket is None or ticket.assignee is not None or ticket.status not in s.assign_statuses:
            return None
        if agents is None:
            agents = await load_agents(rt)
        return await _assign_locked(rt, ticket, agents)


async def waiting_tickets(rt: Runtime, limit: int = 5000) -> list[Ticket]:
    """Unassigned tickets waiting for an agent, oldest first."""
    s = rt.settings.assignment
    out: list[Ticket] = []
    cursor = None
    flt = TicketFilter(status=list(s.assign_statuses), unassigned=True)
    while len(out) < limit:
        page = await rt.store.list_tickets(flt, sort="created", cursor=cursor, limit=min(500, limit - len(out)))
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    out.reverse()
    return out


async def assign_waiting(rt: Runtime, now: datetime | None = None) -> int:
    """Give every waiting ticket (with a queue) to an available agent; tickets without a queue wait for triage for
    ``wait_for_triage_s`` first. Returns how many were assigned."""
    s = rt.settings.assignment
    if not s.enabled:
        return 0
    now = now or utcnow()
    count = 0
    async with _lock(rt):
        agents = await load_agents(rt, now)
        if not any(a.available for a in agents):
            return 0
        for ticket in await waiting_tickets(rt):
            if ticket.queue is None and (now - ticket.created_at).total_seconds() < s.wait_for_triage_s:
                continue
            try:
                if await _assign_locked(rt, ticket, agents):
                    count += 1
            except NotFound:
                continue
            if not any(a.available for a in agents):
                break
    return count


async def reassign_offline(rt: Runtime, now: datetime | None = None) -> int:
    """Move the open tickets of agents offline for longer than the grace period to available agents of the same
    queue, or back to the queue (unassigned) when nobody is available. Returns how many tickets moved."""
    s = rt.settings.assignment
    if not s.enabled:
        return 0
    now = now or utcnow()
    moved = 0
    async with _lock(rt):
        agents = await load_agents(rt, now)
        grace = timedelta(seconds=s.offline_grace_s)
        for gone in agents:
            if gone.online or gone.offline_since is None or now - gone.offline_since < grace:
                continue
            flt = TicketFilter(assignee=gone.email, status=list(s.assign_statuses))
            page = await rt.store.list_tickets(flt, sort="created", limit=500)
            for ticket in reversed(page.items):
                queue = queue_for(ticket, s)
                target = None
                if queue:
                    rr = await rt.store.get_doc(RR_COLLECTION, f"rr:{queue}") or {}
                    target = choose([a for a in agents if a.serves(queue) and a.email != gone.email],
                                    s.strategy, rr.get("last"))
                if target is not None:
                    await rt.store.update_ticket(ticket.id, TicketChanges(assignee=target.email,
                                                                          meta={"auto_assigned": target.email}), ACTOR)
                    target.load += 1
                    await rt.store.put_doc(RR_COLLECTION, f"rr:{queue}",
                                           {"last": target.email, "at": utcnow().isoformat()})
                else:
                    await rt.store.update_ticket(ticket.id, TicketChanges(unassign=True), ACTOR)
                gone.load -= 1
                await rt.store.append_event("ticket.reassigned", ticket.id, ACTOR, {
                    "from": gone.email, "to": target.email if target else None, "reason": "agent_offline",
                    "offline_since": gone.offline_since.isoformat()})
                moved += 1
    if moved:
        log.info("reassigned %d tickets of offline agents", moved)
    return moved


async def requeue_if_outside(rt: Runtime, ticket_id: str) -> str | None:
    """After a queue change: an auto-assigned ticket whose agent does not serve the new queue is reassigned."""
    s = rt.settings.assignment
    if not s.enabled:
        return None
    async with _lock(rt):
        ticket = await rt.store.get_ticket(ticket_id)
        if ticket is None or ticket.status not in s.assign_statuses:
            return None
        queue = queue_for(ticket, s)
        agents = await load_agents(rt)
        if ticket.assignee is None:
            return await _assign_locked(rt, ticket, agents)
        if queue is None or ticket.meta.get("auto_assigned") != ticket.assignee:
            return None
        current = next((a for a in agents if a.email == ticket.assignee), None)
        if current is not None and current.serves(queue):
            return None
        previous = ticket.assignee
        ticket = await rt.store.update_ticket(ticket.id, TicketChanges(unassign=True), ACTOR)
        if current is not None:
            current.load -= 1
        target = await _assign_locked(rt, ticket, agents, exclude=previous)
        await rt.store.append_event("ticket.reassigned", ticket.id, ACTOR,
                                    {"from": previous, "to": target, "reason": "queue_changed", "queue": queue})
        return target


def assign_job_spec(ticket_id: str, tag: str, not_before: datetime | None = None, requeue: bool = False) -> JobSpec:
    payload = {"ticket_id": ticket_id, "requeue": requeue}
    return JobSpec("assign", payload, not_before=not_before, dedupe_key=f"assign:{ticket_id}:{tag}")


async def assign_job(rt: Runtime, job: Job) -> None:
    if job.payload.get("requeue"):
        await requeue_if_outside(rt, job.payload["ticket_id"])
    else:
        await assign_ticket(rt, job.payload["ticket_id"])
