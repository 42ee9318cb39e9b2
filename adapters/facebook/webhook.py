"""``/webhooks/facebook``: the GET verification handshake and signed POST deliveries.

A POST is checked against ``X-Hub-Signature-256`` over the raw body bytes before anything else looks at it; a
missing, malformed or wrong signature is refused with 403 and logged (remote address, size, reason; never the
header value or a secret). Meta sends lowercase hex: the comparison is strict and constant-time, so an upper-case
digest is refused too. An accepted body is archived and a ``facebook.webhook`` job is enqueued; the answer is 200
right away and the job does the parsing and ingest (Meta retries deliveries that are slow or fail).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from adapters.facebook.parse import parse_webhook
from inbox.domain import Job, utcnow
from inbox.store.base import JobSpec

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

PATH = "/webhooks/facebook"
JOB_KIND = "facebook.webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def expected_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def signature_problem(secret: str, raw: bytes, header: str | None) -> str | None:
    """None when the signature is valid, else the reason (for the log)."""
    if not secret:
        return "app secret not configured (INBOX_FACEBOOK__APP_SECRET)"
    if not header:
        return "missing X-Hub-Signature-256"
    if not header.startswith("sha256=") or len(header) != len("sha256=") + 64:
        return "malformed X-Hub-Signature-256"
    if not hmac.compare_digest(expected_signature(secret, raw).encode(), header.encode("ascii", "replace")):
        return "signature mismatch"
    return None


def setup_web(app: web.Application, rt: Runtime) -> None:
    async def verify(request: web.Request) -> web.Response:
        q = request.query
        token = rt.settings.facebook.verify_token
        mode, given, challenge = q.get("hub.mode"), q.get("hub.verify_token", ""), q.get("hub.challenge")
        if mode != "subscribe" or not token or not hmac.compare_digest(token.encode(), given.encode()):
            log.warning("facebook webhook verification refused (mode=%r, from %s)", mode, request.remote)
            raise web.HTTPForbidden(text="forbidden")
        if not challenge:
            raise web.HTTPBadRequest(text="missing hub.challenge")
        return web.Response(text=challenge, content_type="text/plain")

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        problem = signature_problem(rt.settings.facebook.app_secret, raw, request.headers.get(SIGNATURE_HEADER))
        if problem is not None:
            log.warning("facebook webhook refused: %s (from %s, %d bytes, body sha256 %s)", problem,
                        request.remote, len(raw), hashlib.sha256(raw).hexdigest()[:16])
            raise web.HTTPForbidden(text="invalid signature")
        ref = rt.archive.put(raw)
        await rt.store.enqueue(JobSpec(JOB_KIND, {"raw_ref": ref, "received_at": utcnow().isoformat()},
                                       dedupe_key=f"{JOB_KIND}:{ref}"))
        return web.Response(text="EVENT_RECEIVED", content_type="text/plain")

    app.router.add_get(PATH, verify)
    app.router.add_post(PATH, receive)


async def handle_webhook_job(rt: Runtime, job: Job) -> None:
    from adapters.facebook.ingest import ingest_parsed
    from adapters.facebook.plugin import graph_for

    raw = rt.archive.get(job.payload["raw_ref"])
    page_id = rt.settings.facebook.page_id
    try:
        body = json.loads(raw)
    except ValueError as exc:
        await rt.pipeline.quarantine(raw, "facebook", page_id or "?", f"webhook body is not JSON: {exc}")
        return
    parsed = parse_webhook(body, raw, page_id)
    counts = await ingest_parsed(rt, graph_for(rt), parsed)
    log.info("facebook webhook %s: %d new, %d duplicates, %d removed, %d ignored", job.payload["raw_ref"][:12],
             counts.ingested, counts.duplicates, counts.removed, counts.ignored)
