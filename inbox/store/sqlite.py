"""SQLite store: the embedded default. One file in the data directory, WAL, versioned migrations, FTS5 search.

All SQL runs on one dedicated thread per store (sqlite3 connections are not shareable across threads); every write
that must be atomic is one ``BEGIN IMMEDIATE`` transaction, which also serializes writers across processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from inbox.domain import (
    Contact,
    DeliveryStatus,
    Event,
    EventKind,
    Identity,
    Job,
    Message,
    Page,
    Ticket,
    TicketFilter,
    TicketStatus,
    normalize_identity_value,
    utcnow,
)
from inbox.store import search_index
from inbox.store.base import (
    KEPT_MESSAGE_META,
    SORTS,
    IngestPlan,
    IngestResult,
    JobSpec,
    NewEvent,
    NotFound,
    Store,
    StoreError,
    TicketChanges,
    decode_cursor,
    encode_cursor,
    plan_ticket_changes,
)
from inbox.store.codec import (
    attachments_from_json,
    attachments_to_json,
    dumps,
    identity_or_none,
    parse_ts,
    tags_from_json,
    tags_to_json,
    ts,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# The search index's rows joined to their tickets (a ticket's parts share its number: see search_index.py).
_MATCHES = f"search_fts CROSS JOIN tickets t ON t.number = (search_fts.rowid >> {search_index.PART_BITS})"
_SORT_COLUMNS = {"last_activity": "last_activity_at", "created": "created_at", "number": "number"}
# What unicode61 treats as one token: letters and digits (``\w`` without the underscore, a separator there).
_FTS_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def fts_query(text: str) -> str | None:
    """Turn user input into a safe FTS5 query: every word must match, the last one as a prefix."""
    words = _FTS_TOKEN.findall(unicodedata.normalize("NFC", text))
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " AND ".join(quoted)


def _unless_phrase(fn: Callable[[], T], nothing: T) -> T:
    """``fn()``, or ``nothing`` when a query word is several tokens to unicode61 (a few letters whose Unicode class
    changed after the tables SQLite uses): the index keeps no positions (detail=none), so FTS5 refuses the phrase."""
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        if "phrase queries are not supported" not in str(exc):
            raise
        return nothing


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("inbox.store.migrations").iterdir():
        m = re.match(r"(\d+)_(\w+)\.sql$", entry.name)
        if m:
            out.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out)


class SQLiteStore(Store):
    CHECKPOINT_EVERY_S = 0.5
    WAL_BACKSTOP_PAGES = 25_000  # 100 MiB of WAL

    def __init__(self, path: str | Path, readers: int = 2):
        self.path = Path(path)
        # One writer thread (SQLite has one writer anyway) and a few reader threads with their own connections:
        # WAL lets reads run while a write transaction is open.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-w")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-r")
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._open = False
        # group commit: inbound commits queued while a write is in flight share one transaction
        self._batch: list[tuple[IngestPlan, asyncio.Future[IngestResult]]] = []
        self._flushing = False
        self._checkpointer: threading.Thread | None = None
        self._checkpoints_stop = threading.Event()

    # -- plumbing --------------------------------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run on the writer thread (writes, and reads that must see the writer's own state)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, fn, *args)

    def _point(self, fn: Callable[[], T]) -> T:
        """Point reads by key run inline on the event loop's own connection: they take microseconds, less than a
        hop to a thread would cost."""
        return fn()

    @property
    def conn(self) -> sqlite3.Connection:
        """The calling thread's connection: the writer's on the writer thread, a reader's elsewhere."""
        if not self._open or self._conn is None:
            raise StoreError("store is not open")
        if threading.current_thread().name.startswith("sqlite-w"):
            return self._conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_connection()
            self._reader_conns.append(conn)
        return conn

    def _new_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: random-key index pages of a big store stay hot
        conn.execute("PRAGMA mmap_size=4294967296")
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._new_connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # The checkpointer thread copies the WAL back into the database file, off the writer's commits. The
        # writer's own automatic checkpoint stays as a backstop: under a write load that never pauses, a checkpoint
        # running beside the writer never catches up with it, and the WAL only restarts from its beginning after a
        # checkpoint that did.
        conn.execute(f"PRAGMA wal_autocheckpoint={self.WAL_BACKSTOP_PAGES}")
        self._conn = conn
        self._open = True
        self._checkpoints_stop.clear()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = self._new_connection()
        try:
            while not self._checkpoints_stop.wait(self.CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy or I/O: the next round, or the writer's backstop, will do it
                    log.warning("checkpoint failed: %s", exc)
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    async def open(self) -> None:
        await self._call(self._connect)
        await self.migrate()

    async def close(self) -> None:
        self._checkpoints_stop.set()
        if self._checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._call(_close)
        self._open = False
        self._executor.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()

    async def migrate(self) -> list[str]:
        return await self._call(self._migrate)

    def _migrate(self) -> list[str]:
        conn = self.conn
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, at TEXT)")
        applied = []
        for version, name, sql in _migrations():
            with self._tx() as c:
                if c.execute("SELECT 1 FROM schema_migrations WHERE version=?", (version,)).fetchone():
                    continue
                for statement in _split_sql(sql):
                    c.execute(statement)
                c.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, ts(utcnow())))
                applied.append(f"{version:04d}_{name}")
        return applied

    # -- row mapping -----------------------------------------------------------------------------------------------
    def _contact(self, row: sqlite3.Row) -> Contact:
        idents = [
            Identity(r["kind"], r["value"], r["display_name"], r["handle"])
            for r in self.conn.execute(
                "SELECT * FROM identities WHERE contact_id=? ORDER BY kind, value", (row["id"],)
            )
        ]
        return Contact(row["id"], row["name"], idents, row["merged_into"], parse_ts(row["created_at"]) or utcnow())

    @staticmethod
    def _ticket(row: sqlite3.Row) -> Ticket:
        return Ticket(
            id=row["id"],
            number=row["number"],
            status=row["status"],
            channel=row["channel"],
            contact_id=row["contact_id"],
            subject=row["subject"],
            tags=tags_from_json(json.loads(row["tags"])),
            assignee=row["assignee"],
            queue=row["queue"],
            priority=row["priority"],
            created_at=parse_ts(row["created_at"]) or utcnow(),
            first_response_at=parse_ts(row["first_response_at"]),
            resolved_at=parse_ts(row["resolved_at"]),
            last_activity_at=parse_ts(row["last_activity_at"]) or utcnow(),
            message_count=row["message_count"],
            meta=json.loads(row["meta"]),
        )

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        return Message(
            id=row["id"],
            ticket_id=row["ticket_id"],
            direction=row["direction"],
            channel=row["channel"],
            account=row["account"],
            external_id=row["external_id"],
            author=identity_or_none(row["author_kind"], row["author_value"], row["author_name"]),
            text=row["text"],
            html=row["html"],
            subject=row["subject"],
            attachments=attachments_from_json(json.loads(row["attachments"])),
            raw_ref=row["raw_ref"],
            sent_at=parse_ts(row["sent_at"]),
            received_at=parse_ts(row["received_at"]) or utcnow(),
            delivery_status=row["delivery_status"],
            delivery_error=row["delivery_error"],
            author_user=row["author_user"],
            flags=json.loads(row["flags"]),
            meta=json.loads(row["meta"]),
        )

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"],
            kind=row["kind"],
            payload=json.loads(row["payload"]),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            not_before=parse_ts(row["not_before"]) or utcnow(),
            status=row["status"],
            lease_until=parse_ts(row["lease_until"]),
            worker=row["worker"],
            last_error=row["last_error"],
            created_at=parse_ts(row["created_at"]) or utcnow(),
        )

    # -- contacts --------------------------------------------------------------------------------------------------
    async def get_contact(self, contact_id: str) -> Contact | None:
        def run() -> Contact | None:
            row = self.conn.execute("SELECT * FROM contacts WHERE id=?", (contact_id,)).fetchone()
            return self._contact(row) if row else None

        return self._point(run)

    async def find_contact_by_identity(self, kind: str, value: str) -> Contact | None:
        def run() -> Contact | None:
            row = self.conn.execute(
                "SELECT c.* FROM identities i JOIN contacts c ON c.id = i.contact_id WHERE i.kind=? AND i.value=?",
                (kind, normalize_identity_value(kind, value)),
            ).fetchone()
            return self._contact(row) if row else None

        return self._point(run)

    def _insert_contact(self, c: sqlite3.Connection, contact: Contact, actor: str) -> None:
        c.execute(
            "INSERT INTO contacts (id, name, merged_into, created_at) VALUES (?, ?, NULL, ?)",
            (contact.id, contact.name, ts(contact.created_at)),
        )
        for ident in contact.identities:
            self._insert_identity(c, contact.id, ident)
        self._event(c, EventKind.CONTACT_CREATED, None, actor, {"contact_id": contact.id})

    @staticmethod
    def _insert_identity(c: sqlite3.Connection, contact_id: str, ident: Identity) -> None:
        value = normalize_identity_value(ident.kind, ident.value)
        owner = c.execute("SELECT contact_id FROM identities WHERE kind=? AND value=?", (ident.kind, value)).fetchone()
        if owner is not None:
            if owner["contact_id"] != contact_id:
                raise StoreError(f"identity {ident.kind}:{value} already belongs to contact {owner['contact_id']}")
            return
        c.execute(
            "INSERT INTO identities (kind, value, contact_id, display_name, handle) VALUES (?, ?, ?, ?, ?)",
            (ident.kind, value, contact_id, ident.display_name, ident.handle),
        )

    async def create_contact(self, contact: Contact, actor: str) -> Contact:
        def run() -> None:
            with self._tx() as c:
                self._insert_contact(c, contact, actor)

        await self._call(run)
        return contact

    async def add_identity(self, contact_id: str, identity: Identity, actor: str) -> None:
        def run() -> None:
            with self._tx() as c:
                self._insert_identity(c, contact_id, identity)

        await self._call(run)

    async def merge_contacts(self, keep_id: str, other_id: str, actor: str) -> str:
        if keep_id == other_id:
            raise StoreError("cannot merge a contact into itself")

        def run() -> str:
            with self._tx() as c:
                for cid in (keep_id, other_id):
                    if not c.execute("SELECT 1 FROM contacts WHERE id=?", (cid,)).fetchone():
                        raise NotFound(f"contact {cid}")
                idents = [
                    [r["kind"], r["value"]]
                    for r in c.execute("SELECT kind, value FROM identities WHERE contact_id=?", (other_id,))
                ]
                tickets = [r["id"] for r in c.execute("SELECT id FROM tickets WHERE contact_id=?", (other_id,))]
                merge_id = uuid.uuid4().hex
                record = {"keep": keep_id, "other": other_id, "identities": idents, "tickets": tickets,
                          "by": actor, "at": ts(utcnow()), "undone": False}
                c.execute("UPDATE identities SET contact_id=? WHERE contact_id=?", (keep_id, other_id))
                c.execute("UPDATE tickets SET contact_id=? WHERE contact_id=?", (keep_id, other_id))
                c.execute("UPDATE contacts SET merged_into=? WHERE id=?", (keep_id, other_id))
                self._put_doc(c, "merges", merge_id, record)
                search_index.refresh_contact(c, keep_id)
                self._event(c, EventKind.CONTACT_MERGED, None, actor,
                            {"merge_id": merge_id, "keep": keep_id, "other": other_id, "tickets": tickets})
                return merge_id

        return await self._call(run)

    async def unmerge_contacts(self, merge_id: str, actor: str) -> None:
        def run() -> None:
            with self._tx() as c:
                record = self._get_doc(c, "merges", merge_id)
                if record is None:
                    raise NotFound(f"merge {merge_id}")
                if record["undone"]:
                    raise StoreError(f"merge {merge_id} was already undone")
                other, keep = record["other"], record["keep"]
                for kind, value in record["identities"]:
                    c.execute("UPDATE identities SET contact_id=? WHERE kind=? AND value=?", (other, kind, value))
                for tid in record["tickets"]:
                    c.execute("UPDATE tickets SET contact_id=? WHERE id=?", (other, tid))
                c.execute("UPDATE contacts SET merged_into=NULL WHERE id=?", (other,))
                record["undone"] = True
                self._put_doc(c, "merges", merge_id, record)
                search_index.refresh_contact(c, keep)
                search_index.refresh_contact(c, other)
                self._event(c, EventKind.CONTACT_UNMERGED, None, actor,
                            {"merge_id": merge_id, "keep": keep, "other": other, "tickets": record["tickets"]})

        await self._call(run)

    async def search_contacts(self, query: str, limit: int = 20) -> list[Contact]:
        def run() -> list[Contact]:
            like = f"%{query.strip().lower()}%"
            rows = self.conn.execute(
                "SELECT DISTINCT c.* FROM contacts c LEFT JOIN identities i ON i.contact_id = c.id "
                "WHERE c.merged_into IS NULL AND (lower(c.name) LIKE ? OR i.value LIKE ? OR lower(i.display_name) "
                "LIKE ?) LIMIT ?",
                (like, like, like, limit),
            ).fetchall()
            return [self._contact(r) for r in rows]

        return await self._read(run)

    # -- tickets ---------------------------------------------------------------------------------------------------
    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        def run() -> Ticket | None:
            row = self.conn.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,)).fetchone()
            return self._ticket(row) if row else None

        return self._point(run)

    async def get_ticket_by_number(self, number: int) -> Ticket | None:
        def run() -> Ticket | None:
            row = self.conn.execute("SELECT * FROM tickets WHERE number=?", (number,)).fetchone()
            return self._ticket(row) if row else None

        return self._point(run)

    @staticmethod
    def _where(flt: TicketFilter | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if flt is None:
            return where, params
        if flt.status:
            where.append(f"t.status IN ({','.join('?' * len(flt.status))})")
            params.extend(flt.status)
        for column, value in (("channel", flt.channel), ("queue", flt.queue), ("assignee", flt.assignee),
                              ("tramite", flt.tramite), ("agency", flt.agency), ("contact_id", flt.contact_id)):
            if value is not None:
                where.append(f"t.{column} = ?")
                params.append(value)
        if flt.unassigned:
            where.append("t.assignee IS NULL")
        return where, params  # flt.text: see _search

    async def list_tickets(
        self, flt: TicketFilter | None = None, sort: str = "last_activity", cursor: str | None = None, limit: int = 50
    ) -> Page:
        """With ``flt.text`` the tickets come newest first by number whatever ``sort`` is (see ``_search``); the
        cursor keeps its [sort key, number] form and only its number is used."""
        if sort not in SORTS:
            raise StoreError(f"unknown sort {sort!r}")
        column = _SORT_COLUMNS[sort]

        def run() -> Page:
            where, params = self._where(flt)
            after = decode_cursor(cursor) if cursor else None
            if after is not None and len(after) != 2:
                raise StoreError("invalid cursor")
            if flt is not None and flt.text:
                nothing: list[sqlite3.Row] = []
                rows = _unless_phrase(lambda: self._search(flt.text or "", where, params, after[1] if after else None,
                                                           limit + 1), nothing)
            else:
                if after is not None:
                    key, number = after
                    if column == "number":
                        where.append("t.number < ?")
                        params.append(number)
                    else:
                        where.append(f"(t.{column}, t.number) < (?, ?)")
                        params.extend([key, number])
                order = "t.number DESC" if column == "number" else f"t.{column} DESC, t.number DESC"
                sql = "SELECT t.* FROM tickets t"
                if where:
                    sql += " WHERE " + " AND ".join(where)
                sql += f" ORDER BY {order} LIMIT ?"
                rows = self.conn.execute(sql, [*params, limit + 1]).fetchall()
            items = [self._ticket(r) for r in rows[:limit]]
            next_cursor = None
            if len(rows) > limit:
                last = rows[limit - 1]
                next_cursor = encode_cursor([last[column], last["number"]])
            return Page(items, next_cursor)

        return await self._read(run)

    # -- full-text search ------------------------------------------------------------------------------------------
    # The index has one row per ticket, or a few parts for a very long thread (``search_fts``, rowid = ticket number
    # << PART_BITS | part; see search_index.py). A search walks the matches in rowid order, newest ticket first, joins
    # each to its ticket for the other filters, skips a ticket's further parts and stops when the page is full, so it
    # costs the matches walked (~0.5 µs each), not the matches found; its results are ordered by ticket number. When
    # the filters keep few of many matches (a common word in one agent's tickets) the walk may read most of the index
    # (~0.5 s at a million): after SEARCH_WALK_S it gives way to the other direction when the filtered tickets are at
    # most SEARCH_PROBE_MAX: they are probed in the index, newest first (~20-40 µs each). Counts with text stop at
    # SEARCH_COUNT_CAP.
    SEARCH_WALK_S = 0.05
    SEARCH_PROBE_MAX = 20_000
    SEARCH_PROBE_CHUNK = 256
    SEARCH_COUNT_CAP = 10_000

    def _within(self, seconds: float, fn: Callable[[], T]) -> T | None:
        """``fn()`` on this thread's connection, or None if it ran past ``seconds`` (the statement is interrupted)."""
        conn = self.conn
        deadline = time.monotonic() + seconds
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1_000)
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc):
                raise
            return None
        finally:
            conn.set_progress_handler(None, 0)

    def _walk_sql(self, where: list[str], before: int | None, select: str) -> str:
        """The matches of ``MATCH ?`` (then ``rowid < ?`` with ``before``, then the filters' parameters) joined to
        their tickets, newest first; a ticket with several matching parts comes once per part, one after the other."""
        rowid = " AND search_fts.rowid < ?" if before is not None else ""
        filters = "".join(f" AND {w}" for w in where)
        return (f"SELECT {select} FROM {_MATCHES} WHERE search_fts MATCH ?{rowid}{filters} "
                "ORDER BY search_fts.rowid DESC")

    @staticmethod
    def _walk(conn: sqlite3.Connection, sql: str, args: list[Any], limit: int) -> list[sqlite3.Row]:
        """The first ``limit`` tickets of a walk, each once; stepping stops there."""
        rows: list[sqlite3.Row] = []
        last = None
        for row in conn.execute(sql, args):
            if row["number"] != last:
                last = row["number"]
                rows.append(row)
                if len(rows) >= limit:
                    break
        return rows

    def _probe(self, q: str, where: list[str], params: list[Any], before: int | None,
               limit: int) -> list[int] | None:
        """The filtered tickets (numbers below ``before``) that match ``q``, newest first, at most ``limit``; None
        when there are more than SEARCH_PROBE_MAX filtered tickets."""
        conn = self.conn
        sql = "SELECT t.number FROM tickets t WHERE " + " AND ".join(where or ["1"])
        args = list(params)
        if before is not None:
            sql += " AND t.number < ?"
            args.append(before)
        numbers = [r[0] for r in conn.execute(sql + " LIMIT ?", [*args, self.SEARCH_PROBE_MAX + 1])]
        if len(numbers) > self.SEARCH_PROBE_MAX:
            return None
        numbers.sort(reverse=True)
        bits, last_part = search_index.PART_BITS, search_index.LAST_PART
        found: list[int] = []
        for i in range(0, len(numbers), self.SEARCH_PROBE_CHUNK):
            part = numbers[i:i + self.SEARCH_PROBE_CHUNK]
            hits = {r[0] for r in conn.execute(
                f"SELECT n.value FROM json_each(?) AS n WHERE EXISTS (SELECT 1 FROM search_fts "
                f"WHERE search_fts MATCH ? AND search_fts.rowid BETWEEN n.value << {bits} "
                f"AND (n.value << {bits}) | {last_part})", [json.dumps(part), q])}
            found.extend(n for n in part if n in hits)
            if len(found) >= limit:
                break
        return found[:limit]

    def _search(self, text: str, where: list[str], params: list[Any], before: int | None,
                limit: int) -> list[sqlite3.Row]:
        q = fts_query(text)
        if q is None:
            return []
        conn = self.conn
        bound = [search_index.first_rowid(before)] if before is not None else []
        sql = self._walk_sql(where, before, "t.*")
        args = [q, *bound, *params]
        if not where:  # every match is a hit: the walk stops after ``limit`` tickets
            return self._walk(conn, sql, args, limit)
        rows = self._within(self.SEARCH_WALK_S, lambda: self._walk(conn, sql, args, limit))
        if rows is not None:
            return rows
        numbers = self._probe(q, where, params, before, limit)
        if numbers is None:  # many filtered tickets too: the walk, to its end
            return self._walk(conn, sql, args, limit)
        if not numbers:
            return []
        return conn.execute(f"SELECT t.* FROM tickets t WHERE t.number IN ({','.join('?' * len(numbers))}) "
                            "ORDER BY t.number DESC", numbers).fetchall()

    def _count_search(self, text: str, where: list[str], params: list[Any]) -> int:
        q = fts_query(text)
        if q is None:
            return 0
        conn = self.conn
        cap = self.SEARCH_COUNT_CAP
        bits = search_index.PART_BITS
        if not where:
            return int(conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT rowid >> {bits} FROM search_fts "
                                    "WHERE search_fts MATCH ? LIMIT ?)", (q, cap)).fetchone()[0])
        # the walk to its end at worst (~0.5 s at a million matches): counts are fetched after the page, and cached
        filters = "".join(f" AND {w}" for w in where)
        sql = (f"SELECT count(*) FROM (SELECT DISTINCT t.number FROM {_MATCHES} WHERE search_fts MATCH ?{filters} "
               "LIMIT ?)")
        return int(conn.execute(sql, [q, *params, cap]).fetchone()[0])

    async def count_tickets(self, flt: TicketFilter | None = None) -> int:
        """Exact without ``flt.text``; with it, counting stops at SEARCH_COUNT_CAP (the UI shows "10.000+")."""
        def run() -> int:
            where, params = self._where(flt)
            if flt is not None and flt.text:
                return _unless_phrase(lambda: self._count_search(flt.text or "", where, params), 0)
            sql = "SELECT count(*) FROM tickets t" + (" WHERE " + " AND ".join(where) if where else "")
            return int(self.conn.execute(sql, params).fetchone()[0])

        return await self._read(run)

    async def update_ticket(self, ticket_id: str, changes: TicketChanges, actor: str) -> Ticket:
        def run() -> Ticket:
            with self._tx() as c:
                row = c.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,)).fetchone()
                if row is None:
                    raise NotFound(f"ticket {ticket_id}")
                ticket = self._ticket(row)
                sets, events = plan_ticket_changes(ticket, changes)
                if "tags" in sets:
                    sets["tags"] = dumps(tags_to_json(sets["tags"]))
                for key in ("resolved_at",):
                    if key in sets:
                        sets[key] = ts(sets[key])
                if "meta" in sets:
                    sets["meta"] = dumps(sets["meta"])
                if sets:
                    assignments = ", ".join(f"{k}=?" for k in sets)
                    c.execute(f"UPDATE tickets SET {assignments} WHERE id=?", [*sets.values(), ticket_id])
                    if "subject" in sets:
                        search_index.set_column(c, ticket.number, "subject", sets["subject"] or "")
                for ev in events:
                    self._event(c, ev.kind, ticket_id, actor, ev.data)
                return self._ticket(c.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,)).fetchone())

        return await self._call(run)

    async def find_ticket_by_external_ids(self, channel: str, external_ids: list[str]) -> str | None:
        if not external_ids:
            return None

        def run() -> str | None:
            marks = ",".join("?" * len(external_ids))
            row = self.conn.execute(
                f"SELECT ticket_id FROM messages WHERE channel=? AND external_id IN ({marks}) "
                "ORDER BY seq DESC LIMIT 1",
                [channel, *external_ids],
            ).fetchone()
            return row["ticket_id"] if row else None

        return self._point(run)

    async def find_ticket_by_conversation(self, channel: str, account: str, conversation_id: str) -> str | None:
        def run() -> str | None:
            row = self.conn.execute(
                "SELECT ticket_id FROM messages WHERE channel=? AND account=? AND conversation_id=? "
                "ORDER BY seq DESC LIMIT 1",
                (channel, account, conversation_id),
            ).fetchone()
            return row["ticket_id"] if row else None

        return self._point(run)

    # -- messages --------------------------------------------------------------------------------------------------
    async def message_exists(self, channel: str, account: str, external_id: str) -> bool:
        def run() -> bool:
            return self.conn.execute(
                "SELECT 1 FROM messages WHERE channel=? AND account=? AND external_id=?",
                (channel, account, external_id),
            ).fetchone() is not None

        return self._point(run)

    @staticmethod
    def _insert_message(c: sqlite3.Connection, m: Message, conversation_id: str | None) -> None:
        """The message row; its text reaches the search index through the caller (a new row or an append)."""
        c.execute(
            "INSERT INTO messages (id, ticket_id, direction, channel, account, external_id, conversation_id, "
            "author_kind, author_value, author_name, author_user, subject, text, html, attachments, raw_ref, sent_at, "
            "received_at, delivery_status, delivery_error, flags, meta) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                m.id, m.ticket_id, m.direction, m.channel, m.account, m.external_id, conversation_id,
                m.author.kind if m.author else None,
                normalize_identity_value(m.author.kind, m.author.value) if m.author else None,
                m.author.display_name if m.author else None,
                m.author_user, m.subject, m.text, m.html, dumps(attachments_to_json(m.attachments)), m.raw_ref,
                ts(m.sent_at), ts(m.received_at), m.delivery_status, m.delivery_error, dumps(m.flags), dumps(m.meta),
            ),
        )

    def _next_number(self, c: sqlite3.Connection) -> int:
        row = c.execute(
            "INSERT INTO counters (name, value) VALUES ('ticket_number', "
            "(SELECT coalesce(max(number), 1000) + 1 FROM tickets)) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    async def commit_inbound(self, plan: IngestPlan) -> IngestResult:
        """Group commit: plans that arrive while a write is in flight are written together in one transaction,
        each inside its own savepoint, so a failing plan never takes the others down with it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IngestResult] = loop.create_future()
        self._batch.append((plan, fut))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush_batch)
        return await fut

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            self._flushing = False
            return
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._commit_batch, [plan for plan, _ in batch])

        def finish(f: asyncio.Future[list[IngestResult | BaseException]]) -> None:
            exc = f.exception()
            results: list[IngestResult | BaseException] = [exc] * len(batch) if exc else f.result()
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
            self._flush_batch()

        done.add_done_callback(finish)

    def _commit_batch(self, plans: list[IngestPlan]) -> list[IngestResult | BaseException]:
        """The search index is written after the last savepoint, in the plans' order: FTS5 flushes its in-memory
        index to a new segment at every SAVEPOINT once it has been written in a transaction, and one tiny segment
        per message (and the merging of them all) cost more than the rest of the ingest."""
        results: list[IngestResult | BaseException] = []
        index_later: list[Callable[[], None]] = []
        with self._tx() as c:
            for plan in plans:
                c.execute("SAVEPOINT plan")
                plan_index: list[Callable[[], None]] = []
                try:
                    results.append(self._commit_plan(c, plan, plan_index))
                    index_later.extend(plan_index)
                except Exception as exc:
                    c.execute("ROLLBACK TO plan")
                    results.append(exc)
                c.execute("RELEASE plan")
            for write in index_later:
                write()
        return results

    def _commit_plan(self, c: sqlite3.Connection, plan: IngestPlan,
                     index_later: list[Callable[[], None]]) -> IngestResult:
        """Write one plan; its search-index writes go to ``index_later`` (see ``_commit_batch``)."""
        m = plan.message
        dup = c.execute(
            "SELECT m.id, m.ticket_id, t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id "
            "WHERE m.channel=? AND m.account=? AND m.external_id=?",
            (m.channel, m.account, m.external_id),
        ).fetchone()
        if dup is not None:
            return IngestResult(True, dup["ticket_id"], dup["number"], dup["id"], False)
        if plan.contact_is_new and not c.execute("SELECT 1 FROM contacts WHERE id=?",
                                                  (plan.contact.id,)).fetchone():
            self._insert_contact(c, plan.contact, plan.actor)
        elif plan.contact_is_new:  # created meanwhile by a concurrent ingest of the same sender
            for ident in plan.contact.identities:
                self._insert_identity(c, plan.contact.id, ident)
        else:
            for ident in plan.new_identities:
                self._insert_identity(c, plan.contact.id, ident)
        t = plan.ticket
        at = ts(m.received_at)
        if plan.ticket_is_new:
            t.number = self._next_number(c)
            c.execute(
                "INSERT INTO tickets (id, number, status, channel, contact_id, subject, tags, tramite, agency, "
                "assignee, queue, priority, created_at, last_activity_at, message_count, meta) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?)",
                (t.id, t.number, t.status, t.channel, t.contact_id, t.subject, dumps(tags_to_json(t.tags)),
                 None, None, t.assignee, t.queue, t.priority, ts(t.created_at), at, dumps(t.meta)),
            )
            index_later.append(partial(search_index.add_ticket, c, t.number, t.subject or "",
                                       search_index.contact_text(c, t.contact_id), m.text or ""))
            self._event(c, EventKind.TICKET_CREATED, t.id, plan.actor,
                        {"number": t.number, "channel": t.channel, "contact_id": t.contact_id})
        else:
            if plan.new_identities or plan.contact_is_new:
                index_later.append(partial(search_index.refresh_contact, c, plan.contact.id))
            index_later.append(partial(search_index.add_message, c, t.number, m.text))
        self._insert_message(c, m, plan.conversation_id)
        status_sql = ""
        if plan.reopen:
            status_sql = ", status='open', resolved_at=NULL"
            self._event(c, EventKind.STATUS, t.id, plan.actor, {"from": t.status, "to": TicketStatus.OPEN})
        c.execute(
            f"UPDATE tickets SET message_count = message_count + 1, "
            f"last_activity_at = max(last_activity_at, ?){status_sql} WHERE id=?",
            (at, t.id),
        )
        self._event(c, EventKind.MESSAGE_ADDED, t.id, plan.actor,
                    {"message_id": m.id, "direction": m.direction, "channel": m.channel, "number": t.number})
        for ev in plan.events:
            self._event(c, ev.kind, t.id, plan.actor, ev.data)
        for spec in plan.jobs:
            self._enqueue(c, spec)
        return IngestResult(False, t.id, t.number, m.id, plan.ticket_is_new)

    async def add_message(
        self, message: Message, actor: str, events: list[NewEvent], jobs: list[JobSpec], first_response: bool = True
    ) -> Message:
        def run() -> Message:
            with self._tx() as c:
                row = c.execute("SELECT number FROM tickets WHERE id=?", (message.ticket_id,)).fetchone()
                if row is None:
                    raise NotFound(f"ticket {message.ticket_id}")
                self._insert_message(c, message, message.meta.get("conversation_id"))
                search_index.add_message(c, row["number"], message.text)
                at = ts(message.received_at)
                extra = ""
                if message.direction == "out" and first_response:
                    extra = ", first_response_at = coalesce(first_response_at, ?)"
                c.execute(
                    f"UPDATE tickets SET message_count = message_count + 1, last_activity_at = max(last_activity_at, ?)"
                    f"{extra} WHERE id=?",
                    (at, at, message.ticket_id) if extra else (at, message.ticket_id),
                )
                kind = EventKind.REPLY_QUEUED if message.direction == "out" else EventKind.MESSAGE_ADDED
                self._event(c, kind, message.ticket_id, actor,
                            {"message_id": message.id, "direction": message.direction, "channel": message.channel,
                             "number": row["number"]})
                for ev in events:
                    self._event(c, ev.kind, message.ticket_id, actor, ev.data)
                for spec in jobs:
                    self._enqueue(c, spec)
            return message

        return await self._call(run)

    async def get_message(self, message_id: str) -> Message | None:
        def run() -> Message | None:
            row = self.conn.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
            return self._message(row) if row else None

        return self._point(run)

    async def list_messages(self, ticket_id: str) -> list[Message]:
        def run() -> list[Message]:
            rows = self.conn.execute("SELECT * FROM messages WHERE ticket_id=? ORDER BY seq", (ticket_id,))
            return [self._message(r) for r in rows]

        return await self._read(run)

    async def set_delivery(
        self, message_id: str, status: str, actor: str, external_id: str | None = None, error: str | None = None
    ) -> None:
        def run() -> None:
            with self._tx() as c:
                row = c.execute("SELECT ticket_id, external_id FROM messages WHERE id=?", (message_id,)).fetchone()
                if row is None:
                    raise NotFound(f"message {message_id}")
                c.execute(
                    "UPDATE messages SET delivery_status=?, delivery_error=?, external_id=coalesce(?, external_id) "
                    "WHERE id=?",
                    (status, error, external_id, message_id),
                )
                kind = {DeliveryStatus.SENT: EventKind.REPLY_SENT, DeliveryStatus.FAILED: EventKind.REPLY_FAILED}.get(
                    DeliveryStatus(status), EventKind.REPLY_QUEUED)
                self._event(c, kind, row["ticket_id"], actor,
                            {"message_id": message_id, "external_id": external_id, "error": error})

        await self._call(run)

    # -- events ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _event(c: sqlite3.Connection, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> int:
        cur = c.execute(
            "INSERT INTO events (kind, ticket_id, actor, at, data) VALUES (?, ?, ?, ?, ?)",
            (str(kind), ticket_id, actor, ts(utcnow()), dumps(data)),
        )
        return int(cur.lastrowid or 0)

    async def append_event(self, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> int:
        def run() -> int:
            with self._tx() as c:
                return self._event(c, kind, ticket_id, actor, data)

        return await self._call(run)

    async def list_events(
        self, after_seq: int = 0, ticket_id: str | None = None, limit: int = 100, kinds: list[str] | None = None
    ) -> list[Event]:
        def run() -> list[Event]:
            sql = "SELECT * FROM events WHERE seq > ?"
            params: list[Any] = [after_seq]
            if ticket_id is not None:
                sql += " AND ticket_id = ?"
                params.append(ticket_id)
            if kinds:
                sql += f" AND kind IN ({','.join('?' * len(kinds))})"
                params.extend(kinds)
            sql += " ORDER BY seq LIMIT ?"
            params.append(limit)
            return [
                Event(r["seq"], r["kind"], r["ticket_id"], r["actor"], parse_ts(r["at"]) or utcnow(),
                      json.loads(r["data"]))
                for r in self.conn.execute(sql, params)
            ]

        return await self._read(run)

    # -- job queue -------------------------------------------------------------------------------------------------
    def _enqueue(self, c: sqlite3.Connection, spec: JobSpec) -> str:
        job_id = spec.dedupe_key or uuid.uuid4().hex
        now = ts(utcnow())
        c.execute(
            "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, not_before, created_at, updated_at) "
            "VALUES (?, ?, ?, 'ready', 0, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
            (job_id, spec.kind, dumps(spec.payload), spec.max_attempts or 8, ts(spec.not_before) or now, now, now),
        )
        return job_id

    async def enqueue(self, spec: JobSpec) -> str:
        def run() -> str:
            with self._tx() as c:
                return self._enqueue(c, spec)

        return await self._call(run)

    async def claim(self, worker: str, kinds: list[str] | None = None, lease_s: float = 60) -> Job | None:
        def run() -> Job | None:
            now = utcnow()
            kind_sql, params = "", []
            if kinds:
                kind_sql = f" AND kind IN ({','.join('?' * len(kinds))})"
                params = list(kinds)
            with self._tx() as c:
                row = c.execute(
                    f"SELECT id FROM jobs WHERE status='ready' AND not_before <= ?{kind_sql} "
                    f"ORDER BY not_before LIMIT 1", [ts(now), *params]
                ).fetchone()
                if row is None:
                    row = c.execute(
                        f"SELECT id FROM jobs WHERE status='running' AND lease_until < ?{kind_sql} "
                        f"ORDER BY lease_until LIMIT 1", [ts(now), *params]
                    ).fetchone()
                if row is None:
                    return None
                c.execute(
                    "UPDATE jobs SET status='running', worker=?, lease_until=?, attempts=attempts+1, updated_at=? "
                    "WHERE id=?",
                    (worker, ts(now + timedelta(seconds=lease_s)), ts(now), row["id"]),
                )
                return self._job(c.execute("SELECT * FROM jobs WHERE id=?", (row["id"],)).fetchone())

        return await self._call(run)

    async def heartbeat(self, job_id: str, worker: str, lease_s: float = 60) -> bool:
        def run() -> bool:
            with self._tx() as c:
                cur = c.execute(
                    "UPDATE jobs SET lease_until=?, updated_at=? WHERE id=? AND worker=? AND status='running'",
                    (ts(utcnow() + timedelta(seconds=lease_s)), ts(utcnow()), job_id, worker),
                )
                return cur.rowcount == 1

        return await self._call(run)

    async def complete(self, job_id: str, worker: str) -> bool:
        def run() -> bool:
            with self._tx() as c:
                cur = c.execute(
                    "UPDATE jobs SET status='done', lease_until=NULL, updated_at=? "
                    "WHERE id=? AND worker=? AND status='running'",
                    (ts(utcnow()), job_id, worker),
                )
                return cur.rowcount == 1

        return await self._call(run)

    async def fail(self, job_id: str, worker: str, error: str, retry_in_s: float | None) -> str:
        def run() -> str:
            with self._tx() as c:
                row = c.execute("SELECT * FROM jobs WHERE id=? AND worker=? AND status='running'",
                                (job_id, worker)).fetchone()
                if row is None:
                    return "lost"
                dead = retry_in_s is None or row["attempts"] >= row["max_attempts"]
                status = "dead" if dead else "ready"
                not_before = ts(utcnow() + timedelta(seconds=retry_in_s or 0))
                c.execute(
                    "UPDATE jobs SET status=?, last_error=?, not_before=?, lease_until=NULL, updated_at=? WHERE id=?",
                    (status, error[:2000], not_before, ts(utcnow()), job_id),
                )
                return status

        return await self._call(run)

    async def get_job(self, job_id: str) -> Job | None:
        def run() -> Job | None:
            row = self.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
            return self._job(row) if row else None

        return self._point(run)

    async def list_jobs(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        def run() -> list[Job]:
            sql, params = "SELECT * FROM jobs WHERE 1=1", []
            if status:
                sql += " AND status=?"
                params.append(status)
            if kind:
                sql += " AND kind=?"
                params.append(kind)
            sql += " ORDER BY created_at LIMIT ?"
            return [self._job(r) for r in self.conn.execute(sql, [*params, limit])]

        return await self._read(run)

    async def job_counts(self) -> dict[str, dict[str, int]]:
        def run() -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for r in self.conn.execute("SELECT kind, status, count(*) n FROM jobs GROUP BY kind, status"):
                out.setdefault(r["kind"], {})[r["status"]] = r["n"]
            return out

        return await self._read(run)

    # -- documents -------------------------------------------------------------------------------------------------
    @staticmethod
    def _get_doc(c: sqlite3.Connection, collection: str, key: str) -> dict[str, Any] | None:
        row = c.execute("SELECT doc FROM docs WHERE collection=? AND key=?", (collection, key)).fetchone()
        return json.loads(row["doc"]) if row else None

    @staticmethod
    def _put_doc(c: sqlite3.Connection, collection: str, key: str, doc: dict[str, Any]) -> None:
        c.execute(
            "INSERT INTO docs (collection, key, doc, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(collection, key) DO UPDATE SET doc=excluded.doc, updated_at=excluded.updated_at",
            (collection, key, dumps(doc), ts(utcnow())),
        )

    async def get_doc(self, collection: str, key: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            return self._get_doc(self.conn, collection, key)

        return self._point(run)

    async def put_doc(self, collection: str, key: str, doc: dict[str, Any]) -> None:
        def run() -> None:
            with self._tx() as c:
                self._put_doc(c, collection, key, doc)

        await self._call(run)

    async def delete_doc(self, collection: str, key: str) -> bool:
        def run() -> bool:
            with self._tx() as c:
                return c.execute("DELETE FROM docs WHERE collection=? AND key=?", (collection, key)).rowcount == 1

        return await self._call(run)

    async def list_docs(self, collection: str, limit: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        def run() -> list[tuple[str, dict[str, Any]]]:
            rows = self.conn.execute(
                "SELECT key, doc FROM docs WHERE collection=? ORDER BY key LIMIT ?", (collection, limit)
            )
            return [(r["key"], json.loads(r["doc"])) for r in rows]

        return await self._read(run)

    # -- data protection -------------------------------------------------------------------------------------------
    async def erase_contact(self, contact_id: str, actor: str) -> list[str]:
        def run() -> list[str]:
            with self._tx() as c:
                tickets = c.execute("SELECT id, number FROM tickets WHERE contact_id=?", (contact_id,)).fetchall()
                refs: set[str] = set()
                for t in tickets:
                    for m in c.execute("SELECT raw_ref FROM messages WHERE ticket_id=?", (t["id"],)).fetchall():
                        if m["raw_ref"]:
                            refs.add(m["raw_ref"])
                    c.execute("DELETE FROM messages WHERE ticket_id=?", (t["id"],))
                    search_index.drop(c, t["number"])
                    c.execute("DELETE FROM tickets WHERE id=?", (t["id"],))
                    c.execute("UPDATE events SET data='{}' WHERE ticket_id=?", (t["id"],))
                c.execute("DELETE FROM identities WHERE contact_id=?", (contact_id,))
                c.execute("DELETE FROM contacts WHERE id=? OR merged_into=?", (contact_id, contact_id))
                still_used = {
                    r["raw_ref"]
                    for r in c.execute(
                        f"SELECT DISTINCT raw_ref FROM messages WHERE raw_ref IN ({','.join('?' * len(refs))})",
                        list(refs),
                    )
                } if refs else set()
                self._event(c, "contact.erased", None, actor, {"contact_id": contact_id, "tickets": len(tickets)})
                return sorted(refs - still_used)

        return await self._call(run)

    # -- retention (anonymize / delete one ticket) -----------------------------------------------------------------
    @staticmethod
    def _unused_raw_refs(c: sqlite3.Connection, refs: set[str]) -> list[str]:
        if not refs:
            return []
        used = {r["raw_ref"] for r in c.execute(
            f"SELECT DISTINCT raw_ref FROM messages WHERE raw_ref IN ({','.join('?' * len(refs))})", list(refs))}
        return sorted(refs - used)

    async def anonymize_ticket(self, ticket_id: str, actor: str, placeholder: str) -> list[str]:
        def run() -> list[str]:
            with self._tx() as c:
                row = c.execute("SELECT * FROM tickets WHERE id=?", (ticket_id,)).fetchone()
                if row is None:
                    raise NotFound(f"ticket {ticket_id}")
                ticket = self._ticket(row)
                refs: set[str] = set()
                rows = c.execute("SELECT seq, raw_ref, attachments, meta FROM messages WHERE ticket_id=?",
                                 (ticket_id,)).fetchall()
                for m in rows:
                    if m["raw_ref"]:
                        refs.add(m["raw_ref"])
                    atts = [{**a, "filename": placeholder, "sha256": None, "content_id": None,
                             "skipped": "anonymized"} for a in json.loads(m["attachments"])]
                    meta = {k: v for k, v in json.loads(m["meta"]).items() if k in KEPT_MESSAGE_META}
                    meta["anonymized"] = True
                    c.execute(
                        "UPDATE messages SET text=?, html=NULL, "
                        "subject=CASE WHEN subject IS NULL THEN NULL ELSE ? END, author_kind=NULL, author_value=NULL, "
                        "author_name=NULL, raw_ref=NULL, attachments=?, meta=?, delivery_error=NULL WHERE seq=?",
                        (placeholder, placeholder, dumps(atts), dumps(meta), m["seq"]),
                    )
                sets, events = plan_ticket_changes(ticket, TicketChanges(status=TicketStatus.CLOSED))
                tags = {k: {**t.to_dict(), "why": []} for k, t in ticket.tags.items()}
                meta = {**ticket.meta, "anonymized_at": ts(utcnow())}
                c.execute(
                    "UPDATE tickets SET subject=?, tags=?, meta=?, status=?, resolved_at=coalesce(resolved_at, ?) "
                    "WHERE id=?",
                    (placeholder if ticket.subject is not None else None, dumps(tags), dumps(meta),
                     str(TicketStatus.CLOSED), ts(sets.get("resolved_at")), ticket_id),
                )
                # only the placeholder stays searchable: no contact, no message text
                search_index.drop(c, ticket.number)
                search_index.add_ticket(c, ticket.number, placeholder, "", "")
                c.execute("UPDATE events SET data=json_remove(data, '$.why') WHERE ticket_id=? AND kind=?",
                          (ticket_id, str(EventKind.TAGGED)))
                for ev in events:
                    self._event(c, ev.kind, ticket_id, actor, ev.data)
                self._event(c, "ticket.anonymized", ticket_id, actor, {"number": ticket.number,
                                                                        "messages": len(rows)})
                return self._unused_raw_refs(c, refs)

        return await self._call(run)

    async def anonymize_contact(self, contact_id: str, actor: str, placeholder: str) -> None:
        def run() -> None:
            with self._tx() as c:
                if not c.execute("SELECT 1 FROM contacts WHERE id=?", (contact_id,)).fetchone():
                    raise NotFound(f"contact {contact_id}")
                c.execute("UPDATE contacts SET name=? WHERE id=? OR merged_into=?", (placeholder, contact_id,
                                                                                    contact_id))
                c.execute("DELETE FROM identities WHERE contact_id=?", (contact_id,))
                search_index.refresh_contact(c, contact_id)
                self._event(c, "contact.anonymized", None, actor, {"contact_id": contact_id})

        await self._call(run)

    async def delete_ticket(self, ticket_id: str, actor: str) -> list[str]:
        def run() -> list[str]:
            with self._tx() as c:
                row = c.execute("SELECT number FROM tickets WHERE id=?", (ticket_id,)).fetchone()
                if row is None:
                    raise NotFound(f"ticket {ticket_id}")
                refs: set[str] = set()
                for m in c.execute("SELECT raw_ref FROM messages WHERE ticket_id=?", (ticket_id,)).fetchall():
                    if m["raw_ref"]:
                        refs.add(m["raw_ref"])
                c.execute("DELETE FROM messages WHERE ticket_id=?", (ticket_id,))
                search_index.drop(c, row["number"])
                c.execute("DELETE FROM tickets WHERE id=?", (ticket_id,))
                c.execute("UPDATE events SET data='{}' WHERE ticket_id=?", (ticket_id,))
                self._event(c, "ticket.deleted", ticket_id, actor, {"number": row["number"]})
                return self._unused_raw_refs(c, refs)

        return await self._call(run)

    async def attachment_refs_in_use(self, refs: list[str]) -> set[str]:
        def run() -> set[str]:
            used = set()
            for ref in set(refs):
                if self.conn.execute("SELECT 1 FROM messages WHERE instr(attachments, ?) > 0 LIMIT 1",
                                     (f'"{ref}"',)).fetchone():
                    used.add(ref)
            return used

        return await self._call(run)


def _split_sql(sql: str) -> list[str]:
    statements, buf = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(buf))
            buf = []
    if "".join(buf).strip():
        statements.append("\n".join(buf))
    return statements
