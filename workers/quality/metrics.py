"""Prometheus metrics read from the store at each scrape (a custom collector over a snapshot; nothing is kept in process
memory, so every web process answers the same).

Counters come from the event log, tallied incrementally: the tallies and the last event seq counted are kept in the
``quality_state/metrics`` document, so a scrape only reads the events since the previous one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inbox.domain import EventKind, TicketFilter, TicketStatus
from workers.quality.csat import EV_ANSWERED, EV_SENT
from workers.quality.sla import EV_BREACHED, EV_WARNING

if TYPE_CHECKING:
    from workers.runtime import Runtime

STATE = ("quality_state", "metrics")
COUNTED = [EventKind.MESSAGE_ADDED, EventKind.REPLY_SENT, EventKind.REPLY_FAILED, EventKind.QUARANTINED,
           EV_BREACHED, EV_WARNING, EV_SENT, EV_ANSWERED]
BATCH = 5000
MAX_PER_SCRAPE = 200_000


@dataclass
class Snapshot:
    tallies: dict[str, Any]
    jobs: dict[str, dict[str, int]]
    tickets: dict[str, int]
    health: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


def _bump(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


async def update_tallies(rt: Runtime) -> dict[str, Any]:
    lock = rt.services.setdefault("quality.metrics_lock", asyncio.Lock())
    async with lock:
        state = await rt.store.get_doc(*STATE) or {}
        seq = int(state.get("seq", 0))
        t: dict[str, Any] = {k: dict(state.get(k, {})) for k in
                             ("ingested", "sent", "failed", "quarantined", "sla_breaches", "sla_warnings", "csat")}
        read = 0
        while read < MAX_PER_SCRAPE:
            events = await rt.store.list_events(after_seq=seq, limit=BATCH, kinds=[str(k) for k in COUNTED])
            for e in events:
                seq = e.seq
                d = e.data
                if e.kind == EventKind.MESSAGE_ADDED and d.get("direction") == "in":
                    _bump(t["ingested"], d.get("channel") or "unknown")
                elif e.kind == EventKind.REPLY_SENT:
                    _bump(t["sent"], "all")
                elif e.kind == EventKind.REPLY_FAILED:
                    _bump(t["failed"], "all")
                elif e.kind == EventKind.QUARANTINED:
                    _bump(t["quarantined"], d.get("channel") or "unknown")
                elif e.kind == EV_BREACHED:
                    _bump(t["sla_breaches"], f"{d.get('queue') or ''}\x1f{d.get('timer') or ''}")
                elif e.kind == EV_WARNING:
                    _bump(t["sla_warnings"], f"{d.get('queue') or ''}\x1f{d.get('timer') or ''}")
                elif e.kind == EV_SENT:
                    _bump(t["csat"], "sent")
                elif e.kind == EV_ANSWERED:
                    _bump(t["csat"], f"rating_{d.get('rating')}")
            read += len(events)
            if len(events) < BATCH:
                break
        if seq != int(state.get("seq", 0)):
            await rt.store.put_doc(*STATE, {"seq": seq, **t})
        return t


async def snapshot(rt: Runtime) -> Snapshot:
    from inbox.health import channel_health

    tallies = await update_tallies(rt)
    tickets = {str(s): await rt.store.count_tickets(TicketFilter(status=[str(s)])) for s in TicketStatus}
    breached_open = await _count_open_breached(rt)
    return Snapshot(tallies, await rt.store.job_counts(), tickets, await channel_health(rt.store),
                    {"sla_breached_open": breached_open})


async def _count_open_breached(rt: Runtime) -> int:
    n = 0
    cursor = None
    flt = TicketFilter(status=[TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING])
    while True:
        page = await rt.store.list_tickets(flt, cursor=cursor, limit=1000)
        n += sum(1 for t in page.items if t.meta.get("sla_breached"))
        cursor = page.next_cursor
        if cursor is None:
            return n


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot):
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        c = CounterMetricFamily("inbox_messages_ingested", "Inbound messages stored, per channel", labels=["channel"])
        for ch, n in sorted(s.tallies["ingested"].items()):
            c.add_metric([ch], n)
        yield c
        c = CounterMetricFamily("inbox_ingest_quarantined", "Inputs that could not be parsed", labels=["channel"])
        for ch, n in sorted(s.tallies["quarantined"].items()):
            c.add_metric([ch], n)
        yield c
        yield CounterMetricFamily("inbox_replies_sent", "Outgoing messages delivered", value=s.tallies["sent"].get(
            "all", 0))
        yield CounterMetricFamily("inbox_replies_failed", "Outgoing messages that failed for good",
                                  value=s.tallies["failed"].get("all", 0))
        depth = GaugeMetricFamily("inbox_job_queue_depth", "Jobs waiting or running, per kind", labels=["kind"])
        jobs = GaugeMetricFamily("inbox_jobs", "Jobs per kind and status", labels=["kind", "status"])
        dead = GaugeMetricFamily("inbox_jobs_dead", "Dead-lettered jobs (failed for good), per kind", labels=["kind"])
        for kind, by in sorted(s.jobs.items()):
            depth.add_metric([kind], by.get("ready", 0) + by.get("running", 0))
            dead.add_metric([kind], by.get("dead", 0))
            for status, n in sorted(by.items()):
                jobs.add_metric([kind, status], n)
        yield depth
        yield jobs
        yield dead
        g = GaugeMetricFamily("inbox_tickets", "Tickets per status", labels=["status"])
        for status, n in s.tickets.items():
            g.add_metric([status], n)
        yield g
        for name, key, help_ in (("inbox_sla_breaches", "sla_breaches", "SLA targets breached (escalated)"),
                                 ("inbox_sla_warnings", "sla_warnings", "SLA warnings before a breach")):
            c = CounterMetricFamily(name, help_, labels=["queue", "timer"])
            for k, n in sorted(s.tallies[key].items()):
                queue, _, timer = k.partition("\x1f")
                c.add_metric([queue, timer], n)
            yield c
        yield GaugeMetricFamily("inbox_sla_breached_open_tickets", "Unresolved tickets that breached an SLA target",
                                value=s.extra.get("sla_breached_open", 0))
        c = CounterMetricFamily("inbox_csat_surveys_sent", "Satisfaction surveys sent",
                                value=s.tallies["csat"].get("sent", 0))
        yield c
        c = CounterMetricFamily("inbox_csat_answers", "Satisfaction survey answers, per rating", labels=["rating"])
        for i in range(1, 6):
            c.add_metric([str(i)], s.tallies["csat"].get(f"rating_{i}", 0))
        yield c
        up = GaugeMetricFamily("inbox_channel_up", "1 when the channel account works, 0 when it reports an error",
                               labels=["channel", "account"])
        for h in s.health:
            up.add_metric([h.get("channel", ""), h.get("account", "")], 1 if h.get("status") == "ok" else 0)
        yield up


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)
