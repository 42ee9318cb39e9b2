"""X: mentions and DMs from the fake API v2 become tickets; replies go back as the right POST; rate limits, auth
failures and restarts behave. The adapter's real tweepy/aiohttp code talks to tests/support/fake_x.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.x.plugin import api_for
from adapters.x.poller import XPoller, x_worker
from inbox.domain import DeliveryStatus
from tests.social.conftest import drain
from tests.social.helpers import health, inbound_by_external_id, messages, ticket_of, tickets
from tests.support.fake_x import OUR_ID, FakeX, fixture
from workers.outbox import queue_reply
from workers.runtime import Runtime

PAGE1 = fixture("users_mentions_page1.json")
PAGE2 = fixture("users_mentions_page2.json")
DMS = fixture("dm_events.json")
MENTION_IDS = [t["id"] for t in PAGE1["data"] + PAGE2["data"]]
OWN_DM = "1985767919012188160"
CITIZEN_DM_IDS = [e["id"] for e in DMS["data"] if e["id"] != OWN_DM]
T1, T8 = "1985317454524854272", "1985802994810499072"
SOFI = "1623098452173656064"
MICA = "1385012345678901248"


def poller(rt: Runtime) -> XPoller:
    return XPoller(rt, api_for(rt))


async def test_mentions_and_dms_become_tickets_and_threads(x_rt: Runtime, fake_x: FakeX) -> None:
    result = await poller(x_rt).poll_once()
    assert result.errors == []
    assert (result.ingested, result.duplicates, result.skipped_own) == (12, 0, 1)

    stored = await inbound_by_external_id(x_rt, "x")
    assert sorted(stored) == sorted(MENTION_IDS + CITIZEN_DM_IDS)
    assert OWN_DM not in stored  # our own outgoing DM is recognised by sender_id and skipped

    # the reply in a conversation (T8 answers our reply to T1) joins T1's ticket; T1 (oldest) opened it
    conv = await ticket_of(x_rt, "x", T1)
    assert (await ticket_of(x_rt, "x", T8)).id == conv.id
    thread = await x_rt.store.list_messages(conv.id)
    assert [m.external_id for m in thread] == [T1, T8]
    assert thread[1].meta["replied_to"] == "1985323860409856001"
    assert thread[1].meta["replied_to_text"].startswith("@sofi_ramirez_uy ¡Hola Sofía!")
    # every other mention and every DM conversation is its own ticket: 7 mention tickets + 4 DM tickets
    all_tickets = await tickets(x_rt, "x")
    assert len(all_tickets) == 11
    assert sum(t.message_count for t in all_tickets) == 12

    # contents: HTML entities unescaped, t.co expanded, kinds and conversations in meta
    assert "cédula & pasaporte" in stored["1985668376882982912"].text
    assert "https://tramites.example.gub.uy/agenda/cedula?paso=2&oficina=centro" in stored["1985734865564610560"].text
    assert stored[T8].meta["x_kind"] == "mention" and stored[T8].meta["conversation_id"] == T1
    dm = stored["1985784979628920832"]
    assert dm.meta["x_kind"] == "dm" and dm.meta["dm_conversation_id"] == f"{MICA}-{OUR_ID}"
    assert stored["1985716171899834368"].meta["x_media_keys"] == ["3_1985716152018882560"]

    # identities: X user id, display name and @handle; one person's tweets and DMs gather on one contact
    sofi = await x_rt.store.find_contact_by_identity("x", SOFI)
    assert sofi is not None and sofi.name == "Sofía Ramírez"
    assert [(i.kind, i.value, i.handle) for i in sofi.identities] == [("x", SOFI, "@sofi_ramirez_uy")]
    mica_mention = await ticket_of(x_rt, "x", "1985771488654274560")
    mica_dm = await ticket_of(x_rt, "x", "1985784979628920832")
    assert mica_mention.contact_id == mica_dm.contact_id and mica_mention.id != mica_dm.id

    # the requests: expansions and fields as documented; page 2 asked with page 1's next_token
    mentions = fake_x.calls("GET", "/mentions")
    assert [r.path for r in mentions] == [f"/2/users/{OUR_ID}/mentions"] * 2
    first = mentions[0].query
    assert first["expansions"] == "author_id,referenced_tweets.id"
    assert set(first["user.fields"].split(",")) == {"username", "name"}
    assert {"conversation_id", "created_at", "referenced_tweets", "author_id"} <= set(first["tweet.fields"].split(","))
    assert "since_id" not in first
    assert mentions[1].query["pagination_token"] == PAGE1["meta"]["next_token"]
    assert fake_x.calls("GET", "/2/dm_events")[0].query["dm_event.fields"].split(",")[:2] == ["id", "text"]
    assert all(r.auth == "Bearer" for r in fake_x.requests)

    # cursors are saved after the commit; the next poll asks only for newer mentions
    assert (await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:mentions"))["since_id"] == PAGE1["meta"]["newest_id"]
    assert (await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:dms"))["newest_id"] == DMS["data"][0]["id"]
    again = await poller(x_rt).poll_once()
    assert (again.ingested, again.duplicates) == (0, 0)
    assert fake_x.calls("GET", "/mentions")[-1].query["since_id"] == PAGE1["meta"]["newest_id"]
    assert (await health(x_rt, "x", OUR_ID))["status"] == "ok"


async def test_reply_to_mention_posts_tweet_and_the_answer_threads_back(x_rt: Runtime, fake_x: FakeX) -> None:
    await poller(x_rt).poll_once()
    ticket = await ticket_of(x_rt, "x", T8)
    thread = await x_rt.store.list_messages(ticket.id)
    warning = x_rt.channels["x"].reply_warning(ticket, thread)
    assert warning and "pública" in warning and "@sofi_ramirez_uy" in warning

    text = "@sofi_ramirez_uy Hola Sofía, el mail de confirmación puede demorar hasta 24 h."
    out = await queue_reply(x_rt, ticket, text, "agente@example.gub.uy", request_id="r1")
    assert await drain(x_rt) == ["done"]
    post = fake_x.calls("POST", "/2/tweets")
    assert len(post) == 1
    assert post[0].json == {"text": text, "reply": {"in_reply_to_tweet_id": T8}}
    sent = await x_rt.store.get_message(out.id)
    assert sent.delivery_status == DeliveryStatus.SENT
    assert sent.external_id == fixture("create_tweet_response.json")["data"]["id"]

    # the citizen answers our tweet: the new mention joins the same ticket (by the replied-to tweet)
    fake_x.extra_mentions.append({
        "tweet": {"edit_history_tweet_ids": ["1985811111111111111"], "id": "1985811111111111111",
                  "text": "@AtencionCiudUY Dale, gracias!", "author_id": SOFI, "conversation_id": T1,
                  "created_at": "2025-11-04T20:45:00.000Z", "in_reply_to_user_id": OUR_ID,
                  "referenced_tweets": [{"type": "replied_to", "id": sent.external_id}]},
        "user": {"id": SOFI, "name": "Sofía Ramírez", "username": "sofi_ramirez_uy"}})
    fake_x.extra_mentions.insert(0, {  # someone retweets it: nothing new to answer
        "tweet": {"edit_history_tweet_ids": ["1985822222222222222"], "id": "1985822222222222222",
                  "text": "RT @sofi_ramirez_uy: @AtencionCiudUY Dale, gracias!", "author_id": MICA,
                  "conversation_id": "1985822222222222222", "created_at": "2025-11-04T20:50:00.000Z",
                  "referenced_tweets": [{"type": "retweeted", "id": "1985811111111111111"}]},
        "user": {"id": MICA, "name": "Mica ✨", "username": "micaa_sosa"}})
    res = await poller(x_rt).poll_once()
    assert res.ingested == 1
    assert (await ticket_of(x_rt, "x", "1985811111111111111")).id == ticket.id
    assert fake_x.calls("GET", "/mentions")[-1].query["since_id"] == PAGE1["meta"]["newest_id"]


async def test_reply_to_dm_posts_a_direct_message(x_rt: Runtime, fake_x: FakeX) -> None:
    await poller(x_rt).poll_once()
    ticket = await ticket_of(x_rt, "x", "1985784979628920832")
    assert x_rt.channels["x"].reply_warning(ticket, await x_rt.store.list_messages(ticket.id)) is None
    out = await queue_reply(x_rt, ticket, "Hola Mica, ¿nos pasás tu número de cédula?", "agente@example.gub.uy",
                            request_id="dm1")
    assert await drain(x_rt) == ["done"]
    posts = fake_x.calls("POST", "/2/dm_conversations")
    assert [p.path for p in posts] == [f"/2/dm_conversations/with/{MICA}/messages"]
    assert posts[0].json == {"text": "Hola Mica, ¿nos pasás tu número de cédula?"}
    assert not fake_x.calls("POST", "/2/tweets")
    sent = await x_rt.store.get_message(out.id)
    assert (sent.delivery_status, sent.external_id) == ("sent", fixture("send_dm_response.json")["data"]["dm_event_id"])


async def test_oauth1_user_context_through_the_rewritten_host(x_rt: Runtime, fake_x: FakeX) -> None:
    cfg = x_rt.settings.x
    cfg.bearer_token = ""
    cfg.consumer_key, cfg.consumer_secret, cfg.access_token, cfg.access_token_secret = "ck", "cs", "at", "ats"
    await poller(x_rt).poll_once()
    ticket = await ticket_of(x_rt, "x", "1985694152466509824")
    await queue_reply(x_rt, ticket, "@andre_suarez88 Hola Andrea, no hace falta trámite.", "a@example.gub.uy",
                      request_id="o1")
    assert await drain(x_rt) == ["done"]
    assert fake_x.requests and all(r.auth == "OAuth" for r in fake_x.requests)
    assert fake_x.calls("POST", "/2/tweets")[0].json["reply"] == {"in_reply_to_tweet_id": "1985694152466509824"}


async def test_too_long_public_reply_is_refused_before_calling_x(x_rt: Runtime, fake_x: FakeX) -> None:
    await poller(x_rt).poll_once()
    ticket = await ticket_of(x_rt, "x", T1)
    out = await queue_reply(x_rt, ticket, "a" * 281, "agente@example.gub.uy", request_id="long")
    assert await drain(x_rt) == ["dead"]
    failed = await x_rt.store.get_message(out.id)
    assert failed.delivery_status == "failed" and "280 caracteres" in failed.delivery_error
    assert not fake_x.calls("POST", "/2/tweets")


async def test_429_waits_until_reset_and_retries(x_rt: Runtime, fake_x: FakeX) -> None:
    fake_x.fail_once(429, path_contains="/mentions", reset_in=2)
    started = time.time()
    result = await poller(x_rt).poll_once()
    first, second = fake_x.calls("GET", "/mentions")[:2]
    [reset] = fake_x.resets  # the x-rate-limit-reset the fake sent, about 2 s ahead
    assert first.at < reset <= second.at, "retried before x-rate-limit-reset"
    assert time.time() - started < 10
    assert result.errors == [] and result.ingested == 12
    assert len(await inbound_by_external_id(x_rt, "x")) == 12
    events = await x_rt.store.list_events(kinds=["channel.health"])
    assert any("Límite de uso de X" in e.data["detail"] for e in events)
    assert (await health(x_rt, "x", OUR_ID))["status"] == "ok"


async def test_429_on_send_retries_later(x_rt: Runtime, fake_x: FakeX) -> None:
    await poller(x_rt).poll_once()
    ticket = await ticket_of(x_rt, "x", T1)
    out = await queue_reply(x_rt, ticket, "@sofi_ramirez_uy Hola", "agente@example.gub.uy", request_id="rl")
    fake_x.fail_once(429, path_contains="/2/tweets", reset_in=30)
    assert await drain(x_rt) == ["ready"]
    job = (await x_rt.store.list_jobs(kind="deliver"))[0]
    assert job.status == "ready" and job.not_before.timestamp() >= time.time() + 20
    assert (await x_rt.store.get_message(out.id)).delivery_status == "queued"


async def test_401_shows_as_channel_health(x_rt: Runtime, fake_x: FakeX) -> None:
    fake_x.fail_once(401, path_contains="/2/dm_events")
    result = await poller(x_rt).poll_once()
    assert result.ingested == 8  # mentions still came in
    doc = await health(x_rt, "x", OUR_ID)
    assert doc["status"] == "error" and "credenciales" in doc["detail"] and "401" in doc["detail"]
    assert "bearer-de-prueba" not in doc["detail"]
    assert await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:dms") is None
    # fixed (the fake answers normally again): the next poll brings the DMs and the health back to ok
    result = await poller(x_rt).poll_once()
    assert result.ingested == 4
    assert (await health(x_rt, "x", OUR_ID))["status"] == "ok"

    # a 401 while sending: the reply fails permanently and the channel shows the error
    ticket = await ticket_of(x_rt, "x", T1)
    out = await queue_reply(x_rt, ticket, "@sofi_ramirez_uy Hola", "agente@example.gub.uy", request_id="a1")
    fake_x.fail_once(401, path_contains="/2/tweets")
    assert await drain(x_rt) == ["dead"]
    assert (await x_rt.store.get_message(out.id)).delivery_status == "failed"
    assert (await health(x_rt, "x", OUR_ID))["status"] == "error"


async def test_restart_between_pages_loses_nothing_and_duplicates_nothing(x_rt: Runtime, fake_x: FakeX) -> None:
    x_rt.settings.x.poll_dms = False
    release = fake_x.hold(lambda r: "mentions" in r.path and "pagination_token" in r.query)
    stop = asyncio.Event()
    task = asyncio.create_task(x_worker(x_rt, stop))
    for _ in range(200):
        if any("pagination_token" in r.query for r in fake_x.calls("GET", "/mentions")):
            break
        await asyncio.sleep(0.02)
    assert any("pagination_token" in r.query for r in fake_x.calls("GET", "/mentions")), "page 2 never requested"
    task.cancel()  # the process dies while page 2 is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:mentions") is None

    result = await poller(x_rt).poll_once()  # the restarted poller
    assert result.ingested == 8
    stored = await inbound_by_external_id(x_rt, "x")  # asserts no external id is stored twice
    assert sorted(stored) == sorted(MENTION_IDS)
    assert (await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:mentions"))["since_id"] == PAGE1["meta"]["newest_id"]


async def test_crash_mid_set_loses_nothing_and_duplicates_nothing(x_rt: Runtime, fake_x: FakeX) -> None:
    x_rt.settings.x.poll_dms = False
    calls = {"n": 0}

    async def crash_on_fifth_commit(p, ctx) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("process killed")

    x_rt.pipeline.insert_step("crash", crash_on_fifth_commit, before="commit")
    with pytest.raises(RuntimeError):
        await poller(x_rt).poll_once()
    assert len(await inbound_by_external_id(x_rt, "x")) == 4  # the four oldest committed, then the crash
    assert await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:mentions") is None

    result = await poller(x_rt).poll_once()
    assert (result.ingested, result.duplicates) == (4, 4)
    stored = await inbound_by_external_id(x_rt, "x")
    assert sorted(stored) == sorted(MENTION_IDS)
    assert sum(t.message_count for t in await tickets(x_rt, "x")) == 8 == len(await messages(x_rt, "x"))
    assert (await x_rt.store.get_doc("cursors", f"x:{OUR_ID}:mentions"))["since_id"] == PAGE1["meta"]["newest_id"]
