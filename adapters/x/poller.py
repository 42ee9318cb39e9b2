"""The X poller: mentions (``since_id`` cursor) and DM events (newest-id cursor) into the ingest pipeline.

One poll fetches every page of new items first, then ingests them oldest first (a conversation's root opens the
ticket, replies join it) and only then writes the cursor. A crash or restart anywhere before the cursor write makes
the next poll fetch the same set again; ingest dedupes on (channel, account, external id), so nothing is lost and
nothing is stored twice. When a later page cannot be fetched, the pages already fetched are still ingested (without
moving the cursor), so one failing page does not hold back everything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters.x.client import XApi, XAuthError, XError, XForbidden, XRateLimited
from adapters.x.parse import dm_to_inbound, index_tweets, index_users, is_retweet, mention_to_inbound, snowflake
from adapters.x.settings import XSettings
from inbox.domain import InboundMessage, utcnow
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

CURSORS = "cursors"
MENTION_FIELDS = ["created_at", "conversation_id", "in_reply_to_user_id", "referenced_tweets", "entities", "lang",
                  "author_id"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id", "attachments"]


class PollStopped(Exception):
    """The stop event was set while waiting for a rate-limit window."""


@dataclass
class PollResult:
    ingested: int = 0
    duplicates: int = 0
    skipped_own: int = 0
    errors: list[str] = field(default_factory=list)


async def sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep; True when ``stop`` was set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class XPoller:
    def __init__(self, rt: Runtime, api: XApi):
        self.rt = rt
        self.api = api

    @property
    def cfg(self) -> XSettings:
        return self.rt.settings.x

    @property
    def account(self) -> str:
        return self.cfg.user_id

    def cursor_key(self, kind: str) -> str:
        return f"x:{self.account}:{kind}"

    async def _call(self, stop: asyncio.Event | None, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call; a 429 waits until ``x-rate-limit-reset`` (or the stop event) and tries again."""
        while True:
            try:
                return await self.api.call(method, *args, **kwargs)
            except XRateLimited as exc:
                wait = exc.wait_s(self.cfg.rate_limit_margin_s)
                until = datetime.fromtimestamp(exc.reset_at, UTC).isoformat() if exc.reset_at else "?"
                log.warning("X rate limit on %s; waiting %.1f s (reset %s)", method, wait, until)
                await report_health(self.rt.store, "x", self.account, False,
                                    f"Límite de uso de X alcanzado ({method}); se reintenta después de {until}")
                if await sleep_or_stop(stop, wait):
                    raise PollStopped() from None

    async def poll_once(self, stop: asyncio.Event | None = None) -> PollResult:
        result = PollResult()
        if not self.account:
            result.errors.append("x.user_id no está configurado")
        elif not self.cfg.has_credentials:
            result.errors.append("faltan las credenciales de X (INBOX_X__BEARER_TOKEN o OAuth 1.0a)")
        else:
            parts = [("mentions", self.poll_mentions)] if self.cfg.poll_mentions else []
            parts += [("dms", self.poll_dms)] if self.cfg.poll_dms else []
            for name, poll in parts:
                try:
                    await poll(stop, result)
                except XAuthError as exc:
                    result.errors.append(f"X rechazó las credenciales ({name}): {exc.detail}")
                except XForbidden as exc:
                    result.errors.append(f"X no permite leer {name}: {exc.detail}")
                except XError as exc:
                    log.warning("X %s poll failed: %s", name, exc.detail)
                    result.errors.append(f"{name}: {exc.detail}")
        ok = not result.errors
        await report_health(self.rt.store, "x", self.account or "?", ok, "; ".join(result.errors))
        return result

    async def _ingest(self, items: list[InboundMessage], result: PollResult) -> None:
        for inbound in sorted(items, key=lambda m: snowflake(m.external_id)):
            outcome = await self.rt.pipeline.ingest(inbound)
            if outcome.status == "duplicate":
                result.duplicates += 1
            elif outcome.status == "ingested":
                result.ingested += 1

    # -- mentions ------------------------------------------------------------------------------------------------
    async def poll_mentions(self, stop: asyncio.Event | None, result: PollResult) -> None:
        key = self.cursor_key("mentions")
        cursor = await self.rt.store.get_doc(CURSORS, key) or {}
        since_id = cursor.get("since_id")
        items: list[InboundMessage] = []
        newest = snowflake(since_id)
        token: str | None = None
        try:
            for _ in range(self.cfg.max_pages):
                params: dict[str, Any] = {
                    "max_results": self.cfg.page_size,
                    "expansions": ["author_id", "referenced_tweets.id"],
                    "tweet_fields": MENTION_FIELDS,
                    "user_fields": ["username", "name"],
                }
                if since_id:
                    params["since_id"] = since_id
                if token:
                    params["pagination_token"] = token
                body = await self._call(stop, "get_users_mentions", self.account, **params)
                users, tweets = index_users(body), index_tweets(body)
                for tweet in body.get("data") or []:
                    newest = max(newest, snowflake(tweet.get("id")))
                    if str(tweet.get("author_id")) == self.account:
                        result.skipped_own += 1
                        continue
                    if is_retweet(tweet):  # a retweet of a mention says nothing new to answer
                        continue
                    items.append(mention_to_inbound(tweet, users, tweets, self.account))
                newest = max(newest, snowflake((body.get("meta") or {}).get("newest_id")))
                token = (body.get("meta") or {}).get("next_token")
                if not token:
                    break
            else:
                log.warning("X mentions: more than %d pages; the rest comes on the next polls", self.cfg.max_pages)
        except (XError, PollStopped):
            await self._ingest(items, result)  # what was fetched still goes in; the cursor stays put
            raise
        await self._ingest(items, result)
        if newest and newest > snowflake(since_id):
            await self.rt.store.put_doc(CURSORS, key, {"since_id": str(newest), "at": utcnow().isoformat()})

    # -- direct messages -----------------------------------------------------------------------------------------
    async def poll_dms(self, stop: asyncio.Event | None, result: PollResult) -> None:
        """``/2/dm_events`` has no since_id: page from the newest until a page reaches the cursor."""
        key = self.cursor_key("dms")
        cursor = await self.rt.store.get_doc(CURSORS, key) or {}
        last = snowflake(cursor.get("newest_id"))
        items: list[InboundMessage] = []
        newest = last
        token: str | None = None
        try:
            for _ in range(self.cfg.max_pages):
                params: dict[str, Any] = {
                    "max_results": self.cfg.page_size,
                    "event_types": "MessageCreate",
                    "dm_event_fields": DM_FIELDS,
                    "expansions": ["sender_id"],
                    "user_fields": ["username", "name"],
                }
                if token:
                    params["pagination_token"] = token
                body = await self._call(stop, "get_direct_message_events", **params)
                users = index_users(body)
                reached = False
                for event in body.get("data") or []:
                    event_id = snowflake(event.get("id"))
                    if event_id <= last:
                        reached = True
                        continue
                    newest = max(newest, event_id)
                    if event.get("event_type", "MessageCreate") != "MessageCreate":
                        continue
                    if str(event.get("sender_id")) == self.account:
                        result.skipped_own += 1  # our own outgoing DM (sent from here or from X itself)
                        continue
                    items.append(dm_to_inbound(event, users, self.account))
                token = (body.get("meta") or {}).get("next_token")
                if reached or not token:
                    break
        except (XError, PollStopped):
            await self._ingest(items, result)
            raise
        await self._ingest(items, result)
        if newest > last:
            await self.rt.store.put_doc(CURSORS, key, {"newest_id": str(newest), "at": utcnow().isoformat()})


async def x_worker(rt: Runtime, stop: asyncio.Event) -> None:
    """``rt.workers["x"]``: poll until ``stop`` is set."""
    from adapters.x.plugin import api_for

    poller = XPoller(rt, api_for(rt))
    while not stop.is_set():
        try:
            res = await poller.poll_once(stop)
            if res.ingested:
                log.info("X: %d new, %d duplicates", res.ingested, res.duplicates)
        except PollStopped:
            return
        except Exception:  # keep polling; the cursor did not move, so the next poll repeats the work
            log.exception("X poll failed")
        if await sleep_or_stop(stop, rt.settings.x.poll_interval_s):
            return
