"""Live updates: one background task per app polls the event log (``Store.list_events``) about every 0.5 s and fans
each event out to the open pages over Server-Sent Events (``GET /live``); presence (who is viewing a ticket, who is
typing a reply) is tracked here too and published on the same stream.

Presence is shared between the pages served by this process and mirrored into the ``presence`` documents
(``{online, last_seen, viewing, typing}``) for other readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inbox.domain import utcnow
from inbox.store.base import Store
from web import auth
from web.keys import HUB
from web.views import ticket_by_number, ticket_from_path
from workers.runtime import Runtime

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
DISCONNECT_CHECK_S = 1.0
QUEUE_MAX = 500
TYPING_TTL_S = 20.0  # a "typing" flag not refreshed for this long is dropped


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any] | None]
    ticket_id: str | None = None  # a ticket page only gets that ticket's events (and its presence)
    overflowed: bool = False


@dataclass
class Viewer:
    email: str
    name: str
    connections: int = 0
    typing_at: float | None = None

    @property
    def typing(self) -> bool:
        return self.typing_at is not None and time.monotonic() - self.typing_at < TYPING_TTL_S


@dataclass
class Hub:
    store: Store
    interval_s: float = 0.5
    last_seq: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)
    viewers: dict[str, dict[str, Viewer]] = field(default_factory=dict)  # ticket id -> email -> viewer
    task: asyncio.Task[None] | None = None
    closing: bool = False

    # -- event log -------------------------------------------------------------------------------------------------
    async def latest_seq(self) -> int:
        """The newest event's sequence number, found with O(log n) one-row reads (the Store has no max())."""
        probe = 1
        while await self.store.list_events(after_seq=probe, limit=1):
            probe *= 2
        lo, hi = probe // 2, probe  # events exist after lo (or lo == 0); none after hi
        if lo == 0 and not await self.store.list_events(after_seq=0, limit=1):
            return 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self.store.list_events(after_seq=mid, limit=1):
                lo = mid
            else:
                hi = mid
        return hi if await self.store.list_events(after_seq=lo, limit=1) else lo

    async def start(self) -> None:
        self.last_seq = await self.latest_seq()
        self.task = asyncio.create_task(self._poll(), name="web-live-hub")

    async def _poll(self) -> None:
        while not self.closing:
            try:
                events = await self.store.list_events(after_seq=self.last_seq, limit=500)
            except Exception:  # noqa: BLE001 - the hub must outlive a store hiccup
                log.exception("live hub: cannot read the event log")
                events = []
            for ev in events:
                self.last_seq = max(self.last_seq, ev.seq)
                self.publish({"type": "event", "seq": ev.seq, "kind": str(ev.kind), "ticket_id": ev.ticket_id,
                              "number": ev.data.get("number"), "channel": ev.data.get("channel"),
                              "direction": ev.data.get("direction")}, ev.ticket_id)
            self._expire_typing()
            if len(events) < 500:
                await asyncio.sleep(self.interval_s)

    def publish(self, payload: dict[str, Any], ticket_id: str | None) -> None:
        for sub in list(self.subscribers):
            if sub.ticket_id is not None and sub.ticket_id != ticket_id:
                continue
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(payload)
            except asyncio.QueueFull:  # a stalled client: tell it to reload instead of buffering forever
                sub.overflowed = True

    async def close(self) -> None:
        self.closing = True
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    # -- presence --------------------------------------------------------------------------------------------------
    def presence_of(self, ticket_id: str) -> list[dict[str, Any]]:
        return [{"email": v.email, "name": v.name, "typing": v.typing}
                for v in sorted(self.viewers.get(ticket_id, {}).values(), key=lambda v: v.name)]

    def _publish_presence(self, ticket_id: str) -> None:
        self.publish({"type": "presence", "ticket_id": ticket_id, "viewers": self.presence_of(ticket_id)}, ticket_id)

    async def _save_presence(self, email: str, viewing: str | None, typing: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.store.put_doc("presence", email, {"online": True, "last_seen": utcnow().isoformat(),
                                                          "viewing": viewing, "typing": typing})

    async def join(self, ticket_id: str, number: int, user: dict[str, Any]) -> None:
        viewers = self.viewers.setdefault(ticket_id, {})
        v = viewers.get(user["email"])
        if v is None:
            v = viewers[user["email"]] = Viewer(user["email"], user.get("name") or user["email"])
        v.connections += 1
        self._publish_presence(ticket_id)
        await self._save_presence(user["email"], str(number), None)

    async def leave(self, ticket_id: str, user: dict[str, Any]) -> None:
        viewers = self.viewers.get(ticket_id, {})
        v = viewers.get(user["email"])
        if v is not None:
            v.connections -= 1
            if v.connections <= 0:
                viewers.pop(user["email"], None)
        if not viewers:
            self.viewers.pop(ticket_id, None)
        self._publish_presence(ticket_id)
        await self._save_presence(user["email"], None, None)

    async def set_typing(self, ticket_id: str, number: int, user: dict[str, Any], typing: bool) -> None:
        v = self.viewers.get(ticket_id, {}).get(user["email"])
        if v is None:
            return
        was = v.typing
        v.typing_at = time.monotonic() if typing else None
        if was != typing:
            self._publish_presence(ticket_id)
            await self._save_presence(user["email"], str(number), str(number) if typing else None)

    def _expire_typing(self) -> None:
        for ticket_id, viewers in list(self.viewers.items()):
            if any(v.typing_at is not None and not v.typing for v in viewers.values()):
                for v in viewers.values():
                    if v.typing_at is not None and not v.typing:
                        v.typing_at = None
                self._publish_presence(ticket_id)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


@auth.require_role("agent")
async def live_stream(request: web.Request) -> web.StreamResponse:
    """``GET /live`` (all ticket events, for the inbox) or ``GET /live?ticket=NUMBER`` (one ticket + presence)."""
    hub: Hub = request.app[HUB]
    user = auth.current_user(request)
    assert user is not None
    ticket_id = None
    number = 0
    if request.query.get("ticket"):
        ticket = await ticket_by_number(request, request.query["ticket"], invalid=web.HTTPBadRequest)
        ticket_id, number = ticket.id, ticket.number
    sub = Subscriber(asyncio.Queue(QUEUE_MAX), ticket_id)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    hub.subscribers.add(sub)
    try:
        await response.write(b"retry: 2000\n" + _sse({"type": "hello", "seq": hub.last_seq}))
        if ticket_id is not None:
            await hub.join(ticket_id, number, user)
        idle = 0.0
        while not hub.closing:
            try:
                item = await asyncio.wait_for(sub.queue.get(), DISCONNECT_CHECK_S)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():  # the page went away: leave at once
                    break
                idle += DISCONNECT_CHECK_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    await response.write(b": keepalive\n\n")
                continue
            idle = 0.0
            if item is None:
                break
            await response.write(_sse(item))
            if sub.overflowed and sub.queue.empty():
                await response.write(_sse({"type": "reload"}))
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.subscribers.discard(sub)
        if ticket_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(hub.leave(ticket_id, user))
    return response


@auth.require_role("agent")
async def typing(request: web.Request) -> web.Response:
    """``POST /tickets/{number}/typing`` with ``typing=1|0`` (fetch, CSRF header)."""
    hub: Hub = request.app[HUB]
    user = auth.current_user(request)
    assert user is not None
    ticket = await ticket_from_path(request)
    form = await request.post()
    await hub.set_typing(ticket.id, ticket.number, user, form.get("typing") == "1")
    return web.json_response({"viewers": hub.presence_of(ticket.id)})


def setup_live(app: web.Application, rt: Runtime) -> None:
    hub = Hub(rt.store)
    app[HUB] = hub

    async def on_startup(app: web.Application) -> None:
        await hub.start()

    async def on_shutdown(app: web.Application) -> None:
        await hub.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/live", live_stream)
    app.router.add_post("/tickets/{number}/typing", typing)
