"""Routes of the agents' UI and the public contact form, and the small caches they share."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from inbox.domain import Contact, Ticket
from web import auth
from web.keys import RUNTIME, UI
from workers.runtime import Runtime

ACTIVE_STATUSES = ["new", "open", "pending"]


@dataclass
class UIState:
    rt: Runtime
    contacts: OrderedDict[str, tuple[float, Contact | None]] = field(default_factory=OrderedDict)
    counts: dict[Any, tuple[float, int]] = field(default_factory=dict)
    inflight: dict[Any, asyncio.Future[int]] = field(default_factory=dict)
    users_cache: tuple[float, list[dict[str, Any]]] | None = None

    async def contact(self, contact_id: str, ttl: float = 30.0) -> Contact | None:
        hit = self.contacts.get(contact_id)
        now = time.monotonic()
        if hit and now - hit[0] < ttl:
            return hit[1]
        contact = await self.rt.store.get_contact(contact_id)
        self.contacts[contact_id] = (now, contact)
        self.contacts.move_to_end(contact_id)
        while len(self.contacts) > 20_000:
            self.contacts.popitem(last=False)
        return contact

    def forget_contact(self, *contact_ids: str) -> None:
        for cid in contact_ids:
            self.contacts.pop(cid, None)

    async def users(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self.users_cache and now - self.users_cache[0] < 5:
            return self.users_cache[1]
        docs = [{k: v for k, v in d.items() if k != "password_hash"} for _, d in
                await self.rt.store.list_docs("users")]
        users = sorted((d for d in docs if d.get("active", True)), key=lambda d: (d.get("name") or d["email"]).lower())
        self.users_cache = (now, users)
        return users

    async def count(self, key: Any, compute: Callable[[], Awaitable[int]], ttl: float = 10.0) -> int:
        """A count cached ``ttl`` seconds; concurrent askers share one computation."""
        now = time.monotonic()
        hit = self.counts.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
        fut = self.inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(compute())
            self.inflight[key] = fut
            try:
                value = await fut
            finally:
                self.inflight.pop(key, None)
            self.counts[key] = (time.monotonic(), value)
            if len(self.counts) > 5000:
                self.counts.clear()
            return value
        return await asyncio.shield(fut)


def contact_label(contact: Contact | None) -> str:
    if contact is None:
        return "—"
    if contact.name:
        return contact.name
    if contact.identities:
        ident = contact.identities[0]
        return ident.handle or ident.display_name or ident.value
    return contact.id


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/inbox")


def setup_views(app: web.Application, rt: Runtime) -> None:
    from web import contact_form, contacts_view, inbox_view, ticket_view

    app[UI] = UIState(rt)
    app.router.add_get("/", root)
    inbox_view.setup(app)
    ticket_view.setup(app)
    contacts_view.setup(app)
    contact_form.setup(app)


async def ticket_from_path(request: web.Request) -> Ticket:
    """The ticket named by the route's ``{number}``; 404 when there is none."""
    return await ticket_by_number(request, request.match_info["number"])


async def ticket_by_number(
    request: web.Request, number: str, invalid: type[web.HTTPException] = web.HTTPNotFound
) -> Ticket:
    """The ticket whose number is the text ``number``; ``invalid`` when that is no number, 404 when there is none."""
    try:
        value = int(number)
    except ValueError:
        raise invalid() from None
    ticket = await request.app[RUNTIME].store.get_ticket_by_number(value)
    if ticket is None:
        raise web.HTTPNotFound()
    return ticket


async def agent_form(request: web.Request) -> tuple[dict[str, Any], MultiDictProxy[Any]]:
    """The signed-in agent and the fields of the form they posted (the handler requires a role)."""
    user = auth.current_user(request)
    assert user is not None
    return user, await request.post()
