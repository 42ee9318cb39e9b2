"""Inbound mail: one watcher per mailbox, IMAP IDLE when offered (polling otherwise), never losing a mail.

Per mailbox the cursor ``cursors/imap:<account>:<folder>`` holds UIDVALIDITY and the highest UID whose mail is
committed. A sync fetches every UID above it (``BODY.PEEK[]``, so nothing is marked read before it is stored),
ingests the batch, applies the post-commit action (\\Seen, move, or leave), and only then advances the cursor. A
crash anywhere re-fetches at most one batch, which the pipeline dedupes (Message-ID + content hash). A changed
UIDVALIDITY re-reads the whole folder with the same dedupe. Failures reconnect with exponential backoff and show
as the channel's health (``channel_health/email:<account>`` and a ``channel.health`` event).

imapclient is synchronous: each watcher drives its connection from one thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient

from adapters.email.parse import ParseOptions, parse_message
from adapters.email.settings import EmailAccount, EmailSettings
from adapters.email.tls import describe_tls_error, tls_context
from inbox.domain import InboundMessage, utcnow
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)
CHANNEL = "email"
CURSORS = "cursors"
SEEN = b"\\Seen"
MAX_ATTEMPTS_PER_MAIL = 3  # a mail that keeps crashing the pipeline is quarantined rather than blocking the box
_CHANGES = {b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"}


class Disconnected(ConnectionError):
    pass


Item = tuple[int, bytes, "InboundMessage | None", str]  # (uid, raw, parsed or None, parse error)


def related_groups(items: list[Item]) -> list[list[Item]]:
    """Split a batch into groups that must be ingested in order: mails of one sender, and mails that reference
    (In-Reply-To/References) another mail of the batch, end up in one group (union-find), in UID order."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_sender: dict[str, int] = {}
    by_id: dict[str, int] = {}
    for i, (_, _, inbound, _) in enumerate(items):
        if inbound is None:
            continue
        sender = inbound.sender.value
        if sender in by_sender:
            union(i, by_sender[sender])
        by_sender.setdefault(sender, i)
        by_id.setdefault(inbound.external_id, i)
    for i, (_, _, inbound, _) in enumerate(items):
        if inbound is None:
            continue
        for ref in [inbound.hints.in_reply_to, *inbound.hints.references]:
            if ref and ref in by_id:
                union(i, by_id[ref])
    groups: dict[int, list[Item]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[find(i)].append(item)
    return list(groups.values())


def cursor_key(account: EmailAccount) -> str:
    return f"imap:{account.name}:{account.folder}"


def open_client(account: EmailAccount, password: str, timeout: float) -> IMAPClient:
    """Connect (implicit TLS or STARTTLS) and log in. With STARTTLS configured, a server that does not offer it (or
    whose certificate fails) is an error: the password is never sent in plain text instead."""
    client = IMAPClient(account.imap_host, port=account.imap_port, ssl=account.imap_tls,
                        ssl_context=tls_context(account) if account.imap_tls else None, timeout=timeout)
    try:
        if account.imap_starttls and not account.imap_tls:
            client.starttls(tls_context(account))
        client.login(account.login, password)
    except BaseException:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise
    return client


def append_message(account: EmailAccount, password: str, folder: str, data: bytes, timeout: float) -> None:
    """APPEND a mail (marked \\Seen) to ``folder``, creating the folder when missing."""
    client = open_client(account, password, timeout)
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        client.append(folder, data, flags=(SEEN,))
    finally:
        with contextlib.suppress(Exception):
            client.logout()


@dataclass
class MailboxState:
    uidvalidity: int
    uidnext: int | None
    idle: bool


def has_buffered_input(client: IMAPClient) -> bool:
    """Whether server data is waiting, in imaplib's read buffer or on the socket, without blocking."""
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))  # imapclient exposes no public way to see its buffer
    except OSError:  # nothing to read (BlockingIOError; TLS: SSLWantReadError)
        return False
    finally:
        sock.settimeout(timeout)


class ImapConnection:
    """The synchronous side: every method runs in the watcher's own thread."""

    def __init__(self, account: EmailAccount, password: str, timeout: float):
        self.account = account
        self.password = password
        self.timeout = timeout
        self.client: IMAPClient | None = None
        self.can_move = False

    def connect(self) -> MailboxState:
        self.client = open_client(self.account, self.password, self.timeout)
        caps = set(self.client.capabilities())
        self.can_move = b"MOVE" in caps
        if self.account.after_commit == "move" and not self.client.folder_exists(self.account.move_folder):
            self.client.create_folder(self.account.move_folder)
        info = self.client.select_folder(self.account.folder)
        return MailboxState(int(info[b"UIDVALIDITY"]), int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None,
                            b"IDLE" in caps and self.account.idle)

    def _c(self) -> IMAPClient:
        if self.client is None:
            raise Disconnected("not connected")
        return self.client

    def uids_after(self, last_uid: int) -> list[int]:
        found = self._c().search(["UID", f"{last_uid + 1}:*"])
        return sorted(int(u) for u in found if int(u) > last_uid)

    def unseen_uids(self) -> list[int]:
        return sorted(int(u) for u in self._c().search(["UNSEEN"]))

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        data = self._c().fetch(uids, ["BODY.PEEK[]"])
        out: dict[int, bytes] = {}
        for uid, item in data.items():
            body = item.get(b"BODY[]")
            if isinstance(body, bytes):
                out[int(uid)] = body
        return out

    def after_commit(self, uids: list[int]) -> None:
        if not uids or self.account.after_commit == "leave":
            return
        client = self._c()
        if self.account.after_commit == "seen":
            client.add_flags(uids, [SEEN], silent=True)
        elif self.can_move:
            client.move(uids, self.account.move_folder)
        else:
            client.copy(uids, self.account.move_folder)
            client.delete_messages(uids, silent=True)
            if b"UIDPLUS" in set(client.capabilities()):
                client.uid_expunge(uids)
            else:
                client.expunge()

    def wait(self, seconds: float, use_idle: bool, stop: threading.Event, last_uid: int) -> None:
        """Return when the mailbox may have changed, after ``seconds``, or soon after ``stop`` is set."""
        client = self._c()
        deadline = time.monotonic() + seconds
        if not use_idle:
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            client.noop()
            return
        # A mail that arrived while we were storing the last batch was announced (EXISTS) in the answer to one of
        # those commands, and IDLE will not announce it again: look before idling.
        if self.uids_after(last_uid):
            return
        client.idle()
        # The server may announce a mail that arrived just before IDLE right after its "+ idling" (Dovecot does).
        # When both came in one read, imaplib holds that announcement in its buffer, where poll() cannot see it.
        changed = has_buffered_input(client)
        try:
            while not stop.is_set() and time.monotonic() < deadline and not changed:
                started = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                for resp in responses:
                    if len(resp) > 1 and resp[1] in _CHANGES:
                        changed = True
                    if resp and resp[0] == b"BYE":
                        raise Disconnected("server said BYE")
                if not responses and time.monotonic() - started < 0.5:
                    break  # woke up with nothing to read: the socket is probably closed; DONE will tell
        finally:
            client.idle_done()

    def close(self, graceful: bool = True) -> None:
        """LOGOUT when the session is healthy; after a failure just drop the socket (no round trip to wait on)."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if not graceful:
                raise ConnectionAbortedError
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()


class MailboxWatcher:
    """The async side: sync loop, cursor, ingest, post-commit action, reconnect with backoff, health."""

    def __init__(self, rt: Runtime, settings: EmailSettings, account: EmailAccount, options: ParseOptions):
        self.rt = rt
        self.settings = settings
        self.account = account
        self.options = options
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imap-{account.name}")
        self.stop_flag = threading.Event()
        self.failures: dict[tuple[int, int], int] = defaultdict(int)
        self.health: tuple[bool, str] | None = None
        self.stats = {"ingested": 0, "duplicate": 0, "quarantined": 0, "syncs": 0, "connects": 0}

    async def _io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _report(self, ok: bool, detail: str) -> None:
        if self.health == (ok, detail):
            return
        self.health = (ok, detail)
        try:
            await report_health(self.rt.store, CHANNEL, self.account.name, ok, detail)
        except Exception:
            log.exception("cannot record health of %s", self.account.name)

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.settings.reconnect_min_s
        stopper = asyncio.create_task(self._relay_stop(stop))
        try:
            while not stop.is_set():
                conn = ImapConnection(self.account, self.account.password(self.settings.password),
                                      self.settings.timeout_s)
                failed = False
                connects = self.stats["connects"]
                try:
                    await self._session(conn, stop)
                    delay = self.settings.reconnect_min_s
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failed = True
                    if self.stats["connects"] > connects:  # it worked for a while: start the backoff afresh
                        delay = self.settings.reconnect_min_s
                    detail = f"{type(exc).__name__}: {exc}"[:400] + describe_tls_error(exc)
                    log.warning("mailbox %s: %s; reconnecting in %.1f s", self.account.name, detail, delay)
                    await self._io(conn.close, False)
                    await self._report(False, detail)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(self.settings.reconnect_max_s, delay * 2)
                finally:
                    if not failed:
                        await self._io(conn.close)
        finally:
            stopper.cancel()
            self.executor.shutdown(wait=False)

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop_flag.set()

    async def _session(self, conn: ImapConnection, stop: asyncio.Event) -> None:
        state: MailboxState = await self._io(conn.connect)
        self.stats["connects"] += 1
        mode = "IDLE" if state.idle else f"polling every {self.account.poll_interval_s:g} s"
        await self._report(True, f"{self.account.folder}: {mode}")
        while not stop.is_set():
            last_uid = await self.sync(conn, state)
            if stop.is_set():
                break
            wait_s = min(self.account.poll_interval_s, self.settings.idle_renew_s) if state.idle \
                else self.account.poll_interval_s
            await self._io(conn.wait, wait_s, state.idle, self.stop_flag, last_uid)

    # -- sync ------------------------------------------------------------------------------------------------------
    async def _start_uid(self, conn: ImapConnection, state: MailboxState) -> tuple[int, list[int] | None]:
        """The UID to fetch after, or an explicit UID list (initial "unseen" sync)."""
        key = cursor_key(self.account)
        cursor = await self.rt.store.get_doc(CURSORS, key)
        if cursor is not None and int(cursor.get("uidvalidity", -1)) == state.uidvalidity:
            return int(cursor.get("last_uid", 0)), None
        if cursor is not None:
            log.warning("mailbox %s: UIDVALIDITY changed (%s → %s); re-reading the folder, duplicates are dropped",
                        self.account.name, cursor.get("uidvalidity"), state.uidvalidity)
            await self._save_cursor(state.uidvalidity, 0, resync=True)
            return 0, None
        if self.account.initial_sync == "none":
            last = (state.uidnext or 1) - 1
            await self._save_cursor(state.uidvalidity, last)
            return last, None
        if self.account.initial_sync == "unseen":
            return 0, await self._io(conn.unseen_uids)
        return 0, None

    async def _save_cursor(self, uidvalidity: int, last_uid: int, resync: bool = False) -> None:
        key = cursor_key(self.account)
        doc = await self.rt.store.get_doc(CURSORS, key) or {}
        doc.update({"uidvalidity": uidvalidity, "last_uid": last_uid, "at": utcnow().isoformat(),
                    "account": self.account.name, "folder": self.account.folder})
        if resync:
            doc["resyncs"] = int(doc.get("resyncs", 0)) + 1
            doc["last_resync_at"] = doc["at"]
        await self.rt.store.put_doc(CURSORS, key, doc)

    async def sync(self, conn: ImapConnection, state: MailboxState) -> int:
        """Fetch and ingest everything above the cursor; returns the highest UID now covered by the cursor."""
        self.stats["syncs"] += 1
        last_uid, explicit = await self._start_uid(conn, state)
        uids = explicit if explicit is not None else await self._io(conn.uids_after, last_uid)
        size = self.settings.fetch_batch
        batches = [uids[i:i + size] for i in range(0, len(uids), size)]
        # The next batch is fetched (in the connection's thread) while this one is parsed and stored.
        pending: asyncio.Future[dict[int, bytes]] | None = None
        try:
            for n, batch in enumerate(batches):
                raws: dict[int, bytes] = await (pending or self._io(conn.fetch, batch))
                pending = asyncio.ensure_future(self._io(conn.fetch, batches[n + 1])) if n + 1 < len(batches) \
                    else None
                act_on = await self.ingest_batch(state.uidvalidity,
                                                 [(uid, raws[uid]) for uid in batch if uid in raws])
                await self._io(conn.after_commit, act_on)
                last_uid = max(last_uid, *batch)
                await self._save_cursor(state.uidvalidity, last_uid)
        finally:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
        if explicit is not None:  # initial "unseen" sync: from now on, everything above what existed at SELECT
            last_uid = max(last_uid, (state.uidnext or 1) - 1)
            await self._save_cursor(state.uidvalidity, last_uid)
        return last_uid

    async def ingest_batch(self, uidvalidity: int, items: list[tuple[int, bytes]]) -> list[int]:
        """Parse and ingest one batch. Related mails (same sender, or one referencing another of the batch) go one
        after the other in UID order, so a reply finds its original; unrelated ones go concurrently. Returns the
        UIDs the post-commit action applies to."""
        parsed: list[Item] = []
        for uid, raw in items:
            try:
                inbound: InboundMessage | None = parse_message(raw, self.account.name, options=self.options)
                error = ""
            except Exception as exc:  # MalformedEmail or a parser bug: quarantined, never lost
                inbound, error = None, f"{type(exc).__name__}: {exc}"
            parsed.append((uid, raw, inbound, error))
        results = await asyncio.gather(*(self._ingest_group(uidvalidity, g) for g in related_groups(parsed)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # after every group finished: the batch is fetched again and deduped
        return sorted(uid for group in results if not isinstance(group, BaseException) for uid in group)

    async def _ingest_group(self, uidvalidity: int, group: list[Item]) -> list[int]:
        act_on = []
        for uid, raw, inbound, error in group:
            status = await self._ingest_one(uidvalidity, uid, raw, inbound, error)
            self.stats[status] = self.stats.get(status, 0) + 1
            if status != "quarantined":  # a quarantined mail stays where it is for a person to look at
                act_on.append(uid)
        return act_on

    async def _ingest_one(self, uidvalidity: int, uid: int, raw: bytes, inbound: InboundMessage | None,
                          error: str) -> str:
        pipeline = self.rt.pipeline
        if inbound is None:
            return (await pipeline.quarantine(raw, CHANNEL, self.account.name, error)).status
        inbound.meta["imap"] = {"folder": self.account.folder, "uid": uid, "uidvalidity": uidvalidity}
        try:
            return (await pipeline.ingest(inbound)).status
        except Exception as exc:
            key = (uidvalidity, uid)
            self.failures[key] += 1
            if self.failures[key] < MAX_ATTEMPTS_PER_MAIL:
                raise  # the session restarts and this batch is fetched again
            log.exception("mailbox %s: UID %s failed %d times; quarantined", self.account.name, uid,
                          self.failures[key])
            return (await pipeline.quarantine(raw, CHANNEL, self.account.name,
                                              f"ingest failed: {type(exc).__name__}: {exc}")).status


async def run_watchers(rt: Runtime, settings: EmailSettings, options: ParseOptions, stop: asyncio.Event) -> None:
    """The ``email`` worker: one watcher per configured mailbox until ``stop``."""
    if not settings.accounts:
        log.warning("email worker: no [[email.accounts]] configured; nothing to watch")
        await stop.wait()
        return
    watchers = [MailboxWatcher(rt, settings, account, options) for account in settings.accounts]
    rt.services["email.watchers"] = watchers
    await asyncio.gather(*(w.run(stop) for w in watchers))
