"""No loss, no duplicates: Dovecot down while mail arrives; the ingest worker killed with SIGKILL mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.email.conftest import OUR_ADDRESS, OUR_DOMAIN, account, count_messages, mail, wait_until
from tests.support.dovecot import PASSWORD, Dovecot

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    dc = Dovecot()
    dc.start()
    try:
        yield dc
    finally:
        dc.cleanup()


async def test_dovecot_down_while_300_mails_arrive(own_dovecot: Dovecot, make_rt, run_worker) -> None:
    dc = own_dovecot
    user = dc.new_user()
    dc.ensure_maildir(user)
    rt = await make_rt([account("atencion", user, dc)], fetch_batch=50)
    run_worker(rt)
    dc.lmtp_deliver(user, mail("before"))
    await wait_until(lambda: _at_least(rt, 1))

    dc.stop()

    async def down() -> bool:
        doc = await rt.store.get_doc("channel_health", "email:atencion")
        return bool(doc and doc["status"] == "error")

    await wait_until(down)
    dc.write_maildir(user, [mail(i) for i in range(300)])  # the MTA keeps delivering while IMAP is down
    await asyncio.sleep(0.5)
    dc.start()
    await wait_until(lambda: _at_least(rt, 301), timeout=30)
    await asyncio.sleep(0.5)
    assert await count_messages(rt) == 301
    doc = await rt.store.get_doc("channel_health", "email:atencion")
    assert doc["status"] == "ok"
    cursor = await rt.store.get_doc("cursors", "imap:atencion:INBOX")
    assert cursor["last_uid"] == 301


async def _at_least(rt, n: int) -> bool:
    return await count_messages(rt) >= n


def _count(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT external_id) FROM messages WHERE channel='email'")
            total, distinct = row.fetchone()
            return int(total), int(distinct)
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0, 0


def _worker(settings: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INBOX_EMAIL__PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "email", "--settings", str(settings),
                             "--data-dir", str(data)], cwd=ROOT, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)


def test_worker_killed_with_sigkill_mid_batch_gives_exactly_500(dovecot: Dovecot, mailbox: str,
                                                                tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f"""
[email]
message_id_domain = "{OUR_DOMAIN}"
fetch_batch = 20
reconnect_min_s = 0.2
[[email.accounts]]
name = "atencion"
address = "{OUR_ADDRESS}"
imap_host = "127.0.0.1"
imap_port = {dovecot.imap_port}
imap_tls = false
imap_user = "{mailbox}"
""", encoding="utf-8")
    data, log = tmp_path / "data", tmp_path / "worker.log"
    db = data / "inbox.sqlite3"
    dovecot.write_maildir(mailbox, [mail(i, sender=f"p{i % 97}@example.com") for i in range(500)])

    proc = _worker(settings, data, log)
    try:
        _wait(lambda: _count(db)[0] >= 120, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = _count(db)[0]
        assert at_kill < 500, "the worker finished before it could be killed"
        proc = _worker(settings, data, log)
        _wait(lambda: _count(db)[0] >= 500, timeout=90)
        time.sleep(1.0)  # anything extra (a duplicate) would show up now
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert _count(db) == (500, 500)
    client = dovecot.imap(mailbox)
    try:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["UNSEEN"]) == []
    finally:
        client.logout()
