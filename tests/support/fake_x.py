"""A fake X API v2 server: a real aiohttp server on 127.0.0.1 that answers from tests/fixtures/twitter.

Served: ``GET /2/users/:id/mentions`` (page 1, then page 2 for page 1's ``next_token``; ``since_id`` filters),
``GET /2/dm_events`` (the fixture page, then an empty page for its ``next_token``), ``POST /2/tweets`` and
``POST /2/dm_conversations/with/:id/messages`` / ``/2/dm_conversations/:id/messages``. Every request is recorded
(method, path, query, JSON body, Authorization scheme, time). ``fail_once`` makes the next matching request answer a
fixture error (429 with ``x-rate-limit-reset`` a moment ahead, or 401); ``hold`` parks matching requests until an
event is set (to stop a poller mid-pagination).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twitter"
OUR_ID = "1590467210023456768"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    auth: str  # "Bearer", "OAuth" or ""
    at: float


@dataclass
class _Rule:
    match: Callable[[web.Request], bool]
    status: int | None = None
    reset_in: float | None = None
    event: asyncio.Event | None = None
    once: bool = True


@dataclass
class FakeX:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    extra_mentions: list[dict[str, Any]] = field(default_factory=list)  # newer than page 1, newest first
    resets: list[int] = field(default_factory=list)  # x-rate-limit-reset values of the 429s sent
    _runner: web.AppRunner | None = None
    _next_id: int = 1985900000000000000

    # -- control ---------------------------------------------------------------------------------------------------
    def fail_once(self, status: int, *, path_contains: str = "", reset_in: float = 2.0) -> None:
        self.rules.append(_Rule(lambda r: path_contains in r.path, status=status, reset_in=reset_in))

    def hold(self, match: Callable[[web.Request], bool]) -> asyncio.Event:
        event = asyncio.Event()
        self.rules.append(_Rule(match, event=event, once=False))
        return event

    def calls(self, method: str, path_contains: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    # -- server ----------------------------------------------------------------------------------------------------
    async def start(self) -> FakeX:
        app = web.Application()
        app.router.add_get("/2/users/{id}/mentions", self._mentions)
        app.router.add_get("/2/dm_events", self._dm_events)
        app.router.add_post("/2/tweets", self._create_tweet)
        app.router.add_post("/2/dm_conversations/with/{participant}/messages", self._send_dm)
        app.router.add_post("/2/dm_conversations/{conversation}/messages", self._send_dm)
        app.middlewares.append(self._middleware)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _headers(remaining: int = 449, reset: int | None = None) -> dict[str, str]:
        return {"x-rate-limit-limit": "450", "x-rate-limit-remaining": str(remaining),
                "x-rate-limit-reset": str(reset if reset is not None else int(time.time()) + 900)}

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        auth = request.headers.get("Authorization", "").split(" ", 1)[0]
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body, auth, time.time()))
        for rule in list(self.rules):
            if not rule.match(request):
                continue
            if rule.once:
                self.rules.remove(rule)
            if rule.event is not None:
                await rule.event.wait()
            if rule.status is not None:
                return self._error(rule.status, rule.reset_in)
        if auth not in ("Bearer", "OAuth"):
            return self._error(401, None)
        return await handler(request)

    def _error(self, status: int, reset_in: float | None) -> web.Response:
        if status == 429:
            meta = fixture("http_meta.json")["error_429.json"]["headers"]
            reset = int(time.time() + (reset_in or 1))
            self.resets.append(reset)
            headers = {**meta, "x-rate-limit-reset": str(reset)}
            return web.Response(status=429, body=fixture_bytes("error_429.json"), headers=headers,
                                content_type="application/json")
        if status == 401:
            return web.Response(status=401, body=fixture_bytes("error_401.json"), content_type="application/json")
        problem = {"title": "Service Unavailable", "type": "about:blank", "status": status, "detail": "fake"}
        return web.json_response(problem, status=status)

    def _json(self, body: Any, status: int = 200, raw: bytes | None = None) -> web.Response:
        data = raw if raw is not None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return web.Response(status=status, body=data, content_type="application/json", headers=self._headers())

    async def _mentions(self, request: web.Request) -> web.Response:
        q = request.query
        page1, page2 = fixture("users_mentions_page1.json"), fixture("users_mentions_page2.json")
        token = page1["meta"]["next_token"]
        since = int(q["since_id"]) if q.get("since_id") else None
        if q.get("pagination_token") == token:
            page, raw_name = page2, "users_mentions_page2.json"
        elif q.get("pagination_token"):
            return self._json({"meta": {"result_count": 0}})
        else:
            page, raw_name = page1, "users_mentions_page1.json"
            if self.extra_mentions:
                page = {**page, "data": [m["tweet"] for m in self.extra_mentions] + page["data"],
                        "includes": {**page["includes"],
                                     "users": [m["user"] for m in self.extra_mentions] + page["includes"]["users"]}}
                page["meta"] = {**page["meta"], "newest_id": page["data"][0]["id"]}
                raw_name = None
        if since is None and raw_name:
            return self._json(None, raw=fixture_bytes(raw_name))  # the fixture bytes, exactly
        data = [t for t in page["data"] if since is None or int(t["id"]) > since]
        if not data:
            return self._json({"meta": {"result_count": 0}})
        meta: dict[str, Any] = {"result_count": len(data), "newest_id": data[0]["id"], "oldest_id": data[-1]["id"]}
        if len(data) == len(page["data"]) and "next_token" in page["meta"]:
            meta["next_token"] = page["meta"]["next_token"]  # the whole page was newer: older ones may follow
        return self._json({"data": data, "includes": page["includes"], "meta": meta})

    async def _dm_events(self, request: web.Request) -> web.Response:
        events = fixture("dm_events.json")
        if request.query.get("pagination_token") == events["meta"]["next_token"]:
            return self._json({"meta": {"result_count": 0, "previous_token": events["meta"]["previous_token"]}})
        return self._json(None, raw=fixture_bytes("dm_events.json"))

    async def _create_tweet(self, request: web.Request) -> web.Response:
        response = fixture("create_tweet_response.json")
        if len(self.calls("POST", "/2/tweets")) > 1:  # later posts get fresh ids
            self._next_id += 1
            response["data"].update(id=str(self._next_id), edit_history_tweet_ids=[str(self._next_id)])
        response["data"]["text"] = (await request.json()).get("text", response["data"]["text"])
        return self._json(response, status=201)

    async def _send_dm(self, request: web.Request) -> web.Response:
        return self._json(None, status=201, raw=fixture_bytes("send_dm_response.json"))
