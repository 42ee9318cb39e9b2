"""Inbound over a real Dovecot: IDLE latency, polling, cursor, post-commit actions, UIDVALIDITY, health."""

from __future__ import annotations

import asyncio

import pytest

from adapters.email.imap import ImapConnection
from inbox.domain import TicketFilter
from tests.email.conftest import OUR_ADDRESS, account, count_messages, mail, wait_until
from tests.support.dovecot import Dovecot


async def test_new_mail_becomes_a_ticket_within_two_seconds_through_idle(dovecot: Dovecot, mailbox: str, make_rt,
                                                                          run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, poll_interval_s=60.0)])
    run_worker(rt)

    async def connected() -> bool:
        doc = await rt.store.get_doc("channel_health", "email:atencion")
        return bool(doc and doc["status"] == "ok" and "IDLE" in doc["detail"])

    await wait_until(connected)
    await asyncio.sleep(0.3)  # let the watcher enter IDLE
    dovecot.lmtp_deliver(mailbox, mail(1, subject="Consulta por pasaporte"))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def ticket() -> bool:
        return await rt.store.count_tickets(TicketFilter(channel="email")) == 1

    await wait_until(ticket, timeout=5.0, every=0.02)
    assert loop.time() - started < 2.0
    page = await rt.store.list_tickets(TicketFilter(channel="email"))
    assert page.items[0].subject == "Consulta por pasaporte"


async def test_mail_arriving_just_before_idle_is_not_missed(dovecot: Dovecot, mailbox: str, make_rt, run_worker,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A mail delivered between the watcher's last look and its IDLE is announced with the "+ idling" answer,
    often in the same read; the watcher must see it then, not at the next safety re-check a minute later."""
    original = ImapConnection.uids_after
    delivered: list[int] = []

    def look_then_deliver(conn: ImapConnection, last_uid: int) -> list[int]:
        found = original(conn, last_uid)
        if last_uid >= 1 and not found and not delivered:
            dovecot.lmtp_deliver(mailbox, mail(2, subject="Llegó justo antes del IDLE"))
            delivered.append(last_uid)
        return found

    monkeypatch.setattr(ImapConnection, "uids_after", look_then_deliver)
    rt = await make_rt([account("atencion", mailbox, dovecot, poll_interval_s=60.0)])
    run_worker(rt)
    dovecot.lmtp_deliver(mailbox, mail(1))

    async def looked_and_delivered() -> bool:
        return bool(delivered)

    async def tickets() -> bool:
        return await rt.store.count_tickets(TicketFilter(channel="email")) == 2

    await wait_until(looked_and_delivered)
    assert await wait_until(tickets, timeout=10.0, every=0.02) < 2.0


async def cursor(rt, name: str = "atencion") -> dict:
    return await rt.store.get_doc("cursors", f"imap:{name}:INBOX") or {}


def flags_by_subject(dovecot: Dovecot, user: str, folder: str = "INBOX") -> dict[str, tuple]:
    client = dovecot.imap(user)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    finally:
        client.logout()
    out = {}
    for item in data.values():
        subject = item[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
        out[subject] = item[b"FLAGS"]
    return out


async def test_polling_fallback_and_cursor(dovecot: Dovecot, mailbox: str, make_rt, run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, idle=False, poll_interval_s=0.3)])
    dovecot.write_maildir(mailbox, [mail(i) for i in range(3)])
    handle = run_worker(rt)
    await wait_until(lambda: _count(rt, 3))
    health = await rt.store.get_doc("channel_health", "email:atencion")
    assert health["status"] == "ok" and "polling" in health["detail"]
    c = await cursor(rt)
    assert c["last_uid"] == 3 and c["uidvalidity"] > 0
    dovecot.lmtp_deliver(mailbox, mail(3))
    await wait_until(lambda: _count(rt, 4), timeout=5)
    await handle.close()
    # a restart fetches only what is above the cursor
    run_worker(rt)
    dovecot.lmtp_deliver(mailbox, mail(4))
    await wait_until(lambda: _count(rt, 5), timeout=5)
    assert rt.services["email.watchers"][0].stats["duplicate"] == 0


async def _count(rt, n: int) -> bool:
    return await count_messages(rt) >= n


@pytest.mark.parametrize("action", ["seen", "move", "leave"])
async def test_post_commit_action(action: str, dovecot: Dovecot, mailbox: str, make_rt, run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, after_commit=action, move_folder="Procesados")])
    dovecot.write_maildir(mailbox, [mail(1), mail(2)])
    run_worker(rt)
    await wait_until(lambda: _count(rt, 2))
    await asyncio.sleep(0.2)
    inbox = flags_by_subject(dovecot, mailbox)
    if action == "seen":
        assert all(b"\\Seen" in f for f in inbox.values()) and len(inbox) == 2
    elif action == "move":
        assert inbox == {} and len(flags_by_subject(dovecot, mailbox, "Procesados")) == 2
    else:
        assert len(inbox) == 2 and not any(b"\\Seen" in f for f in inbox.values())


async def test_fetch_does_not_mark_seen_before_commit(dovecot: Dovecot, mailbox: str) -> None:
    from adapters.email.imap import ImapConnection
    from adapters.email.settings import EmailAccount
    from tests.support.dovecot import PASSWORD

    dovecot.write_maildir(mailbox, [mail(1)])
    acc = EmailAccount(name="a", address=OUR_ADDRESS, imap_host="127.0.0.1", imap_port=dovecot.imap_port,
                       imap_tls=False, imap_user=mailbox)
    conn = ImapConnection(acc, PASSWORD, 10)
    conn.connect()
    try:
        assert list(conn.fetch(conn.uids_after(0)).values())[0].startswith(b"From:")
    finally:
        conn.close()
    assert not any(b"\\Seen" in f for f in flags_by_subject(dovecot, mailbox).values())


async def test_initial_sync_none_skips_old_mail(dovecot: Dovecot, mailbox: str, make_rt, run_worker) -> None:
    dovecot.write_maildir(mailbox, [mail(1), mail(2)])
    rt = await make_rt([account("atencion", mailbox, dovecot, initial_sync="none")])
    run_worker(rt)
    await wait_until(lambda: _has_cursor(rt))
    dovecot.lmtp_deliver(mailbox, mail(3))
    await wait_until(lambda: _count(rt, 1))
    await asyncio.sleep(0.3)
    assert await count_messages(rt) == 1


async def _has_cursor(rt) -> bool:
    return bool(await cursor(rt))


async def test_uidvalidity_change_resyncs_without_duplicates(dovecot: Dovecot, mailbox: str, make_rt,
                                                              run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot, after_commit="leave")])
    dovecot.write_maildir(mailbox, [mail(i) for i in range(5)])
    handle = run_worker(rt)
    await wait_until(lambda: _count(rt, 5))
    await handle.close()
    before = await cursor(rt)
    # Dovecot forgets its UID list: it renumbers the folder under a new UIDVALIDITY (as after a restore)
    await asyncio.sleep(1.1)  # UIDVALIDITY is a timestamp: make sure the new one differs
    for path in dovecot.maildir(mailbox).glob("dovecot*"):
        path.unlink()
    dovecot.write_maildir(mailbox, [mail(5)])
    run_worker(rt)
    await wait_until(lambda: _count(rt, 6))
    await asyncio.sleep(0.3)
    after = await cursor(rt)
    assert after["uidvalidity"] != before["uidvalidity"] and after["resyncs"] == 1
    assert await count_messages(rt) == 6
    assert rt.services["email.watchers"][0].stats["duplicate"] == 5


async def test_failing_login_shows_as_health_error_then_recovers(dovecot: Dovecot, mailbox: str, make_rt,
                                                                 run_worker, monkeypatch) -> None:
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    rt = await make_rt([account("atencion", mailbox, dovecot, password_env="WRONG_PW")])
    run_worker(rt)

    async def failing() -> bool:
        doc = await rt.store.get_doc("channel_health", "email:atencion")
        return bool(doc and doc["status"] == "error")

    await wait_until(failing)
    doc = await rt.store.get_doc("channel_health", "email:atencion")
    assert "AUTHENTICATIONFAILED" in doc["detail"] or "Authentication failed" in doc["detail"]
    events = await rt.store.list_events(kinds=["channel.health"])
    assert events and events[-1].data["status"] == "error"
    monkeypatch.setenv("WRONG_PW", "secret")  # the operator fixes the password; the next reconnect works

    async def ok() -> bool:
        doc = await rt.store.get_doc("channel_health", "email:atencion")
        return bool(doc and doc["status"] == "ok")

    await wait_until(ok, timeout=10)


async def test_unparseable_mail_is_quarantined_and_left_in_place(dovecot: Dovecot, mailbox: str, make_rt,
                                                                 run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot)])
    dovecot.write_maildir(mailbox, [b"Subject: sin remitente\r\n\r\nno hay From\r\n", mail(1)])
    run_worker(rt)
    await wait_until(lambda: _count(rt, 1))
    await wait_until(lambda: _quarantined(rt))
    c = await cursor(rt)
    assert c["last_uid"] == 2
    flags = flags_by_subject(dovecot, mailbox)
    assert b"\\Seen" not in flags["sin remitente"] and b"\\Seen" in flags["Consulta 1"]


async def _quarantined(rt) -> bool:
    return len(await rt.store.list_docs("quarantine")) == 1


async def test_initial_sync_unseen_takes_only_unread_mail(dovecot: Dovecot, mailbox: str, make_rt,
                                                          run_worker) -> None:
    dovecot.write_maildir(mailbox, [mail(1), mail(2)])
    client = dovecot.imap(mailbox)
    try:
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"])[:1], [b"\\Seen"])
    finally:
        client.logout()
    rt = await make_rt([account("atencion", mailbox, dovecot, initial_sync="unseen")])
    run_worker(rt)
    await wait_until(lambda: _count(rt, 1))
    dovecot.lmtp_deliver(mailbox, mail(3))
    await wait_until(lambda: _count(rt, 2))
    await asyncio.sleep(0.3)
    assert await count_messages(rt) == 2 and (await cursor(rt))["last_uid"] == 3


def test_related_groups_keep_senders_and_references_together() -> None:
    from adapters.email.imap import related_groups
    from adapters.email.parse import parse_message

    raws = [mail(1), mail(2), mail(3, sender="otra@example.net", headers={"In-Reply-To": "<mail-1@example.com>"}),
            mail(4, sender="persona2@example.com")]
    items = [(uid, r, parse_message(r, "a"), "") for uid, r in enumerate(raws, 1)] + [(5, b"x", None, "bad")]
    groups = [[uid for uid, *_ in g] for g in related_groups(items)]
    assert sorted(groups) == [[1, 3], [2, 4], [5]]


async def test_reply_by_another_address_in_the_same_batch_threads(dovecot: Dovecot, mailbox: str, make_rt,
                                                                   run_worker) -> None:
    rt = await make_rt([account("atencion", mailbox, dovecot)])
    dovecot.write_maildir(mailbox, [mail(1), mail(2, sender="trabajo@example.org", subject="Re: Consulta 1",
                                                   headers={"In-Reply-To": "<mail-1@example.com>"})])
    run_worker(rt)
    await wait_until(lambda: _count(rt, 2))
    assert await rt.store.count_tickets(TicketFilter(channel="email")) == 1
