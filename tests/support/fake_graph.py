"""A fake Facebook Graph API: a real aiohttp server on 127.0.0.1 answering from tests/fixtures/facebook.

Served under ``/{version}/``: ``POST /{comment-or-post-id}/comments`` (graph_comment_reply_response.json),
``POST /{page-id}/messages`` and ``/me/messages`` (send_api_response.json), ``GET /{page-id}/feed`` and
``GET /{page-id}/conversations`` (Graph objects built from the webhook fixtures: same ids, people, texts and times;
cursor paging with ``paging.cursors.after``), ``GET /{psid}`` (User Profile fields). ``GET /cdn/{name}`` serves
attachment bytes. A wrong ``access_token`` answers the code-190 fixture, as Graph does.

Every request is recorded (method, path, query, JSON or form body). ``fail_once(code)`` makes the next matching
request answer the fixture error for that code (190, 4, 32, 613, 80001) with its documented status and headers.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "facebook"
PAGE_ID = "104512398765432"
PAGE_NAME = "Atención Ciudadana (PRUEBA)"
APP_SECRET = "fixture-app-secret-NOT-REAL-7f3c2a91d4e8b605"
VERIFY_TOKEN = "token-verificacion-fixture"
PROFILES = {"8127364519283746": ("Gabriela", "Ferreira"), "7012938475610293": ("Lucía", ""),
            "6684920175839201": ("Nicolás", "")}  # the fixtures' README names them (first names only for two)
ERROR_FILES = {190: "graph_error_190.json", 32: "graph_error_rate_limit.json", 4: "graph_error_rate_limit_app_4.json",
               613: "graph_error_rate_limit_613.json", 80001: "graph_error_rate_limit_buc_80001.json"}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def graph_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def build_feed() -> list[dict[str, Any]]:
    """``/{page}/feed`` objects (newest first) from the feed webhook fixtures."""
    comments = []
    for name in ("feed_comment_reply_add.json", "feed_comment_add_by_page.json", "feed_comment_add.json"):
        v = fixture(name)["entry"][0]["changes"][0]["value"]
        comments.append({"id": v["comment_id"], "message": v["message"], "from": v["from"],
                         "created_time": graph_time(v["created_time"]), "parent": {"id": v["parent_id"]}})
    v = fixture("feed_comment_add.json")["entry"][0]["changes"][0]["value"]
    page_post = {"id": v["post_id"], "message": "Horarios de atención de diciembre en todas nuestras oficinas.",
                 "from": {"id": PAGE_ID, "name": PAGE_NAME}, "created_time": v["post"]["updated_time"],
                 "updated_time": comments[0]["created_time"],
                 "permalink_url": v["post"]["permalink_url"], "comments": {"data": comments}}
    p = fixture("feed_post_add.json")["entry"][0]["changes"][0]["value"]
    visitor = {"id": p["post_id"], "message": p["message"], "from": p["from"],
               "created_time": graph_time(p["created_time"]), "updated_time": graph_time(p["created_time"]),
               "comments": {"data": []}}
    return [page_post, visitor]


def build_conversations() -> list[dict[str, Any]]:
    """``/{page}/conversations`` objects (most recently updated first) from the Messenger webhook fixtures."""
    by_psid: dict[str, list[dict[str, Any]]] = {}
    for name in ("messenger_message.json", "messenger_echo.json", "messenger_duplicate.json",
                 "batch_two_entries.json"):
        for entry in fixture(name)["entry"]:
            for ev in entry["messaging"]:
                msg = ev["message"]
                psid = ev["recipient"]["id"] if msg.get("is_echo") else ev["sender"]["id"]
                who = ({"id": PAGE_ID, "name": PAGE_NAME} if msg.get("is_echo")
                       else {"id": psid, "name": " ".join(p for p in PROFILES[psid] if p)})
                item = {"id": msg["mid"], "message": msg.get("text", ""), "from": who,
                        "to": {"data": [{"id": PAGE_ID if who["id"] != PAGE_ID else psid}]},
                        "created_time": graph_time(ev["timestamp"] / 1000)}
                if all(m["id"] != item["id"] for m in by_psid.get(psid, [])):
                    by_psid.setdefault(psid, []).append(item)
    convs = []
    for psid, msgs in by_psid.items():
        msgs.sort(key=lambda m: m["created_time"], reverse=True)
        convs.append({"id": f"t_{psid}", "updated_time": msgs[0]["created_time"], "messages": {"data": msgs}})
    convs.sort(key=lambda c: c["updated_time"], reverse=True)
    return convs


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float


@dataclass
class FakeGraph:
    version: str = "v24.0"
    token: str = "page-token-de-prueba"
    url: str = ""
    page_size: int = 25
    requests: list[Recorded] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)  # (path part, error code), each used once
    feed: list[dict[str, Any]] = field(default_factory=build_feed)
    conversations: list[dict[str, Any]] = field(default_factory=build_conversations)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # /cdn/{name} → (bytes, content type)
    _runner: web.AppRunner | None = None

    def fail_once(self, code: int, path_contains: str = "") -> None:
        self.failures.append((path_contains, code))

    def calls(self, method: str, path_contains: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    async def start(self) -> FakeGraph:
        app = web.Application(middlewares=[self._middleware])
        v = f"/{self.version}"
        app.router.add_get("/cdn/{name}", self._cdn)
        app.router.add_post(v + "/{object}/comments", self._comment)
        app.router.add_post(v + "/{page}/messages", self._send)
        app.router.add_get(v + "/{page}/feed", self._feed)
        app.router.add_get(v + "/{page}/conversations", self._conversations)
        app.router.add_get(v + "/{object}", self._profile)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def error(code: int) -> web.Response:
        meta = fixture("http_meta.json").get(ERROR_FILES[code], {})
        return web.Response(status=meta.get("status", 400), body=fixture_bytes(ERROR_FILES[code]),
                            headers=meta.get("headers", {}), content_type="application/json")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
            else:
                body = dict(await request.post())
        self.requests.append(Recorded(request.method, request.path, dict(request.query), body, time.time()))
        if request.path.startswith("/cdn/"):
            return await handler(request)
        for i, (part, code) in enumerate(self.failures):
            if part in request.path:
                del self.failures[i]
                return self.error(code)
        if request.query.get("access_token") != self.token:
            return self.error(190)
        return await handler(request)

    def _paged(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        start = int(base64.b64decode(request.query["after"]).decode()) if request.query.get("after") else 0
        size = min(self.page_size, int(request.query.get("limit", 25)))
        chunk = items[start:start + size]
        paging: dict[str, Any] = {"cursors": {"before": base64.b64encode(str(start).encode()).decode(),
                                              "after": base64.b64encode(str(start + len(chunk)).encode()).decode()}}
        if start + size < len(items):
            paging["next"] = f"https://graph.facebook.com/{self.version}{request.path}?after=..."
        return web.json_response({"data": chunk, "paging": paging})

    async def _feed(self, request: web.Request) -> web.Response:
        return self._paged(request, self.feed)

    async def _conversations(self, request: web.Request) -> web.Response:
        return self._paged(request, self.conversations)

    async def _comment(self, request: web.Request) -> web.Response:
        return web.Response(body=fixture_bytes("graph_comment_reply_response.json"), content_type="application/json")

    async def _send(self, request: web.Request) -> web.Response:
        return web.Response(body=fixture_bytes("send_api_response.json"), content_type="application/json")

    async def _profile(self, request: web.Request) -> web.Response:
        psid = request.match_info["object"]
        if psid not in PROFILES:
            return web.json_response({"error": {"message": "Unsupported get request.", "type": "GraphMethodException",
                                                 "code": 100, "error_subcode": 33}}, status=400)
        first, last = PROFILES[psid]
        return web.json_response({"first_name": first, **({"last_name": last} if last else {}), "id": psid})

    async def _cdn(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.files:
            return web.Response(status=404)
        data, ctype = self.files[name]
        return web.Response(body=data, content_type=ctype)
