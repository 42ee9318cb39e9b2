"""SLA timers (pure evaluation) and escalation through the job queue: a breach escalates exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from inbox.domain import Event, EventKind, Message, Ticket, TicketStatus, utcnow
from inbox.store.base import TicketChanges
from tests.quality.conftest import add_user, drain, ingest
from workers.outbox import queue_reply
from workers.quality import engine, sla
from workers.quality.calendar import BusinessCalendar
from workers.quality.settings import SLAPolicy
from workers.runtime import Runtime

MVD = ZoneInfo("America/Montevideo")
H = 3600.0


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=MVD)


def ticket(created: datetime, status: str = "open", **kw) -> Ticket:
    return Ticket(id="t1", number=1001, status=status, channel="email", contact_id="c1", subject="s",
                  created_at=created, **kw)


def status_event(seq: int, at: datetime, frm: str, to: str) -> Event:
    return Event(seq, EventKind.STATUS, "t1", "agent@x", at, {"from": frm, "to": to})


def message(mid: str, direction: str, at: datetime, **kw) -> Message:
    return Message(id=mid, ticket_id="t1", direction=direction, channel="email", account="a", external_id=mid,
                   author=None, text="x", received_at=at, **kw)


POLICY = SLAPolicy("normal", first_response_h=8, next_response_h=4, resolution_h=16)


def test_policy_choice_prefers_the_most_specific() -> None:
    policies = [SLAPolicy("any"), SLAPolicy("urgent", priority="urgent"),
                SLAPolicy("dnic-urgent-x", queue="DNIC", priority="urgent", channel="x")]
    t = ticket(local(2025, 5, 5, 10), priority="urgent")
    assert sla.policy_for(t, policies).name == "urgent"
    t.queue, t.channel = "DNIC", "x"
    assert sla.policy_for(t, policies).name == "dnic-urgent-x"
    t.priority = "low"
    assert sla.policy_for(t, policies).name == "any"


def test_timers_pause_while_pending_and_stop_when_resolved() -> None:
    cal = BusinessCalendar()
    created = local(2025, 5, 5, 10)  # Monday
    events = [status_event(1, local(2025, 5, 5, 12), "new", "pending"),
              status_event(2, local(2025, 5, 7, 11), "pending", "open")]
    now = local(2025, 5, 7, 12)
    timers = {t.name: t for t in sla.evaluate(ticket(created), events, [], POLICY, cal, now, H)}
    fr = timers["first_response"]
    assert fr.elapsed_s == 3 * H  # 10–12 Monday, 11–12 Wednesday
    assert fr.due_at == local(2025, 5, 7, 17)
    assert fr.warn_at == local(2025, 5, 7, 16)
    assert not fr.breached
    # still pending: the clocks do not run, no due time
    timers = {t.name: t for t in sla.evaluate(ticket(created, "pending"), events[:1], [], POLICY, cal, now, H)}
    assert timers["first_response"].paused and timers["first_response"].elapsed_s == 2 * H
    # answered and resolved: stopped timers, breached or not by their elapsed time
    t = ticket(created, "resolved", first_response_at=local(2025, 5, 6, 11), resolved_at=local(2025, 5, 8, 10))
    events = [status_event(1, local(2025, 5, 8, 10), "open", "resolved")]
    timers = {x.name: x for x in sla.evaluate(t, events, [], POLICY, cal, local(2025, 5, 9, 10), H)}
    assert timers["first_response"].elapsed_s == 9 * H and timers["first_response"].breached  # Mon 7 h + Tue 2 h
    assert timers["resolution"].elapsed_s == 24 * H and timers["resolution"].breached
    assert all(not x.active for x in timers.values())


def test_next_response_starts_with_an_unanswered_citizen_message() -> None:
    cal = BusinessCalendar()
    created = local(2025, 5, 5, 10)
    t = ticket(created, first_response_at=local(2025, 5, 5, 11))
    msgs = [message("m1", "in", created), message("m2", "out", local(2025, 5, 5, 11)),
            message("m3", "in", local(2025, 5, 6, 9, 30)), message("m4", "in", local(2025, 5, 6, 10)),
            message("m5", "in", local(2025, 5, 6, 10, 30), flags=["auto_reply"])]
    timers = {x.name: x for x in sla.evaluate(t, [], msgs, POLICY, cal, local(2025, 5, 6, 12), H)}
    nr = timers["next_response"]
    assert nr.started_at == local(2025, 5, 6, 9, 30) and nr.due_at == local(2025, 5, 6, 13, 30)
    # a survey message is not an answer; a real reply ends the cycle
    survey = message("m6", "out", local(2025, 5, 6, 11), meta={"kind": "csat_survey"})
    timers = {x.name for x in sla.evaluate(t, [], [*msgs, survey], POLICY, cal, local(2025, 5, 6, 12), H)}
    assert "next_response" in timers
    reply = message("m7", "out", local(2025, 5, 6, 11))
    timers = {x.name for x in sla.evaluate(t, [], [*msgs, reply], POLICY, cal, local(2025, 5, 6, 12), H)}
    assert "next_response" not in timers


async def test_a_breach_escalates_once(rt: Runtime) -> None:
    await add_user(rt, "jefa@gub.uy", role="supervisor", queues=["DNIC"])
    await add_user(rt, "otro@gub.uy", role="supervisor", queues=["BPS"])
    t = await ingest(rt, "ana@example.com", days_ago=30)  # well past every target, whatever the holidays
    await rt.store.update_ticket(t.id, TicketChanges(queue="DNIC"), "agent@gub.uy")
    fresh = await ingest(rt, "beto@example.com")  # just arrived: due in the future, no breach
    await drain(rt)
    for _ in range(3):  # checks, ticks and workers running again change nothing
        await sla.check_ticket(rt, t.id)
        await engine.tick(rt)
        await drain(rt)
    breaches = await rt.store.list_events(ticket_id=t.id, kinds=[sla.EV_BREACHED])
    assert sorted(e.data["timer"] for e in breaches) == ["first_response", "resolution"]
    assert all(e.data["to"] == ["jefa@gub.uy"] and e.actor == "system:sla" for e in breaches)
    notes = [d for _, d in await rt.store.list_docs("notifications")]
    assert sorted((n["to"], n["timer"]) for n in notes) == [("jefa@gub.uy", "first_response"),
                                                            ("jefa@gub.uy", "resolution")]
    t = await rt.store.get_ticket(t.id)
    assert t.meta["sla_breached"] is True and t.meta["sla_policy"] == "normal"
    assert datetime.fromisoformat(t.meta["sla_due_at"]) < utcnow()
    fresh = await rt.store.get_ticket(fresh.id)
    assert "sla_breached" not in fresh.meta
    assert datetime.fromisoformat(fresh.meta["sla_due_at"]) > utcnow()
    # the next check of the fresh ticket is a job waiting for its warning time
    waiting = [j for j in await rt.store.list_jobs(status="ready", kind="sla_check")
               if j.payload["ticket_id"] == fresh.id]
    assert waiting and all(j.not_before > utcnow() for j in waiting)
    # a reply stops the first-response timer but the old breach is not notified again
    await queue_reply(rt, t, "Respuesta", "agent@gub.uy")
    await engine.tick(rt)
    await drain(rt)
    assert len(await rt.store.list_events(ticket_id=t.id, kinds=[sla.EV_BREACHED])) == 2


async def test_pending_ticket_does_not_breach(rt: Runtime) -> None:
    t = await ingest(rt, "ana@example.com", days_ago=0.0001)
    await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.PENDING), "agent@gub.uy")
    timers = await sla.check_ticket(rt, t.id, now=utcnow() + timedelta(days=30))
    assert timers and all(x.paused or not x.active for x in timers)
    await drain(rt, kinds=["sla_notify"])
    assert await rt.store.list_events(ticket_id=t.id, kinds=[sla.EV_BREACHED]) == []
