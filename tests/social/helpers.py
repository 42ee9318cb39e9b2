"""Read-back helpers for the social tests (store queries only)."""

from __future__ import annotations

from inbox.domain import Message, Ticket, TicketFilter
from workers.runtime import Runtime


async def tickets(rt: Runtime, channel: str | None = None) -> list[Ticket]:
    page = await rt.store.list_tickets(TicketFilter(channel=channel), sort="number", limit=200)
    return sorted(page.items, key=lambda t: t.number)


async def messages(rt: Runtime, channel: str | None = None) -> list[Message]:
    out: list[Message] = []
    for t in await tickets(rt, channel):
        out.extend(await rt.store.list_messages(t.id))
    return out


async def inbound_by_external_id(rt: Runtime, channel: str | None = None) -> dict[str, Message]:
    found: dict[str, Message] = {}
    for m in await messages(rt, channel):
        if m.direction == "in":
            assert m.external_id not in found, f"{m.external_id} stored twice"
            found[m.external_id or ""] = m
    return found


async def ticket_of(rt: Runtime, channel: str, external_id: str) -> Ticket:
    ticket_id = await rt.store.find_ticket_by_external_ids(channel, [external_id])
    assert ticket_id is not None, f"no ticket holds {channel} message {external_id}"
    ticket = await rt.store.get_ticket(ticket_id)
    assert ticket is not None
    return ticket


async def health(rt: Runtime, channel: str, account: str) -> dict | None:
    return await rt.store.get_doc("channel_health", f"{channel}:{account}")
