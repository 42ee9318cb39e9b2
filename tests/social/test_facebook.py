"""Facebook: the webhook through the real aiohttp app (signatures, handshake), the job that ingests it, replies
through the Graph fake, health on token and throttling errors, and backfill of missed webhooks."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from adapters.facebook.backfill import backfill_once, cursor_key
from adapters.facebook.parse import from_graph_time
from adapters.facebook.plugin import graph_for
from adapters.facebook.sender import OUTSIDE_WINDOW
from inbox.domain import utcnow
from tests.social.conftest import drain, sign
from tests.social.helpers import health, inbound_by_external_id, messages, ticket_of, tickets
from tests.support.fake_graph import APP_SECRET, PAGE_ID, FakeGraph, fixture, fixture_bytes
from workers.outbox import queue_reply
from workers.runtime import Runtime

SIGNATURES = fixture("signatures.json")
CASES = fixture("webhook_verification_cases.json")
COMMENT = "122145678901234567_1187654321098765"
REPLY = "122145678901234567_1190455871203964"
OUR_COMMENT = "122145678901234567_1190021348765432"
POST = "104512398765432_122145678901234567"
VISITOR_POST = "104512398765432_122146012345678901"
GABRIELA_FB, GABRIELA_PSID = "9274610385726193", "8127364519283746"
MID = fixture("messenger_message.json")["entry"][0]["messaging"][0]["message"]["mid"]
DUP_MID = fixture("messenger_duplicate.json")["entry"][0]["messaging"][0]["message"]["mid"]
ECHO_MID = fixture("messenger_echo.json")["entry"][0]["messaging"][0]["message"]["mid"]


async def deliver(client: TestClient, name: str) -> None:
    body = fixture_bytes(name)
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": SIGNATURES["signatures"][name]["X-Hub-Signature-256"]}
    resp = await client.post("/webhooks/facebook", data=body, headers=headers)
    assert resp.status == 200, name
    assert await resp.text() == "EVENT_RECEIVED"


async def deliver_fresh_message(client: TestClient, psid: str, mid: str, text: str, age: timedelta,
                                attachments: list | None = None) -> None:
    """A Messenger delivery built now (the fixtures are from 2025), signed with the fixture app secret."""
    ts = int((utcnow() - age).timestamp() * 1000)
    message: dict = {"mid": mid, "text": text} if text else {"mid": mid}
    if attachments:
        message["attachments"] = attachments
    body = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": ts, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": ts, "message": message}]}]}).encode()
    resp = await client.post("/webhooks/facebook", data=body, headers={"X-Hub-Signature-256": sign(body)})
    assert resp.status == 200


# -- webhook endpoint ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
async def test_verification_handshake(web_client: TestClient, case: dict) -> None:
    resp = await web_client.get("/webhooks/facebook", params=case["query"])
    assert resp.status == case["expected_status"]
    if case["expected_body"] is not None:
        assert await resp.text() == case["expected_body"]
    elif "hub.challenge" in case["query"]:
        assert case["query"]["hub.challenge"] not in await resp.text()


async def test_every_signed_fixture_is_accepted(web_client: TestClient, fb_rt: Runtime) -> None:
    for name in SIGNATURES["signatures"]:
        await deliver(web_client, name)
    jobs = await fb_rt.store.list_jobs(kind="facebook.webhook")
    assert len(jobs) == len(SIGNATURES["signatures"])
    for name, sig in SIGNATURES["signatures"].items():
        assert fb_rt.archive.get(sig["body_sha256"]) == fixture_bytes(name)  # archived byte for byte
    assert set(await drain(fb_rt)) == {"done"}

    found = await inbound_by_external_id(fb_rt)
    feed = {k for k, m in found.items() if m.channel == "facebook"}
    assert feed == {COMMENT, REPLY, VISITOR_POST, f"{COMMENT}#edit:1762267060"}
    messenger = {k for k, m in found.items() if m.channel == "messenger"}
    batch = [e["messaging"][0]["message"]["mid"] for e in fixture("batch_two_entries.json")["entry"]]
    attachment_mid = fixture("messenger_message_with_attachment.json")["entry"][0]["messaging"][0]["message"]["mid"]
    assert messenger == {MID, DUP_MID, attachment_mid, *batch}
    assert ECHO_MID not in found and OUR_COMMENT not in found


def negative_cases() -> list[tuple[str, bytes, dict]]:
    body = fixture_bytes("messenger_message.json")
    good = SIGNATURES["signatures"]["messenger_message.json"]
    cases = [(name.split("/")[1], body, {"X-Hub-Signature-256": entry["X-Hub-Signature-256"]})
             for name, entry in SIGNATURES["negative_examples"].items()]
    cases += [
        ("unsigned", body, {}),
        ("sha1_only", body, {"X-Hub-Signature": good["X-Hub-Signature"]}),
        ("no_prefix", body, {"X-Hub-Signature-256": good["X-Hub-Signature-256"].removeprefix("sha256=")}),
        ("tampered_body", body.replace(b"6 a", b"7 a"), {"X-Hub-Signature-256": good["X-Hub-Signature-256"]}),
        ("other_files_signature", body,
         {"X-Hub-Signature-256": SIGNATURES["signatures"]["messenger_echo.json"]["X-Hub-Signature-256"]}),
        ("garbage", body, {"X-Hub-Signature-256": "sha256=" + "zz" * 32}),
    ]
    return cases


@pytest.mark.parametrize("name,body,headers", negative_cases(), ids=[c[0] for c in negative_cases()])
async def test_forged_or_unsigned_posts_are_refused(web_client: TestClient, fb_rt: Runtime, caplog, name: str,
                                                    body: bytes, headers: dict) -> None:
    with caplog.at_level(logging.WARNING, logger="adapters.facebook.webhook"):
        resp = await web_client.post("/webhooks/facebook", data=body, headers=headers)
    assert resp.status == 403
    assert await fb_rt.store.list_jobs(kind="facebook.webhook") == []
    assert not fb_rt.archive.exists(SIGNATURES["signatures"]["messenger_message.json"]["body_sha256"])
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "facebook webhook refused" in logged
    assert APP_SECRET not in logged and (headers.get("X-Hub-Signature-256") or "sha256=") not in logged


async def test_without_an_app_secret_every_post_is_refused(web_client: TestClient, fb_rt: Runtime) -> None:
    fb_rt.settings.facebook.app_secret = ""
    body = fixture_bytes("messenger_message.json")
    resp = await web_client.post("/webhooks/facebook", data=body, headers={"X-Hub-Signature-256": sign(body, "")})
    assert resp.status == 403


# -- ingest --------------------------------------------------------------------------------------------------------
async def test_duplicate_and_echo_deliveries_add_no_messages(web_client: TestClient, fb_rt: Runtime) -> None:
    await deliver(web_client, "messenger_message.json")
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 1
    await deliver(web_client, "messenger_echo.json")  # our own reply echoed back
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 1
    await deliver(web_client, "messenger_duplicate.json")  # the same event twice in one body
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 2
    await deliver(web_client, "messenger_duplicate.json")  # and the whole delivery again
    await deliver(web_client, "messenger_message.json")
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 2

    await deliver(web_client, "feed_comment_add.json")
    await deliver(web_client, "feed_comment_add.json")
    await deliver(web_client, "feed_comment_add_by_page.json")  # our own comment
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 3
    # Gabriela's Messenger messages are one conversation (PSID), one ticket
    assert (await ticket_of(fb_rt, "messenger", MID)).id == (await ticket_of(fb_rt, "messenger", DUP_MID)).id


async def test_a_batch_with_two_entries_yields_both(web_client: TestClient, fb_rt: Runtime) -> None:
    await deliver(web_client, "batch_two_entries.json")
    assert await drain(fb_rt) == ["done"]
    found = await inbound_by_external_id(fb_rt, "messenger")
    entries = fixture("batch_two_entries.json")["entry"]
    assert len(found) == 2 and len(await tickets(fb_rt, "messenger")) == 2
    for entry in entries:
        event = entry["messaging"][0]
        m = found[event["message"]["mid"]]
        assert m.text == event["message"]["text"]
        assert (m.author.kind, m.author.value) == ("messenger", event["sender"]["id"])
        assert m.account == PAGE_ID and m.meta["psid"] == event["sender"]["id"]
    lucia = await fb_rt.store.find_contact_by_identity("messenger", "7012938475610293")
    assert lucia is not None and lucia.name == "Lucía"  # the PSID's name from the User Profile API


async def test_feed_comments_thread_and_visitor_posts_open_tickets(web_client: TestClient, fb_rt: Runtime) -> None:
    for name in ("feed_comment_add.json", "feed_comment_reply_add.json", "feed_post_add.json",
                 "feed_comment_edited.json", "feed_comment_remove.json"):
        await deliver(web_client, name)
    await drain(fb_rt)
    comment_ticket = await ticket_of(fb_rt, "facebook", COMMENT)
    thread = await fb_rt.store.list_messages(comment_ticket.id)
    assert [m.external_id for m in thread] == [COMMENT, REPLY, f"{COMMENT}#edit:1762267060"]
    assert thread[2].flags == ["edited"] and "diciembre y enero" in thread[2].text
    assert thread[0].text.endswith("🙌") and thread[0].meta["post_id"] == POST
    assert {m.meta["fb_reply_to"] for m in thread} == {COMMENT}
    gabriela = await fb_rt.store.get_contact(comment_ticket.contact_id)
    assert gabriela.name == "Gabriela Ferreira"
    assert [(i.kind, i.value) for i in gabriela.identities] == [("facebook", GABRIELA_FB)]

    post_ticket = await ticket_of(fb_rt, "facebook", VISITOR_POST)
    assert post_ticket.id != comment_ticket.id
    assert "Nro de solicitud 45871" in (await fb_rt.store.list_messages(post_ticket.id))[0].text
    removed = await fb_rt.store.list_events(ticket_id=comment_ticket.id, kinds=["facebook.comment_removed"])
    assert [e.data["comment_id"] for e in removed] == [COMMENT]


async def test_messenger_attachments_are_downloaded_or_kept_as_links(web_client: TestClient, fb_rt: Runtime,
                                                                     fake_graph: FakeGraph) -> None:
    await deliver(web_client, "messenger_message_with_attachment.json")  # its CDN link cannot be reached here
    photo = b"\xff\xd8\xff\xe0 foto del recibo"
    fake_graph.files["recibo.jpg"] = (photo, "image/jpeg")
    await deliver_fresh_message(web_client, GABRIELA_PSID, "m_fresh_attachment", "",  timedelta(minutes=1),
                                [{"type": "image", "payload": {"url": f"{fake_graph.url}/cdn/recibo.jpg"}}])
    await drain(fb_rt)
    found = await inbound_by_external_id(fb_rt, "messenger")
    old = found[fixture("messenger_message_with_attachment.json")["entry"][0]["messaging"][0]["message"]["mid"]]
    assert [a.skipped for a in old.attachments] == ["download_failed"]
    assert old.meta["fb_attachments"][0]["url"].startswith("https://scontent.xx.fbcdn.net/")
    new = found["m_fresh_attachment"]
    [att] = new.attachments
    assert (att.filename, att.content_type, att.size, att.skipped) == ("recibo.jpg", "image/jpeg", len(photo), None)
    assert fb_rt.attachments.get(att.sha256) == photo


# -- replies -------------------------------------------------------------------------------------------------------
async def test_comment_reply_reaches_graph(web_client: TestClient, fb_rt: Runtime, fake_graph: FakeGraph) -> None:
    await deliver(web_client, "feed_comment_add.json")
    await deliver(web_client, "feed_comment_reply_add.json")
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "facebook", COMMENT)
    assert "público" in fb_rt.channels["facebook"].reply_warning(ticket, await fb_rt.store.list_messages(ticket.id))
    text = "¡Hola Gabriela! Sí, en diciembre atendemos de lunes a viernes de 9 a 16 h, salvo feriados."
    out = await queue_reply(fb_rt, ticket, text, "agente@example.gub.uy", request_id="c1")
    assert await drain(fb_rt) == ["done"]
    [call] = fake_graph.calls("POST", "/comments")
    assert call.path == f"/v24.0/{COMMENT}/comments"  # under the top-level comment, also for a reply in it
    assert call.body == {"message": text}
    assert call.query["access_token"] == fake_graph.token and "appsecret_proof" in call.query
    sent = await fb_rt.store.get_message(out.id)
    assert (sent.delivery_status, sent.external_id) == ("sent", OUR_COMMENT)
    # our comment comes back through the feed webhook: no new message
    await deliver(web_client, "feed_comment_add_by_page.json")
    await drain(fb_rt)
    assert len(await fb_rt.store.list_messages(ticket.id)) == 3


async def test_messenger_reply_reaches_send_api(web_client: TestClient, fb_rt: Runtime, fake_graph: FakeGraph) -> None:
    await deliver_fresh_message(web_client, GABRIELA_PSID, "m_fresh_1", "¿Qué papeles llevo?", timedelta(hours=1))
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "messenger", "m_fresh_1")
    assert fb_rt.channels["messenger"].reply_warning(ticket, await fb_rt.store.list_messages(ticket.id)) is None
    out = await queue_reply(fb_rt, ticket, "Partida de nacimiento y cédula vigente.", "agente@example.gub.uy",
                            request_id="m1")
    assert await drain(fb_rt) == ["done"]
    [call] = fake_graph.calls("POST", "/messages")
    assert call.path == f"/v24.0/{PAGE_ID}/messages"
    assert call.body["recipient"] == {"id": GABRIELA_PSID}
    assert call.body["messaging_type"] == "RESPONSE" and "tag" not in call.body
    assert call.body["message"]["text"] == "Partida de nacimiento y cédula vigente."
    sent = await fb_rt.store.get_message(out.id)
    assert (sent.delivery_status, sent.external_id) == ("sent", ECHO_MID)
    await deliver(web_client, "messenger_echo.json")  # the echo of what we just sent
    await drain(fb_rt)
    assert len(await fb_rt.store.list_messages(ticket.id)) == 2


async def test_messenger_24_hour_window_is_enforced(web_client: TestClient, fb_rt: Runtime,
                                                    fake_graph: FakeGraph) -> None:
    await deliver(web_client, "messenger_message.json")  # written in 2025: long past 24 hours
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "messenger", MID)
    assert fb_rt.channels["messenger"].reply_warning(ticket, await fb_rt.store.list_messages(ticket.id)) \
        == OUTSIDE_WINDOW
    out = await queue_reply(fb_rt, ticket, "Hola Gabriela", "agente@example.gub.uy", request_id="late")
    assert await drain(fb_rt) == ["dead"]
    failed = await fb_rt.store.get_message(out.id)
    assert (failed.delivery_status, failed.delivery_error) == ("failed", OUTSIDE_WINDOW)
    assert fake_graph.calls("POST", "/messages") == []

    # with the HUMAN_AGENT tag enabled, a 3-day-old conversation may still be answered, tagged
    fb_rt.settings.facebook.human_agent_tag = True
    await deliver_fresh_message(web_client, "7012938475610293", "m_three_days", "Hola?", timedelta(days=3))
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "messenger", "m_three_days")
    assert "HUMAN_AGENT" in fb_rt.channels["messenger"].reply_warning(ticket, await fb_rt.store.list_messages(
        ticket.id))
    await queue_reply(fb_rt, ticket, "Hola Lucía, perdón la demora.", "agente@example.gub.uy", request_id="tag")
    assert await drain(fb_rt) == ["done"]
    [call] = fake_graph.calls("POST", "/messages")
    assert (call.body["messaging_type"], call.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_expired_token_shows_as_channel_health(web_client: TestClient, fb_rt: Runtime,
                                                     fake_graph: FakeGraph) -> None:
    await deliver(web_client, "feed_comment_add.json")
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "facebook", COMMENT)
    out = await queue_reply(fb_rt, ticket, "Hola", "agente@example.gub.uy", request_id="t190")
    fake_graph.fail_once(190, "/comments")
    assert await drain(fb_rt) == ["dead"]  # permanent: retrying with a dead token cannot help
    failed = await fb_rt.store.get_message(out.id)
    assert failed.delivery_status == "failed" and "190" in failed.delivery_error
    for channel in ("facebook", "messenger"):  # one Page token serves both
        doc = await health(fb_rt, channel, PAGE_ID)
        assert doc["status"] == "error" and "190" in doc["detail"] and "PAGE_TOKEN" in doc["detail"]
        assert fake_graph.token not in doc["detail"]
    # the backfill with a revoked token reports it too, and clears it once the token works again
    fake_graph.fail_once(190, "/feed")
    assert (await backfill_once(fb_rt, graph_for(fb_rt))).error is not None
    assert (await health(fb_rt, "facebook", PAGE_ID))["status"] == "error"
    assert (await backfill_once(fb_rt, graph_for(fb_rt))).error is None
    assert (await health(fb_rt, "facebook", PAGE_ID))["status"] == "ok"


@pytest.mark.parametrize("code,retry_s", [(4, 300), (32, 300), (613, 300), (80001, 17 * 60)])
async def test_throttling_becomes_health_and_a_later_retry(web_client: TestClient, fb_rt: Runtime,
                                                           fake_graph: FakeGraph, code: int, retry_s: int) -> None:
    await deliver_fresh_message(web_client, GABRIELA_PSID, "m_fresh_2", "Hola", timedelta(minutes=5))
    await drain(fb_rt)
    ticket = await ticket_of(fb_rt, "messenger", "m_fresh_2")
    out = await queue_reply(fb_rt, ticket, "Hola Gabriela", "agente@example.gub.uy", request_id=f"t{code}")
    fake_graph.fail_once(code, "/messages")
    assert await drain(fb_rt) == ["ready"]
    job = (await fb_rt.store.list_jobs(kind="deliver"))[0]
    assert abs(job.not_before.timestamp() - (time.time() + retry_s)) < 30  # 80001: estimated_time_to_regain_access
    assert (await fb_rt.store.get_message(out.id)).delivery_status == "queued"
    doc = await health(fb_rt, "messenger", PAGE_ID)
    assert doc["status"] == "error" and f"código {code}" in doc["detail"]


# -- backfill ------------------------------------------------------------------------------------------------------
async def test_missed_webhooks_are_recovered_by_backfill(web_client: TestClient, fb_rt: Runtime,
                                                         fake_graph: FakeGraph) -> None:
    await deliver(web_client, "feed_comment_add.json")  # the only webhook that arrived
    await drain(fb_rt)
    await fb_rt.store.put_doc("cursors", cursor_key(PAGE_ID), {"since": "2025-11-04T00:00:00+0000"})
    fake_graph.page_size = 1  # make it follow paging cursors

    started = utcnow().replace(microsecond=0)
    result = await backfill_once(fb_rt, graph_for(fb_rt))
    assert result.error is None
    assert (result.counts.ingested, result.counts.duplicates) == (6, 1)
    found = await inbound_by_external_id(fb_rt)
    batch = [e["messaging"][0]["message"]["mid"] for e in fixture("batch_two_entries.json")["entry"]]
    assert set(found) == {COMMENT, REPLY, VISITOR_POST, MID, DUP_MID, *batch}
    assert ECHO_MID not in found and OUR_COMMENT not in found  # the Page's own items stay out
    assert (await ticket_of(fb_rt, "facebook", REPLY)).id == (await ticket_of(fb_rt, "facebook", COMMENT)).id
    assert found[MID].author.display_name == "Gabriela Ferreira"
    feed_calls = fake_graph.calls("GET", f"/{PAGE_ID}/feed")
    assert len(feed_calls) == 2 and "after" in feed_calls[1].query
    assert int(feed_calls[0].query["since"]) <= 1762214400
    assert "comments" in feed_calls[0].query["fields"]
    assert "messages" in fake_graph.calls("GET", "/conversations")[0].query["fields"]
    cursor = await fb_rt.store.get_doc("cursors", cursor_key(PAGE_ID))
    assert from_graph_time(cursor["since"]) >= started  # moved to the start of this run, after the commit

    # the late webhooks of what the backfill found add nothing; a second backfill adds nothing either
    await deliver(web_client, "messenger_message.json")
    await deliver(web_client, "feed_comment_reply_add.json")
    await drain(fb_rt)
    assert len(await messages(fb_rt)) == 7
    fake_graph.page_size = 25
    await fb_rt.store.put_doc("cursors", cursor_key(PAGE_ID), {"since": "2025-11-04T00:00:00+0000"})
    again = await backfill_once(fb_rt, graph_for(fb_rt))
    assert (again.counts.ingested, again.counts.duplicates) == (0, 7)
    assert (await health(fb_rt, "facebook", PAGE_ID))["status"] == "ok"
