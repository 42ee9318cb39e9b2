"""Queues and automatic assignment: fairness over 1,000 tickets and 7 agents with capacities, presence, offline
reassignment, and every change recorded as an event."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from inbox.domain import EventKind, TicketFilter, TicketStatus, utcnow
from inbox.store.base import TicketChanges
from tests.conftest import make_settings
from tests.quality.conftest import add_user, drain, ingest, set_presence
from workers.quality import assignment, engine
from workers.runtime import close_runtime, open_runtime

CAPACITIES = {"a1@gub.uy": 40, "a2@gub.uy": 60, "a3@gub.uy": 100, "a4@gub.uy": 150, "a5@gub.uy": 200,
              "a6@gub.uy": 200, "a7@gub.uy": 250}  # 1,000 in all


async def runtime(tmp_path, strategy: str):
    return await open_runtime(make_settings(tmp_path / "data", **{
        "assignment.strategy": strategy, "assignment.default_queue": "DNIC", "assignment.wait_for_triage_s": 0}))


async def many_tickets(rt, n: int) -> list[str]:
    return [(await ingest(rt, f"p{i}@example.com", text=f"consulta {i}")).id for i in range(n)]


async def test_round_robin_is_fair_and_respects_capacities(tmp_path) -> None:
    rt = await runtime(tmp_path, "round_robin")
    try:
        for email, cap in CAPACITIES.items():
            await add_user(rt, email, queues=["DNIC"], capacity=cap)
        await add_user(rt, "otra-cola@gub.uy", queues=["BPS"], capacity=1000)
        await add_user(rt, "desconectada@gub.uy", queues=["DNIC"], capacity=1000, online=False)
        await add_user(rt, "jefe@gub.uy", role="supervisor", queues=["DNIC"], capacity=1000)
        ids = await many_tickets(rt, 1010)
        given: Counter[str] = Counter()
        for tid in ids[:1000]:
            agent = await assignment.assign_ticket(rt, tid)
            assert agent is not None
            given[agent] += 1
            # fairness: agents with room never differ by more than one ticket
            open_counts = [given[a] for a, cap in CAPACITIES.items() if given[a] < cap]
            if open_counts:
                assert max(open_counts) - min(open_counts) <= 1
        assert dict(given) == CAPACITIES  # everyone filled exactly to capacity, nobody beyond
        # everyone is full: the rest wait in the queue
        assert await assignment.assign_ticket(rt, ids[1000]) is None
        assert (await rt.store.get_ticket(ids[1000])).assignee is None
        # recorded as events by the assignment actor, and the queue was set on the ticket
        events = await rt.store.list_events(kinds=[EventKind.ASSIGNED], limit=5000)
        assert len(events) == 1000 and {e.actor for e in events} == {"system:assignment"}
        assert await rt.store.count_tickets(TicketFilter(queue="DNIC")) == 1000
        # a resolved ticket frees a place
        t = await rt.store.get_ticket(ids[0])
        await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), t.assignee)
        assert await assignment.assign_ticket(rt, ids[1000]) == t.assignee
    finally:
        await close_runtime(rt)


async def test_least_loaded_with_resolutions(tmp_path) -> None:
    rt = await runtime(tmp_path, "least_loaded")
    try:
        caps = dict(zip(sorted(CAPACITIES), [3, 5, 8, 8, 10, 12, 20], strict=True))
        for email, cap in caps.items():
            await add_user(rt, email, queues=["DNIC", "BPS"], capacity=cap)
        ids = await many_tickets(rt, 1000)
        rnd = random.Random(3)
        load: Counter[str] = Counter()
        open_by: dict[str, list[str]] = {a: [] for a in caps}
        total: Counter[str] = Counter()
        for tid in ids:
            available = {a: load[a] for a in caps if load[a] < caps[a]}
            agent = await assignment.assign_ticket(rt, tid)
            if not available:
                assert agent is None
            else:
                assert agent in available and load[agent] == min(available.values())
                load[agent] += 1
                total[agent] += 1
                open_by[agent].append(tid)
            assert all(load[a] <= caps[a] for a in caps)
            if rnd.random() < 0.8:  # agents resolve tickets at random
                busy = [a for a in caps if open_by[a]]
                a = rnd.choice(busy)
                done = open_by[a].pop(rnd.randrange(len(open_by[a])))
                await rt.store.update_ticket(done, TicketChanges(status=TicketStatus.RESOLVED), a)
                load[a] -= 1
        # the store agrees with the simulation
        for a in caps:
            assert await rt.store.count_tickets(TicketFilter(assignee=a, status=["new", "open", "pending"])) == load[a]
        # work was spread: every agent got a share
        assert min(total.values()) > 50
    finally:
        await close_runtime(rt)


async def test_new_tickets_are_assigned_by_jobs_after_triage(rt) -> None:
    await add_user(rt, "a@gub.uy", queues=["DNIC"])
    await add_user(rt, "b@gub.uy", queues=["BPS"])
    t = await ingest(rt, "ana@example.com")
    await drain(rt)
    assert (await rt.store.get_ticket(t.id)).assignee is None  # waiting for triage (no queue yet)
    await rt.store.update_ticket(t.id, TicketChanges(queue="BPS"), "system:triage")  # triage sets the queue
    await engine.tick(rt)
    await drain(rt)
    t = await rt.store.get_ticket(t.id)
    assert t.assignee == "b@gub.uy" and t.meta["auto_assigned"] == "b@gub.uy"
    # an agent moves it to another agency: the auto-assignment follows the queue
    await rt.store.update_ticket(t.id, TicketChanges(queue="DNIC"), "b@gub.uy")
    await engine.tick(rt)
    await drain(rt)
    t = await rt.store.get_ticket(t.id)
    assert t.assignee == "a@gub.uy"
    moved = await rt.store.list_events(ticket_id=t.id, kinds=["ticket.reassigned"])
    assert [e.data["reason"] for e in moved] == ["queue_changed"]


async def test_channel_queue_for_tickets_without_agency(tmp_path) -> None:
    rt = await open_runtime(make_settings(tmp_path / "data", **{"assignment.channel_queues": {"x": "Redes"},
                                                                "assignment.wait_for_triage_s": 0}))
    try:
        await add_user(rt, "redes@gub.uy", queues=["Redes"])
        t = await ingest(rt, "12345", channel="x", name="@ana")
        assert await assignment.assign_ticket(rt, t.id) == "redes@gub.uy"
        assert (await rt.store.get_ticket(t.id)).queue == "Redes"
        e = await ingest(rt, "ana@example.com")
        assert await assignment.assign_ticket(rt, e.id) is None  # e-mail has no channel queue: waits for triage
    finally:
        await close_runtime(rt)


@pytest.mark.parametrize("minutes_offline, moved", [(3, False), (30, True)])
async def test_reassignment_when_an_agent_goes_offline(rt, minutes_offline: int, moved: bool) -> None:
    await add_user(rt, "a@gub.uy", queues=["DNIC"])
    await add_user(rt, "b@gub.uy", queues=["DNIC"])
    tickets = []
    for i in range(4):
        t = await ingest(rt, f"p{i}@example.com")
        await rt.store.update_ticket(t.id, TicketChanges(queue="DNIC", assignee="a@gub.uy"), "a@gub.uy")
        tickets.append(t.id)
    await rt.store.update_ticket(tickets[3], TicketChanges(status=TicketStatus.PENDING), "a@gub.uy")
    await set_presence(rt, "a@gub.uy", False, utcnow() - timedelta(minutes=minutes_offline))
    n = await assignment.reassign_offline(rt)
    owners = [(await rt.store.get_ticket(tid)).assignee for tid in tickets]
    if not moved:  # within the grace period (10 minutes): nothing moves
        assert n == 0 and set(owners) == {"a@gub.uy"}
        return
    assert n == 3 and owners == ["b@gub.uy"] * 3 + ["a@gub.uy"]  # the pending one waits on the citizen
    ev = await rt.store.list_events(ticket_id=tickets[0], kinds=[EventKind.ASSIGNED, "ticket.reassigned"])
    assert [(e.kind, e.data.get("from"), e.data.get("to")) for e in ev][-2:] == [
        (EventKind.ASSIGNED, "a@gub.uy", "b@gub.uy"), ("ticket.reassigned", "a@gub.uy", "b@gub.uy")]
    # nobody left online: tickets go back to the queue (unassigned)
    await set_presence(rt, "b@gub.uy", True, utcnow() - timedelta(hours=2))  # stale "online" counts as offline
    assert await assignment.reassign_offline(rt) == 3
    assert {(await rt.store.get_ticket(tid)).assignee for tid in tickets[:3]} == {None}


async def test_the_job_worker_alone_drives_everything(tmp_path) -> None:
    """Only `run_jobs` (what `inbox serve` runs by default): the ingest planner starts the tick chain; ticks assign,
    notice the resolution and send the survey; SLA checks run."""
    import asyncio

    from workers.jobs import run_jobs
    from workers.outbox import queue_reply

    rt = await open_runtime(make_settings(tmp_path / "data", **{
        "assignment.sweep_interval_s": 1, "assignment.wait_for_triage_s": 0, "assignment.default_queue": "DNIC",
        "csat.delay_s": 0, "workers.poll_interval_s": 0.05}))
    sent = []

    class Sender:
        channel = "email"

        def reply_warning(self, ticket, thread):
            return None

        async def send(self, ticket, message, thread):
            sent.append(message)
            return f"id-{len(sent)}"

    rt.channels["email"] = Sender()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_jobs(rt, stop=stop, concurrency=2))

    async def until(predicate, timeout: float = 10.0):
        for _ in range(int(timeout / 0.1)):
            if await predicate():
                return True
            await asyncio.sleep(0.1)
        raise AssertionError("timed out")

    try:
        await add_user(rt, "a@gub.uy", queues=["DNIC"])
        t = await ingest(rt, "ana@example.com")

        async def assigned():
            return (await rt.store.get_ticket(t.id)).assignee == "a@gub.uy"

        await until(assigned, timeout=30)

        async def sla_stamped():  # the SLA check is its own job: it may run after the assignment
            return (await rt.store.get_ticket(t.id)).meta.get("sla_policy") == "normal"

        await until(sla_stamped, timeout=30)
        await queue_reply(rt, t, "Respuesta", "a@gub.uy")
        await rt.store.update_ticket(t.id, TicketChanges(status=TicketStatus.RESOLVED), "a@gub.uy")

        async def surveyed():
            return any(m.meta.get("kind") == "csat_survey" for m in sent)

        await until(surveyed)
        assert len(sent) == 2
    finally:
        stop.set()
        # a stop lets running jobs finish; the first triage job trains the cold-start model (seconds of CPU)
        await asyncio.wait_for(worker, 60)
        await close_runtime(rt)
