"""SLA timers: first response, next response and resolution, counted in business hours, paused while the ticket waits
on the citizen (pending) and stopped when it is resolved.

``evaluate`` is pure (ticket + its status events + messages → timer states). ``check_ticket`` (job ``sla_check``)
evaluates a ticket, records its nearest due time on the ticket (``meta.sla_due_at``) and schedules the next check at
the next warning or due time. A warning or a breach is handed to a ``sla_notify`` job whose dedupe key names the
ticket and the timer's cycle, so each is notified exactly once even with many workers."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inbox.domain import Direction, Event, EventKind, Job, Message, Ticket, TicketStatus, utcnow
from inbox.ingest import AUTOMATED_FLAGS
from inbox.store.base import JobSpec, TicketChanges
from workers.quality.calendar import BusinessCalendar, Interval, business_seconds_between, due_at
from workers.quality.settings import SLAPolicy

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "system:sla"
PAUSE_STATUSES = frozenset({TicketStatus.PENDING, TicketStatus.RESOLVED, TicketStatus.CLOSED})
STOP_STATUSES = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})
EV_WARNING = "sla.warning"
EV_BREACHED = "sla.breached"
SURVEY_KIND = "csat_survey"  # message.meta["kind"] of survey messages: never a response
NOT_RESPONSES = frozenset({SURVEY_KIND, "auto_ack"})  # robots' messages (survey, e-mail acknowledgement)


@dataclass
class TimerState:
    name: str  # first_response | next_response | resolution
    key: str  # the timer's cycle: unique per ticket (a next response starts one cycle per unanswered message)
    started_at: datetime
    target_s: float
    stopped_at: datetime | None
    elapsed_s: float  # business seconds counted so far (to stopped_at or now)
    due_at: datetime | None  # None while paused or stopped
    warn_at: datetime | None
    breached: bool

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    @property
    def paused(self) -> bool:
        return self.stopped_at is None and self.due_at is None


def policy_for(ticket: Ticket, policies: list[SLAPolicy]) -> SLAPolicy | None:
    best: SLAPolicy | None = None
    for p in policies:
        if p.matches(ticket.queue, ticket.priority, ticket.channel) and (
            best is None or p.specificity() > best.specificity()
        ):
            best = p
    return best


def status_timeline(ticket: Ticket, status_events: list[Event]) -> list[tuple[datetime, str]]:
    """(since, status) from creation on, rebuilt from ``ticket.status`` events."""
    evs = sorted((e for e in status_events if e.kind == EventKind.STATUS), key=lambda e: (e.at, e.seq))
    initial = evs[0].data.get("from") if evs else ticket.status
    out = [(ticket.created_at, str(initial or TicketStatus.NEW))]
    for e in evs:
        out.append((max(e.at, ticket.created_at), str(e.data.get("to"))))
    return out


def pauses_from(timeline: list[tuple[datetime, str]]) -> list[Interval]:
    out: list[Interval] = []
    for i, (since, status) in enumerate(timeline):
        if status in PAUSE_STATUSES:
            until = timeline[i + 1][0] if i + 1 < len(timeline) else None
            out.append((since, until))
    return out


def is_response(m: Message) -> bool:
    return m.direction == Direction.OUT and m.meta.get("kind") not in NOT_RESPONSES and m.delivery_status != "failed"


def is_citizen_message(m: Message) -> bool:
    return m.direction == Direction.IN and not AUTOMATED_FLAGS.intersection(m.flags)


def _timer(cal: BusinessCalendar, name: str, key: str, start: datetime, target_h: float, stop: datetime | None,
           pauses: list[Interval], now: datetime, warn_before_s: float) -> TimerState:
    target = target_h * 3600.0
    end = stop or now
    elapsed = business_seconds_between(cal, start, end, pauses)
    due = warn = None
    if stop is None:
        due = due_at(cal, start, target, pauses)
        if due is not None and warn_before_s > 0 and target > warn_before_s:
            warn = due_at(cal, start, target - warn_before_s, pauses)
    breached = elapsed >= target - 1e-6 or (due is not None and now >= due)
    return TimerState(name, key, start, target, stop, elapsed, due, warn, breached)


def evaluate(ticket: Ticket, status_events: list[Event], messages: list[Message], policy: SLAPolicy,
             cal: BusinessCalendar, now: datetime, warn_before_s: float = 3600.0) -> list[TimerState]:
    timeline = status_timeline(ticket, status_events)
    pauses = pauses_from(timeline)
    stopped_at = timeline[-1][0] if timeline[-1][1] in STOP_STATUSES else None
    if stopped_at is not None:
        stopped_at = ticket.resolved_at or stopped_at
    timers = []
    fr_stop = ticket.first_response_at or stopped_at
    timers.append(_timer(cal, "first_response", "first_response", ticket.created_at, policy.first_response_h,
                         fr_stop, pauses, now, warn_before_s))
    if ticket.first_response_at is not None:
        ordered = sorted(messages, key=lambda m: m.received_at)
        last_reply = max([ticket.first_response_at, *(m.received_at for m in ordered if is_response(m))])
        waiting = [m for m in ordered if is_citizen_message(m) and m.received_at > last_reply]
        if waiting:
            start = waiting[0].received_at
            timers.append(_timer(cal, "next_response", f"next_response@{start.astimezone(UTC).isoformat()}", start,
                                 policy.next_response_h, stopped_at, pauses, now, warn_before_s))
    timers.append(_timer(cal, "resolution", "resolution", ticket.created_at, policy.resolution_h, stopped_at,
                         pauses, now, warn_before_s))
    return timers


# -- runtime side --------------------------------------------------------------------------------------------------
def calendar(rt: Runtime) -> BusinessCalendar:
    cal = rt.services.get("quality.calendar")
    if cal is None:
        cal = rt.services["quality.calendar"] = BusinessCalendar.from_settings(rt.settings.sla)
    return cal


async def ticket_timers(rt: Runtime, ticket: Ticket, now: datetime | None = None) -> tuple[SLAPolicy | None,
                                                                                            list[TimerState]]:
    policy = policy_for(ticket, rt.settings.sla.policies)
    if policy is None:
        return None, []
    events = await rt.store.list_events(ticket_id=ticket.id, kinds=[EventKind.STATUS], limit=100_000)
    messages = await rt.store.list_messages(ticket.id)
    timers = evaluate(ticket, events, messages, policy, calendar(rt), now or utcnow(),
                      rt.settings.sla.warn_before_h * 3600.0)
    return policy, timers


def check_job_spec(ticket_id: str, tag: str, not_before: datetime | None = None) -> JobSpec:
    return JobSpec("sla_check", {"ticket_id": ticket_id}, not_before=not_before,
                   dedupe_key=f"sla_check:{ticket_id}:{tag}")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


async def check_ticket(rt: Runtime, ticket_id: str, now: datetime | None = None) -> list[TimerState]:
    """Evaluate the ticket's timers; hand new warnings/breaches to ``sla_notify``; schedule the next check."""
    if not rt.settings.sla.enabled:
        return []
    now = now or utcnow()
    ticket = await rt.store.get_ticket(ticket_id)
    if ticket is None:
        return []
    policy, timers = await ticket_timers(rt, ticket, now)
    if policy is None:
        return []
    state = ticket.meta.get("sla") or {}
    warned, breached = set(state.get("warned", [])), set(state.get("breached", []))
    wakes: list[datetime] = []
    for t in timers:
        if not t.active:
            continue
        if t.breached and t.key not in breached:
            await rt.store.enqueue(_notify_spec(ticket.id, t, "breach", policy))
        elif t.warn_at is not None and now >= t.warn_at and not t.breached and t.key not in warned:
            await rt.store.enqueue(_notify_spec(ticket.id, t, "warning", policy))
        if t.warn_at is not None and t.warn_at > now and t.key not in warned:
            wakes.append(t.warn_at)
        if t.due_at is not None and t.due_at > now and t.key not in breached:
            wakes.append(t.due_at)
    dues = [t.due_at for t in timers if t.active and t.due_at is not None]
    due = _iso(min(dues)) if dues else None
    if ticket.meta.get("sla_due_at") != due or ticket.meta.get("sla_policy") != policy.name:
        await rt.store.update_ticket(ticket.id, TicketChanges(meta={"sla_due_at": due, "sla_policy": policy.name}),
                                     ACTOR)
    if wakes:
        wake = min(wakes)
        await rt.store.enqueue(check_job_spec(ticket.id, _iso(wake) or "", wake))
    return timers


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _notify_spec(ticket_id: str, t: TimerState, level: str, policy: SLAPolicy) -> JobSpec:
    payload = {"ticket_id": ticket_id, "timer": t.name, "key": t.key, "level": level, "policy": policy.name,
               "due_at": _iso(t.due_at), "target_h": round(t.target_s / 3600, 3)}
    return JobSpec("sla_notify", payload, dedupe_key=f"sla_notify:{level}:{ticket_id}:{_key_hash(t.key)}")


async def supervisors_for(rt: Runtime, queue: str | None) -> list[str]:
    s = rt.settings.sla
    if queue and queue in s.supervisors:
        return [s.supervisors[queue].lower()]
    found = []
    for email, doc in await rt.store.list_docs("users"):
        if doc.get("role") == "supervisor" and doc.get("active", True):
            queues = doc.get("queues") or []
            if (queue and queue in queues) or "*" in queues:
                found.append(email)
    if found:
        return sorted(found)
    return [s.default_supervisor.lower()] if s.default_supervisor else []


async def notify(rt: Runtime, payload: dict[str, Any]) -> bool:
    """Record one warning or breach: an event, a notification per recipient, the ticket's meta. Each step is
    idempotent, so a retried job never notifies twice. Returns False when it had already been recorded."""
    ticket = await rt.store.get_ticket(payload["ticket_id"])
    if ticket is None:
        return False
    level, key = payload["level"], payload["key"]
    kind = EV_BREACHED if level == "breach" else EV_WARNING
    recorded = any(e.data.get("key") == key for e in
                   await rt.store.list_events(ticket_id=ticket.id, kinds=[kind], limit=10_000))
    if level == "breach":
        recipients = await supervisors_for(rt, ticket.queue)
    else:
        recipients = [ticket.assignee] if ticket.assignee else await supervisors_for(rt, ticket.queue)
    data = {"timer": payload["timer"], "key": key, "policy": payload.get("policy"), "due_at": payload.get("due_at"),
            "target_h": payload.get("target_h"), "queue": ticket.queue, "number": ticket.number, "to": recipients}
    if not recorded:
        await rt.store.append_event(kind, ticket.id, ACTOR, data)
    now = utcnow().isoformat()
    for email in recipients:
        nkey = f"sla:{level}:{ticket.id}:{_key_hash(key)}:{email}"
        if await rt.store.get_doc("notifications", nkey) is None:
            await rt.store.put_doc("notifications", nkey, {
                "kind": kind, "to": email, "ticket_id": ticket.id, "number": ticket.number, "queue": ticket.queue,
                "subject": ticket.subject, "timer": payload["timer"], "due_at": payload.get("due_at"), "at": now,
                "read": False,
            })
    state = dict(ticket.meta.get("sla") or {})
    field_name = "breached" if level == "breach" else "warned"
    keys = list(state.get(field_name, []))
    meta: dict[str, Any] = {}
    if key not in keys:
        state[field_name] = [*keys, key]
        meta["sla"] = state
    if level == "breach" and not ticket.meta.get("sla_breached"):
        meta["sla_breached"] = True
        meta["sla_breached_at"] = now
    if meta:
        await rt.store.update_ticket(ticket.id, TicketChanges(meta=meta), ACTOR)
    if not recorded:
        log.info("SLA %s on ticket #%s (%s) → %s", level, ticket.number, payload["timer"], ", ".join(recipients))
    return not recorded


async def check_job(rt: Runtime, job: Job) -> None:
    await check_ticket(rt, job.payload["ticket_id"])


async def notify_job(rt: Runtime, job: Job) -> None:
    await notify(rt, job.payload)
