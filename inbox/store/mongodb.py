"""MongoDB store through pymongo's async API (``AsyncMongoClient``).

What it relies on (see docs/mongodb.md): single-document atomicity, unique indexes and ``find_one_and_update``. It
uses no multi-document transactions, so it runs the same on a standalone server, a replica set (recommended:
durable majority writes, retryable writes, fail-over) and nx-27017, the wire-compatible server the tests run on.

Layout (one collection each): ``contacts``, ``identities`` (``_id`` = ``kind:value``, so an identity belongs to
exactly one contact), ``tickets``, ``messages`` and ``events`` as their own documents (never arrays pushed into a
ticket), ``jobs``, ``docs`` (the small named collections of ``get_doc``/``put_doc``), ``counters`` (ticket number,
event and message sequences) and ``schema_migrations``.

Conventions that keep it correct on both real MongoDB and nx-27017:

* Times are integer microseconds since the Unix epoch (UTC): exact like the SQLite store's, and they compare and
  sort the same everywhere. (nx-27017 stores a BSON date written by ``$set`` as text, unlike one written by an
  insert, and coerces ISO-looking strings in comparisons, so neither dates nor ISO text are safe there.)
* Free-form dicts (metas, job payloads, event data, docs, tags, attachments) are stored as JSON text, exactly as the
  SQLite store stores them, so both backends return the same values (a datetime in a meta comes back as text) and no
  field name needs escaping.
* "Is it null?" is never asked: booleans (``assigned``, ``responded``, ``merged``, ``pending``) carry those facts.
* Update filters only use ``_id`` equality plus equality / ``$lt`` / ``$lte`` on scalar fields; multi-document
  changes are loops of single-document updates. Arrays are matched with ``$elemMatch`` only.
* Full-text search: ``search_terms`` arrays hold accent-folded, case-folded words (tickets: subject and contact
  names/addresses; messages: text) under an ordinary multikey index; a query needs every word, the last one as a
  prefix (the SQLite FTS5 semantics). No ``$text``: it has no prefix search and no accent folding for Spanish.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
import uuid
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from inbox.domain import (
    Contact,
    DeliveryStatus,
    Direction,
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

Doc = dict[str, Any]

SCHEMA_VERSION = 1
MAX_TERMS = 5000  # distinct search words kept per document
_SORT_FIELDS = {"last_activity": "last_activity_at", "created": "created_at", "number": "number"}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # like FTS5 unicode61: letters and digits, "_" separates
_JOB_STATUSES = ("ready", "running", "done", "dead")


# -- search terms ----------------------------------------------------------------------------------------------------
def fold(text: str) -> str:
    """Lower-case and strip diacritics: "Cédula" -> "cedula", "ÑANDÚ" -> "nandu" (FTS5 ``remove_diacritics 2``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def search_terms(*texts: str | None) -> list[str]:
    """The distinct folded words of ``texts`` in order of first appearance (at most MAX_TERMS)."""
    seen: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        for word in _WORD.findall(fold(text)):
            seen.setdefault(word, None)
            if len(seen) >= MAX_TERMS:
                return list(seen)
    return list(seen)


def _prefix_upper_bound(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def terms_filter(query: str, field: str = "search_terms") -> Doc | None:
    """Every word must be a term, the last one as a prefix; None when the query has no words."""
    words = _WORD.findall(fold(query))
    if not words:
        return None
    clauses: list[Doc] = [{field: {"$elemMatch": {"$eq": w}}} for w in dict.fromkeys(words[:-1])]
    last = words[-1]
    clauses.append({field: {"$elemMatch": {"$gte": last, "$lt": _prefix_upper_bound(last)}}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


# -- value conversions -----------------------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _t(value: datetime | None) -> int | None:
    """A time as stored: integer microseconds since the Unix epoch (UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _dt(value: Any) -> datetime | None:
    """A stored time back as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise StoreError(f"not a time: {value!r}")
    if isinstance(value, int):
        return _EPOCH + value * _MICROSECOND
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    raise StoreError(f"not a time: {value!r}")


def _loads(value: str | None, default: Any) -> Any:
    return json.loads(value) if value else default


def _identity_id(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def _doc_id(collection: str, key: str) -> str:
    return f"{collection}:{key}"


class MongoStore(Store):
    """Store on MongoDB. ``url`` is a MongoDB connection string, ``database`` the database to use.

    ``events_gap_grace_s``: how long ``list_events`` waits for an event sequence number that was allocated but whose
    event is not visible yet (another writer between allocating and inserting) before treating it as a permanent hole.
    ``pending_grace_s``: how long a message may stay half-written (its writer still busy) before anyone else who
    meets it finishes the write in the writer's place (see ``commit_inbound``).
    """

    events_gap_grace_s: float = 5.0
    pending_grace_s: float = 2.0
    _HOLE_SCAN = 1000

    def __init__(self, url: str, database: str):
        self.url = url
        self.database_name = database
        self._client: AsyncMongoClient[Doc] | None = None
        # Test hook: called with the name of each step of a multi-document write; raise in it to simulate a crash.
        self.fault: Callable[[str], None] | None = None
        self._event_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- plumbing --------------------------------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        if self._client is None:
            raise StoreError("store is not open")
        return self._client[self.database_name]

    def _step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    async def open(self) -> None:
        if self._client is None:
            self._client = AsyncMongoClient(self.url, tz_aware=True, tzinfo=UTC, appname="atencion-inbox")
        await self.migrate()
        await self.recover()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def migrate(self) -> list[str]:
        """Create the indexes (idempotent) and seed the counters; returns the schema steps applied this time."""
        db = self.db
        await db.contacts.create_index([("merged", ASCENDING)], name="contacts_merged")
        await db.identities.create_index([("kind", ASCENDING), ("value", ASCENDING)], unique=True,
                                         name="identities_kind_value")
        await db.identities.create_index([("contact_id", ASCENDING)], name="identities_contact")
        await db.tickets.create_index([("number", ASCENDING)], unique=True, name="tickets_number")
        await db.tickets.create_index([("last_activity_at", DESCENDING), ("number", DESCENDING)],
                                      name="tickets_activity")
        await db.tickets.create_index([("created_at", DESCENDING), ("number", DESCENDING)], name="tickets_created")
        for field in ("status", "assignee", "queue", "channel", "tramite", "agency"):
            await db.tickets.create_index([(field, ASCENDING), ("last_activity_at", DESCENDING),
                                           ("number", DESCENDING)], name=f"tickets_{field}")
        await db.tickets.create_index([("contact_id", ASCENDING)], name="tickets_contact")
        await db.tickets.create_index([("search_terms", ASCENDING)], name="tickets_search")
        # Outgoing messages have no external id until sent: only string ids are unique (nx-27017 ignores the
        # partial filter but treats nulls as distinct, which gives the same behaviour).
        await db.messages.create_index(
            [("channel", ASCENDING), ("account", ASCENDING), ("external_id", ASCENDING)], unique=True,
            name="messages_external", partialFilterExpression={"external_id": {"$type": "string"}})
        await db.messages.create_index([("channel", ASCENDING), ("external_id", ASCENDING)],
                                       name="messages_external_any")
        await db.messages.create_index([("channel", ASCENDING), ("account", ASCENDING),
                                        ("conversation_id", ASCENDING)], name="messages_conversation")
        await db.messages.create_index([("ticket_id", ASCENDING), ("seq", ASCENDING)], name="messages_ticket")
        await db.messages.create_index([("search_terms", ASCENDING)], name="messages_search")
        await db.messages.create_index([("pending", ASCENDING)], name="messages_pending",
                                       partialFilterExpression={"pending": True})
        await db.messages.create_index([("raw_ref", ASCENDING)], name="messages_raw_ref")
        await db.messages.create_index([("attachment_refs", ASCENDING)], name="messages_attachment_refs")
        await db.events.create_index([("seq", ASCENDING)], unique=True, name="events_seq")
        await db.events.create_index([("ticket_id", ASCENDING), ("seq", ASCENDING)], name="events_ticket")
        await db.jobs.create_index([("status", ASCENDING), ("not_before", ASCENDING)], name="jobs_ready")
        await db.jobs.create_index([("status", ASCENDING), ("lease_until", ASCENDING)], name="jobs_lease")
        await db.jobs.create_index([("kind", ASCENDING), ("status", ASCENDING)], name="jobs_kind")
        await db.docs.create_index([("collection", ASCENDING), ("key", ASCENDING)], unique=True, name="docs_key")

        top = await db.tickets.find_one({}, {"number": 1}, sort=[("number", DESCENDING)])
        seeds = {"ticket_number": max(1000, int(top["number"]) if top else 0), "event_seq": 0, "message_seq": 0}
        for name, seed in seeds.items():
            try:
                await db.counters.update_one({"_id": name}, {"$setOnInsert": {"value": seed}}, upsert=True)
            except DuplicateKeyError:  # another process seeded it at the same moment
                pass

        applied = []
        name = f"{SCHEMA_VERSION:04d}_initial"
        try:
            await db.schema_migrations.insert_one({"_id": SCHEMA_VERSION, "name": name, "at": _t(utcnow())})
            applied.append(name)
        except DuplicateKeyError:
            pass
        return applied

    async def recover(self) -> int:
        """Finish every message whose write was interrupted (see ``commit_inbound``); returns how many were pending."""
        pending = [d async for d in self.db.messages.find({"pending": True})]
        for doc in pending:
            await self._settle(doc)
        return len(pending)

    async def _settle(self, doc: Doc) -> None:
        """Make sure a message met half-written gets finished: wait for its writer while it is young (so two
        writers rarely race), then finish it ourselves (its writer crashed, or is stuck)."""
        while doc.get("pending"):
            age_s = (_t(utcnow()) or 0) - int(doc.get("pending_since") or 0)
            if age_s >= self.pending_grace_s * 1_000_000:
                await self._roll_forward(doc)
                return
            await asyncio.sleep(min(0.02, self.pending_grace_s))
            fresh = await self.db.messages.find_one({"_id": doc["_id"]}, {"pending": 1, "pending_since": 1,
                                                                           "intent": 1})
            if fresh is None:  # erased meanwhile
                return
            doc = fresh

    @staticmethod
    async def _distinct(collection: Any, field: str, query: Doc) -> list[Any]:
        """Distinct values of ``field`` among the matching documents (nx-27017's ``distinct`` ignores the filter)."""
        seen: dict[Any, None] = {}
        async for d in collection.find(query, {field: 1}):
            if d.get(field) is not None:
                seen.setdefault(d[field], None)
        return list(seen)

    async def _next(self, counter: str, n: int = 1) -> int:
        """Atomically allocate ``n`` values of a counter; returns the last one."""
        for _ in range(3):
            try:
                doc = await self.db.counters.find_one_and_update(
                    {"_id": counter}, {"$inc": {"value": n}}, upsert=True, return_document=ReturnDocument.AFTER
                )
                return int(doc["value"])
            except DuplicateKeyError:  # two first uses of a missing counter: the other one created it
                continue
        raise StoreError(f"cannot allocate from counter {counter}")

    # -- row mapping -----------------------------------------------------------------------------------------------
    async def _contact(self, doc: Doc) -> Contact:
        idents = [
            Identity(i["kind"], i["value"], i.get("display_name"), i.get("handle"))
            async for i in self.db.identities.find({"contact_id": doc["_id"]}).sort(
                [("kind", ASCENDING), ("value", ASCENDING)])
        ]
        return Contact(doc["_id"], doc.get("name"), idents, doc.get("merged_into"),
                       _dt(doc.get("created_at")) or utcnow())

    @staticmethod
    def _ticket(doc: Doc) -> Ticket:
        return Ticket(
            id=doc["_id"],
            number=int(doc["number"]),
            status=doc["status"],
            channel=doc["channel"],
            contact_id=doc["contact_id"],
            subject=doc.get("subject"),
            tags=tags_from_json(_loads(doc.get("tags"), {})),
            assignee=doc.get("assignee"),
            queue=doc.get("queue"),
            priority=doc.get("priority") or "normal",
            created_at=_dt(doc.get("created_at")) or utcnow(),
            first_response_at=_dt(doc.get("first_response_at")),
            resolved_at=_dt(doc.get("resolved_at")),
            last_activity_at=_dt(doc.get("last_activity_at")) or utcnow(),
            message_count=int(doc.get("message_count") or 0),
            meta=_loads(doc.get("meta"), {}),
        )

    @staticmethod
    def _message(doc: Doc) -> Message:
        return Message(
            id=doc["_id"],
            ticket_id=doc["ticket_id"],
            direction=doc["direction"],
            channel=doc["channel"],
            account=doc["account"],
            external_id=doc.get("external_id"),
            author=identity_or_none(doc.get("author_kind"), doc.get("author_value"), doc.get("author_name")),
            text=doc.get("text") or "",
            html=doc.get("html"),
            subject=doc.get("subject"),
            attachments=attachments_from_json(_loads(doc.get("attachments"), [])),
            raw_ref=doc.get("raw_ref"),
            sent_at=_dt(doc.get("sent_at")),
            received_at=_dt(doc.get("received_at")) or utcnow(),
            delivery_status=doc.get("delivery_status"),
            delivery_error=doc.get("delivery_error"),
            author_user=doc.get("author_user"),
            flags=list(doc.get("flags") or []),
            meta=_loads(doc.get("meta"), {}),
        )

    @staticmethod
    def _job(doc: Doc) -> Job:
        return Job(
            id=doc["_id"],
            kind=doc["kind"],
            payload=_loads(doc.get("payload"), {}),
            attempts=int(doc.get("attempts") or 0),
            max_attempts=int(doc["max_attempts"]),
            not_before=_dt(doc.get("not_before")) or utcnow(),
            status=doc["status"],
            lease_until=_dt(doc.get("lease_until")),
            worker=doc.get("worker"),
            last_error=doc.get("last_error"),
            created_at=_dt(doc.get("created_at")) or utcnow(),
        )

    @staticmethod
    def _event_obj(doc: Doc) -> Event:
        return Event(int(doc["seq"]), doc["kind"], doc.get("ticket_id"), doc["actor"], _dt(doc.get("at")) or utcnow(),
                     _loads(doc.get("data"), {}))

    # -- contacts --------------------------------------------------------------------------------------------------
    async def get_contact(self, contact_id: str) -> Contact | None:
        doc = await self.db.contacts.find_one({"_id": contact_id})
        return await self._contact(doc) if doc else None

    async def find_contact_by_identity(self, kind: str, value: str) -> Contact | None:
        ident = await self.db.identities.find_one({"_id": _identity_id(kind, normalize_identity_value(kind, value))})
        if ident is None:
            return None
        return await self.get_contact(ident["contact_id"])

    async def _check_identities_free(self, contact_id: str, identities: Iterable[Identity]) -> None:
        for ident in identities:
            kind, value = ident.key
            owner = await self.db.identities.find_one({"_id": _identity_id(kind, value)}, {"contact_id": 1})
            if owner is not None and owner["contact_id"] != contact_id:
                raise StoreError(f"identity {kind}:{value} already belongs to contact {owner['contact_id']}")

    async def _put_identity(self, contact_id: str, ident: Identity) -> None:
        """Attach an identity; idempotent for the same contact, StoreError when another contact owns it."""
        kind, value = ident.key
        doc = {"_id": _identity_id(kind, value), "kind": kind, "value": value, "contact_id": contact_id,
               "display_name": ident.display_name, "handle": ident.handle}
        try:
            await self.db.identities.insert_one(doc)
        except DuplicateKeyError:
            owner = await self.db.identities.find_one({"_id": doc["_id"]}, {"contact_id": 1})
            if owner is None:  # removed in between: try once more
                await self.db.identities.insert_one(doc)
            elif owner["contact_id"] != contact_id:
                raise StoreError(
                    f"identity {kind}:{value} already belongs to contact {owner['contact_id']}") from None

    async def _ensure_contact(self, contact: Contact) -> bool:
        """Insert the contact document if absent; True when this call inserted it."""
        try:
            result = await self.db.contacts.update_one(
                {"_id": contact.id},
                {"$setOnInsert": {"name": contact.name, "merged_into": None, "merged": False,
                                  "created_at": _t(contact.created_at)}},
                upsert=True,
            )
        except DuplicateKeyError:  # two concurrent upserts of the same new contact: the other one inserted it
            return False
        return result.upserted_id is not None

    async def create_contact(self, contact: Contact, actor: str) -> Contact:
        await self._check_identities_free(contact.id, contact.identities)
        if not await self._ensure_contact(contact):
            raise StoreError(f"contact {contact.id} already exists")
        for ident in contact.identities:
            await self._put_identity(contact.id, ident)
        await self._event(EventKind.CONTACT_CREATED, None, actor, {"contact_id": contact.id})
        return contact

    async def add_identity(self, contact_id: str, identity: Identity, actor: str) -> None:
        await self._put_identity(contact_id, identity)
        await self._refresh_ticket_terms_for_contact(contact_id)

    async def _contact_search_text(self, contact_id: str) -> list[str | None]:
        parts: list[str | None] = []
        doc = await self.db.contacts.find_one({"_id": contact_id}, {"name": 1})
        if doc is not None:
            parts.append(doc.get("name"))
        async for i in self.db.identities.find({"contact_id": contact_id}):
            parts.extend([i.get("value"), i.get("display_name"), i.get("handle")])
        return parts

    async def _refresh_ticket_terms_for_contact(self, contact_id: str) -> None:
        contact_text = await self._contact_search_text(contact_id)
        async for t in self.db.tickets.find({"contact_id": contact_id}, {"subject": 1}):
            await self.db.tickets.update_one(
                {"_id": t["_id"]}, {"$set": {"search_terms": search_terms(t.get("subject"), *contact_text)}})

    async def merge_contacts(self, keep_id: str, other_id: str, actor: str) -> str:
        """Move identities and tickets of ``other_id`` to ``keep_id``.

        The merge record (what moved) is written first, then each identity and ticket is moved with its own update,
        so an interrupted merge can be inspected and undone from the record."""
        if keep_id == other_id:
            raise StoreError("cannot merge a contact into itself")
        for cid in (keep_id, other_id):
            if await self.db.contacts.find_one({"_id": cid}, {"_id": 1}) is None:
                raise NotFound(f"contact {cid}")
        idents = [[i["kind"], i["value"]] async for i in self.db.identities.find({"contact_id": other_id})]
        tickets = [t["_id"] async for t in self.db.tickets.find({"contact_id": other_id}, {"_id": 1})]
        merge_id = uuid.uuid4().hex
        record = {"keep": keep_id, "other": other_id, "identities": idents, "tickets": tickets, "by": actor,
                  "at": ts(utcnow()), "undone": False}
        await self.put_doc("merges", merge_id, record)
        for kind, value in idents:
            await self.db.identities.update_one({"_id": _identity_id(kind, value)}, {"$set": {"contact_id": keep_id}})
        for tid in tickets:
            await self.db.tickets.update_one({"_id": tid}, {"$set": {"contact_id": keep_id}})
        await self.db.contacts.update_one({"_id": other_id}, {"$set": {"merged_into": keep_id, "merged": True}})
        await self._refresh_ticket_terms_for_contact(keep_id)
        await self._event(EventKind.CONTACT_MERGED, None, actor,
                          {"merge_id": merge_id, "keep": keep_id, "other": other_id, "tickets": tickets})
        return merge_id

    async def unmerge_contacts(self, merge_id: str, actor: str) -> None:
        record = await self.get_doc("merges", merge_id)
        if record is None:
            raise NotFound(f"merge {merge_id}")
        if record["undone"]:
            raise StoreError(f"merge {merge_id} was already undone")
        other, keep = record["other"], record["keep"]
        for kind, value in record["identities"]:
            await self.db.identities.update_one({"_id": _identity_id(kind, value)}, {"$set": {"contact_id": other}})
        for tid in record["tickets"]:
            await self.db.tickets.update_one({"_id": tid}, {"$set": {"contact_id": other}})
        await self.db.contacts.update_one({"_id": other}, {"$set": {"merged_into": None, "merged": False}})
        record["undone"] = True
        await self.put_doc("merges", merge_id, record)
        await self._refresh_ticket_terms_for_contact(keep)
        await self._refresh_ticket_terms_for_contact(other)
        await self._event(EventKind.CONTACT_UNMERGED, None, actor,
                          {"merge_id": merge_id, "keep": keep, "other": other, "tickets": record["tickets"]})

    async def search_contacts(self, query: str, limit: int = 20) -> list[Contact]:
        needle = query.strip()
        rx = {"$regex": re.escape(needle), "$options": "i"}
        ids: list[str] = []
        async for i in self.db.identities.find({"$or": [{"value": rx}, {"display_name": rx}]}, {"contact_id": 1}):
            if i["contact_id"] not in ids:
                ids.append(i["contact_id"])
        flt: Doc = {"merged": False, "$or": [{"name": rx}, {"_id": {"$in": ids}}]}
        return [await self._contact(d) async for d in self.db.contacts.find(flt).limit(limit)]

    # -- tickets ---------------------------------------------------------------------------------------------------
    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        doc = await self.db.tickets.find_one({"_id": ticket_id})
        return self._ticket(doc) if doc else None

    async def get_ticket_by_number(self, number: int) -> Ticket | None:
        doc = await self.db.tickets.find_one({"number": int(number)})
        return self._ticket(doc) if doc else None

    async def _filter(self, flt: TicketFilter | None) -> Doc | None:
        """The MongoDB filter of a TicketFilter; None when nothing can match (a text query without words)."""
        clauses: list[Doc] = []
        if flt is None:
            return {}
        if flt.status:
            clauses.append({"status": {"$in": list(flt.status)}})
        for field, value in (("channel", flt.channel), ("queue", flt.queue), ("assignee", flt.assignee),
                             ("tramite", flt.tramite), ("agency", flt.agency), ("contact_id", flt.contact_id)):
            if value is not None:
                clauses.append({field: value})
        if flt.unassigned:
            clauses.append({"assigned": False})
        if flt.text:
            terms = terms_filter(flt.text)
            if terms is None:
                return None
            ticket_ids = await self._distinct(self.db.messages, "ticket_id", terms)
            clauses.append({"$or": [terms, {"_id": {"$in": ticket_ids}}]} if ticket_ids else terms)
        if not clauses:
            return {}
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    async def list_tickets(
        self, flt: TicketFilter | None = None, sort: str = "last_activity", cursor: str | None = None, limit: int = 50
    ) -> Page:
        if sort not in SORTS:
            raise StoreError(f"unknown sort {sort!r}")
        field = _SORT_FIELDS[sort]
        query = await self._filter(flt)
        if query is None:
            return Page([], None)
        if cursor:
            key, number = decode_cursor(cursor)
            if field == "number":
                after: Doc = {"number": {"$lt": int(number)}}
            else:
                at = _t(parse_ts(key))
                after = {"$or": [{field: {"$lt": at}}, {field: at, "number": {"$lt": int(number)}}]}
            query = {"$and": [query, after]} if query else after
        order = [("number", DESCENDING)] if field == "number" else [(field, DESCENDING), ("number", DESCENDING)]
        docs = [d async for d in self.db.tickets.find(query, {"search_terms": 0}).sort(order).limit(limit + 1)]
        items = [self._ticket(d) for d in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            last = docs[limit - 1]
            key = last["number"] if field == "number" else ts(_dt(last[field]))
            next_cursor = encode_cursor([key, last["number"]])
        return Page(items, next_cursor)

    async def count_tickets(self, flt: TicketFilter | None = None) -> int:
        query = await self._filter(flt)
        if query is None:
            return 0
        return int(await self.db.tickets.count_documents(query))

    async def update_ticket(self, ticket_id: str, changes: TicketChanges, actor: str) -> Ticket:
        """Read, plan, write with a revision check (optimistic concurrency), so each event's "from" is exact."""
        for _ in range(50):
            doc = await self.db.tickets.find_one({"_id": ticket_id})
            if doc is None:
                raise NotFound(f"ticket {ticket_id}")
            ticket = self._ticket(doc)
            sets, events = plan_ticket_changes(ticket, changes)
            if not sets:
                break
            update: Doc = dict(sets)
            if "tags" in update:
                update["tags"] = dumps(tags_to_json(update["tags"]))
            if "resolved_at" in update:
                update["resolved_at"] = _t(update["resolved_at"])
            if "meta" in update:
                update["meta"] = dumps(update["meta"])
            if "assignee" in update:
                update["assigned"] = update["assignee"] is not None
            if "subject" in update:
                contact_text = await self._contact_search_text(ticket.contact_id)
                update["search_terms"] = search_terms(update["subject"], *contact_text)
            rev = int(doc.get("rev") or 0)
            result = await self.db.tickets.update_one({"_id": ticket_id, "rev": rev},
                                                      {"$set": {**update, "rev": rev + 1}})
            if result.matched_count == 1:
                for ev in events:
                    await self._event(ev.kind, ticket_id, actor, ev.data)
                break
            await asyncio.sleep(0.005)
        else:
            raise StoreError(f"ticket {ticket_id} is changing too often to update")
        updated = await self.get_ticket(ticket_id)
        if updated is None:
            raise NotFound(f"ticket {ticket_id}")
        return updated

    async def find_ticket_by_external_ids(self, channel: str, external_ids: list[str]) -> str | None:
        if not external_ids:
            return None
        doc = await self.db.messages.find_one({"channel": channel, "external_id": {"$in": list(external_ids)}},
                                              {"ticket_id": 1}, sort=[("seq", DESCENDING)])
        return doc["ticket_id"] if doc else None

    async def find_ticket_by_conversation(self, channel: str, account: str, conversation_id: str) -> str | None:
        doc = await self.db.messages.find_one(
            {"channel": channel, "account": account, "conversation_id": conversation_id}, {"ticket_id": 1},
            sort=[("seq", DESCENDING)])
        return doc["ticket_id"] if doc else None

    # -- messages --------------------------------------------------------------------------------------------------
    async def message_exists(self, channel: str, account: str, external_id: str) -> bool:
        doc = await self.db.messages.find_one({"channel": channel, "account": account, "external_id": external_id})
        if doc is None:
            return False
        if doc.get("pending"):
            await self._settle(doc)
        return True

    def _message_doc(self, m: Message, seq: int, conversation_id: str | None, intent: Doc) -> Doc:
        return {
            "_id": m.id,
            "seq": seq,
            "ticket_id": m.ticket_id,
            "direction": str(m.direction),
            "channel": m.channel,
            "account": m.account,
            "external_id": m.external_id,
            "conversation_id": conversation_id,
            "author_kind": m.author.kind if m.author else None,
            "author_value": normalize_identity_value(m.author.kind, m.author.value) if m.author else None,
            "author_name": m.author.display_name if m.author else None,
            "author_user": m.author_user,
            "subject": m.subject,
            "text": m.text,
            "html": m.html,
            "attachments": dumps(attachments_to_json(m.attachments)),
            "attachment_refs": sorted({a.sha256 for a in m.attachments if a.sha256}),
            "raw_ref": m.raw_ref,
            "sent_at": _t(m.sent_at),
            "received_at": _t(m.received_at),
            "delivery_status": m.delivery_status,
            "delivery_error": m.delivery_error,
            "flags": [str(f) for f in m.flags],
            "meta": dumps(m.meta),
            "search_terms": search_terms(m.text),
            "pending": True,
            "pending_since": _t(utcnow()),
            "intent": dumps(intent),
        }

    @staticmethod
    def _intent_event(event_id: str, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> Doc:
        return {"id": event_id, "kind": str(kind), "ticket_id": ticket_id, "actor": actor, "at": _t(utcnow()),
                "data": data}

    @staticmethod
    def _intent_job(job_id: str, spec: JobSpec) -> Doc:
        return {"id": job_id, "kind": spec.kind, "payload": spec.payload, "not_before": ts(spec.not_before),
                "max_attempts": spec.max_attempts}

    async def commit_inbound(self, plan: IngestPlan) -> IngestResult:
        """Write one inbound message without a multi-document transaction, so that a crash at any point followed by
        a retry (or a restart: ``open`` runs ``recover``) completes the work exactly once.

        Every id is deterministic (the pipeline derives contact, ticket and message ids from the input; events and
        jobs get ids derived from the message id), and the writes are ordered:

        1. a new contact's ``contact.created`` event (first: once the contact exists, a retry's pipeline no longer
           sees it as new), the contact (``$setOnInsert``) and its identities (``_id`` = ``kind:value``, unique);
        2. the ticket if absent: a number is allocated from the counter only when the ticket is not there yet, and
           a concurrent insert of the same ticket is detected by its ``_id`` (a crash here leaves a gap in the
           numbers, never a duplicate);
        3. the message, inserted with ``pending: true`` and an ``intent`` (its events, jobs and ticket changes).
           This insert is the commit point: the unique index on (channel, account, external_id) makes it happen once;
           before it, a retry redoes steps 1-2 idempotently; after it, the dedupe step sees the message;
        4. the roll-forward of the intent (``_roll_forward``): ticket counters (``message_count`` recounted with
           ``count_documents`` and only ever raised, so a retry never double counts), last activity, reopen; events
           (skipped when their id exists); jobs (``$setOnInsert``); finally ``pending: false``. Whoever next meets
           a pending message (``message_exists`` in the dedupe step, ``get_message``, ``commit_inbound``,
           ``recover`` at start-up) waits for its writer up to ``pending_grace_s`` and then finishes it the same
           way (``_settle``).
        """
        m = plan.message
        existing = await self.db.messages.find_one(
            {"channel": m.channel, "account": m.account, "external_id": m.external_id})
        if existing is not None:
            return await self._duplicate(existing)

        contact, t = plan.contact, plan.ticket
        if plan.contact_is_new:
            await self._check_identities_free(contact.id, contact.identities)
            # The event goes first: once the contact exists a retry no longer sees it as new.
            await self._write_events([self._intent_event(f"{contact.id}:created", EventKind.CONTACT_CREATED, None,
                                                         plan.actor, {"contact_id": contact.id})])
            await self._ensure_contact(contact)
            for ident in contact.identities:
                await self._put_identity(contact.id, ident)
        else:
            await self._check_identities_free(contact.id, plan.new_identities)
            for ident in plan.new_identities:
                await self._put_identity(contact.id, ident)
        self._step("contact")

        at = _t(m.received_at)
        if plan.ticket_is_new:
            t.number = await self._ensure_ticket(t, at)
        elif plan.new_identities or plan.contact_is_new:
            await self._refresh_ticket_terms_for_contact(contact.id)
        self._step("ticket")

        events: list[Doc] = []
        if plan.ticket_is_new:
            events.append(self._intent_event(f"{t.id}:created", EventKind.TICKET_CREATED, t.id, plan.actor,
                                             {"number": t.number, "channel": t.channel, "contact_id": t.contact_id}))
        if plan.reopen:
            events.append(self._intent_event(f"{m.id}:reopen", EventKind.STATUS, t.id, plan.actor,
                                             {"from": t.status, "to": TicketStatus.OPEN}))
        events.append(self._intent_event(f"{m.id}:added", EventKind.MESSAGE_ADDED, t.id, plan.actor,
                                         {"message_id": m.id, "direction": m.direction, "channel": m.channel,
                                          "number": t.number}))
        for i, ev in enumerate(plan.events):
            events.append(self._intent_event(f"{m.id}:ev{i}", ev.kind, t.id, plan.actor, ev.data))
        jobs = [self._intent_job(spec.dedupe_key or f"{m.id}:job{i}", spec) for i, spec in enumerate(plan.jobs)]
        intent = {"ticket_id": t.id, "at": at, "reopen": plan.reopen, "first_response": False,
                  "events": events, "jobs": jobs}

        m.ticket_id = t.id
        doc = self._message_doc(m, await self._next("message_seq"), plan.conversation_id, intent)
        try:
            await self.db.messages.insert_one(doc)
        except DuplicateKeyError:
            # The same input committed concurrently by another task or process: it is theirs.
            existing = await self.db.messages.find_one(
                {"channel": m.channel, "account": m.account, "external_id": m.external_id})
            if existing is None:
                raise
            return await self._duplicate(existing)
        self._step("message")
        await self._roll_forward(doc)
        return IngestResult(False, t.id, t.number, m.id, plan.ticket_is_new)

    async def _duplicate(self, existing: Doc) -> IngestResult:
        if existing.get("pending"):
            await self._settle(existing)
        tdoc = await self.db.tickets.find_one({"_id": existing["ticket_id"]}, {"number": 1})
        return IngestResult(True, existing["ticket_id"], int(tdoc["number"]) if tdoc else 0, existing["_id"], False)

    async def _ensure_ticket(self, t: Ticket, at: int | None) -> int:
        """Insert the new ticket unless it exists (a retry, or the same input concurrently); returns its number."""
        found = await self.db.tickets.find_one({"_id": t.id}, {"number": 1})
        if found is not None:
            return int(found["number"])
        number = await self._next("ticket_number")
        contact_text = await self._contact_search_text(t.contact_id)
        doc = {
            "_id": t.id, "number": number, "status": str(t.status), "channel": t.channel,
            "contact_id": t.contact_id, "subject": t.subject, "tags": dumps(tags_to_json(t.tags)),
            "tramite": t.tags["tramite"].value if "tramite" in t.tags else None,
            "agency": t.tags["agency"].value if "agency" in t.tags else None,
            "assignee": t.assignee, "assigned": t.assignee is not None, "queue": t.queue, "priority": t.priority,
            "created_at": _t(t.created_at), "first_response_at": None, "responded": False,
            "resolved_at": None, "last_activity_at": at, "message_count": 0, "meta": dumps(t.meta),
            "search_terms": search_terms(t.subject, *contact_text), "rev": 0,
        }
        try:
            await self.db.tickets.insert_one(doc)
        except DuplicateKeyError:
            found = await self.db.tickets.find_one({"_id": t.id}, {"number": 1})
            if found is None:
                raise
            return int(found["number"])
        return number

    async def _roll_forward(self, doc: Doc) -> None:
        """Apply a pending message's intent; every step is idempotent, so running it twice (a retry, or two
        processes at once) has the effect of running it once."""
        intent = _loads(doc.get("intent"), None)
        if intent is None:
            await self.db.messages.update_one({"_id": doc["_id"]}, {"$set": {"pending": False}})
            return
        tid = intent["ticket_id"]
        at = int(intent["at"])
        # Ticket state first, so that whoever reacts to the events or jobs sees it.
        count = await self.db.messages.count_documents({"ticket_id": tid})
        await self.db.tickets.update_one({"_id": tid, "message_count": {"$lt": count}},
                                         {"$set": {"message_count": count}})
        await self.db.tickets.update_one({"_id": tid, "last_activity_at": {"$lt": at}},
                                         {"$set": {"last_activity_at": at}})
        if intent.get("reopen"):
            for status in (TicketStatus.RESOLVED, TicketStatus.PENDING):
                await self.db.tickets.update_one({"_id": tid, "status": str(status)},
                                                 {"$set": {"status": str(TicketStatus.OPEN), "resolved_at": None},
                                                  "$inc": {"rev": 1}})
        if intent.get("first_response"):
            await self.db.tickets.update_one({"_id": tid, "responded": False},
                                             {"$set": {"first_response_at": at, "responded": True}})
        self._step("ticket_updates")
        await self._write_events(intent["events"])
        self._step("events")
        for job in intent["jobs"]:
            await self._enqueue_doc(job["id"], JobSpec(job["kind"], job["payload"], parse_ts(job["not_before"]),
                                                       job["max_attempts"]))
        self._step("jobs")
        await self.db.messages.update_one({"_id": doc["_id"]},
                                          {"$set": {"pending": False}, "$unset": {"intent": "", "pending_since": ""}})

    async def add_message(
        self, message: Message, actor: str, events: list[NewEvent], jobs: list[JobSpec], first_response: bool = True
    ) -> Message:
        """Store an outgoing message or note the same way as ``commit_inbound``: the message (pending, with its
        intent) first, then its ticket changes, events and jobs (the delivery job last, so it never finds the
        message missing)."""
        tdoc = await self.db.tickets.find_one({"_id": message.ticket_id}, {"number": 1})
        if tdoc is None:
            raise NotFound(f"ticket {message.ticket_id}")
        number = int(tdoc["number"])
        kind = EventKind.REPLY_QUEUED if message.direction == Direction.OUT else EventKind.MESSAGE_ADDED
        intent_events = [self._intent_event(f"{message.id}:added", kind, message.ticket_id, actor,
                                            {"message_id": message.id, "direction": message.direction,
                                             "channel": message.channel, "number": number})]
        for i, ev in enumerate(events):
            intent_events.append(self._intent_event(f"{message.id}:ev{i}", ev.kind, message.ticket_id, actor, ev.data))
        intent = {
            "ticket_id": message.ticket_id, "at": _t(message.received_at), "reopen": False,
            "first_response": message.direction == Direction.OUT and first_response,
            "events": intent_events,
            "jobs": [self._intent_job(spec.dedupe_key or f"{message.id}:job{i}", spec) for i, spec in enumerate(jobs)],
        }
        doc = self._message_doc(message, await self._next("message_seq"), message.meta.get("conversation_id"), intent)
        try:
            await self.db.messages.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db.messages.find_one({"_id": message.id})
            if existing is None:
                raise
            if existing.get("pending"):
                await self._settle(existing)
            return self._message(existing)
        self._step("message")
        await self._roll_forward(doc)
        return message

    async def get_message(self, message_id: str) -> Message | None:
        doc = await self.db.messages.find_one({"_id": message_id})
        if doc is None:
            return None
        if doc.get("pending"):
            await self._settle(doc)
        return self._message(doc)

    async def list_messages(self, ticket_id: str) -> list[Message]:
        cursor = self.db.messages.find({"ticket_id": ticket_id}, {"search_terms": 0, "intent": 0})
        return [self._message(d) async for d in cursor.sort([("seq", ASCENDING)])]

    async def set_delivery(
        self, message_id: str, status: str, actor: str, external_id: str | None = None, error: str | None = None
    ) -> None:
        doc = await self.db.messages.find_one({"_id": message_id}, {"ticket_id": 1})
        if doc is None:
            raise NotFound(f"message {message_id}")
        kind = {DeliveryStatus.SENT: EventKind.REPLY_SENT, DeliveryStatus.FAILED: EventKind.REPLY_FAILED}.get(
            DeliveryStatus(status), EventKind.REPLY_QUEUED)
        sets: Doc = {"delivery_status": status, "delivery_error": error}
        if external_id is not None:
            sets["external_id"] = external_id
        await self.db.messages.update_one({"_id": message_id}, {"$set": sets})
        await self._event(kind, doc["ticket_id"], actor,
                          {"message_id": message_id, "external_id": external_id, "error": error})

    # -- events ----------------------------------------------------------------------------------------------------
    async def _event(self, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> int:
        at = utcnow()
        seq = await self._next("event_seq")
        await self.db.events.insert_one({"_id": uuid.uuid4().hex, "seq": seq, "kind": str(kind),
                                         "ticket_id": ticket_id, "actor": actor, "at": _t(at),
                                         "data": dumps(data)})
        return seq

    async def _write_events(self, events: list[Doc]) -> None:
        """Insert the events whose ids are not stored yet, with consecutive sequence numbers.

        Two writers of the same events would both allocate numbers and one set would be wasted (a hole that holds
        readers back for ``events_gap_grace_s``): within a process they take turns on a lock per event set."""
        if not events:
            return
        lock = self._event_locks.setdefault(events[0]["id"], asyncio.Lock())
        async with lock:
            await self._write_events_locked(events)

    async def _write_events_locked(self, events: list[Doc]) -> None:
        ids = [e["id"] for e in events]
        have = {d["_id"] async for d in self.db.events.find({"_id": {"$in": ids}}, {"_id": 1})}
        todo = [e for e in events if e["id"] not in have]
        if not todo:
            return
        last = await self._next("event_seq", len(todo))
        docs = [{"_id": e["id"], "seq": last - len(todo) + 1 + i, "kind": e["kind"], "ticket_id": e["ticket_id"],
                 "actor": e["actor"], "at": e["at"], "data": dumps(e["data"])}
                for i, e in enumerate(todo)]
        try:
            await self.db.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # another writer stored some of them meanwhile: theirs stand
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise

    async def append_event(self, kind: str, ticket_id: str | None, actor: str, data: dict[str, Any]) -> int:
        return await self._event(kind, ticket_id, actor, data)

    async def list_events(
        self, after_seq: int = 0, ticket_id: str | None = None, limit: int = 100, kinds: list[str] | None = None
    ) -> list[Event]:
        """Events after ``after_seq`` in sequence order.

        Sequence numbers are allocated before the insert, so a writer can be between the two while a later number is
        already visible. A reader that moved its cursor past such a hole would miss that event forever, so the result
        stops before any hole that is younger than ``events_gap_grace_s``; an older hole (a crashed writer, or a
        duplicate from a retry) is skipped."""
        query: Doc = {"seq": {"$gt": int(after_seq)}}
        if ticket_id is not None:
            query["ticket_id"] = ticket_id
        if kinds:
            query["kind"] = {"$in": [str(k) for k in kinds]}
        docs = [d async for d in self.db.events.find(query).sort([("seq", ASCENDING)]).limit(limit)]
        if not docs:
            return []
        hole = await self._young_hole(int(after_seq), int(docs[-1]["seq"]))
        if hole is not None:
            docs = [d for d in docs if d["seq"] < hole]
        return [self._event_obj(d) for d in docs]

    async def _young_hole(self, lo: int, hi: int) -> int | None:
        """The first missing sequence number in (lo, hi] that is followed by an event younger than the grace.

        Numbers are allocated in time order, so only the newest events can sit behind a young hole: they are read
        newest first until the first older event, which bounds the search (a few documents, not the range)."""
        since = _t(utcnow() - timedelta(seconds=self.events_gap_grace_s))
        assert since is not None
        recent: list[int] = []
        prev = lo
        cursor = self.db.events.find({"seq": {"$gt": lo, "$lte": hi}}, {"seq": 1, "at": 1})
        async for d in cursor.sort([("seq", DESCENDING)]).limit(self._HOLE_SCAN):
            if int(d["at"]) >= since:
                recent.append(int(d["seq"]))
            else:
                prev = int(d["seq"])
                break
        else:
            if len(recent) >= self._HOLE_SCAN:  # more recent events than we look at: trust the older part
                prev = recent[-1] - 1
        recent.reverse()
        expected = prev + 1
        for seq in recent:
            if seq != expected:
                return expected
            expected = seq + 1
        return None

    # -- job queue -------------------------------------------------------------------------------------------------
    async def _enqueue_doc(self, job_id: str, spec: JobSpec) -> str:
        now = _t(utcnow())
        try:
            await self.db.jobs.update_one(
                {"_id": job_id},
                {"$setOnInsert": {"kind": spec.kind, "payload": dumps(spec.payload), "status": "ready",
                                  "attempts": 0, "max_attempts": spec.max_attempts or 8,
                                  "not_before": _t(spec.not_before) or now, "lease_until": None,
                                  "worker": None, "last_error": None, "created_at": now, "updated_at": now}},
                upsert=True,
            )
        except DuplicateKeyError:  # enqueued concurrently with the same id: one job
            pass
        return job_id

    async def enqueue(self, spec: JobSpec) -> str:
        return await self._enqueue_doc(spec.dedupe_key or uuid.uuid4().hex, spec)

    async def claim(self, worker: str, kinds: list[str] | None = None, lease_s: float = 60) -> Job | None:
        """Take the oldest ready job, else the one whose lease expired longest ago.

        With no or one kind this is one atomic ``find_one_and_update``. For several kinds the candidates are read
        first and each is taken with a conditional ``find_one_and_update`` on its ``_id`` and status (nx-27017 does
        not apply updates whose filter has ``$in``)."""
        clock = utcnow()
        now = _t(clock)
        lease: Doc = {"$set": {"status": "running", "worker": worker, "updated_at": now,
                               "lease_until": _t(clock + timedelta(seconds=lease_s))},
                      "$inc": {"attempts": 1}}
        wanted = list(dict.fromkeys(kinds or []))
        searches: list[tuple[Doc, str]] = [({"status": "ready", "not_before": {"$lte": now}}, "not_before"),
                                           ({"status": "running", "lease_until": {"$lt": now}}, "lease_until")]
        for base, order in searches:
            if len(wanted) <= 1:
                flt = {**base, "kind": wanted[0]} if wanted else base
                doc = await self.db.jobs.find_one_and_update(flt, lease, sort=[(order, ASCENDING)],
                                                             return_document=ReturnDocument.AFTER)
                if doc is not None:
                    return self._job(doc)
                continue
            for _ in range(5):  # every candidate taken by other workers meanwhile: look again
                found = self.db.jobs.find({**base, "kind": {"$in": wanted}}, {"_id": 1})
                candidates = [d["_id"] async for d in found.sort([(order, ASCENDING)]).limit(20)]
                if not candidates:
                    break
                for job_id in candidates:
                    doc = await self.db.jobs.find_one_and_update({**base, "_id": job_id}, lease,
                                                                 return_document=ReturnDocument.AFTER)
                    if doc is not None:
                        return self._job(doc)
        return None

    async def heartbeat(self, job_id: str, worker: str, lease_s: float = 60) -> bool:
        now = utcnow()
        result = await self.db.jobs.update_one(
            {"_id": job_id, "worker": worker, "status": "running"},
            {"$set": {"lease_until": _t(now + timedelta(seconds=lease_s)), "updated_at": _t(now)}},
        )
        return result.matched_count == 1

    async def complete(self, job_id: str, worker: str) -> bool:
        result = await self.db.jobs.update_one(
            {"_id": job_id, "worker": worker, "status": "running"},
            {"$set": {"status": "done", "lease_until": None, "updated_at": _t(utcnow())}},
        )
        return result.matched_count == 1

    async def fail(self, job_id: str, worker: str, error: str, retry_in_s: float | None) -> str:
        doc = await self.db.jobs.find_one({"_id": job_id, "worker": worker, "status": "running"})
        if doc is None:
            return "lost"
        dead = retry_in_s is None or int(doc["attempts"]) >= int(doc["max_attempts"])
        status = "dead" if dead else "ready"
        now = utcnow()
        result = await self.db.jobs.update_one(
            {"_id": job_id, "worker": worker, "status": "running", "attempts": doc["attempts"]},
            {"$set": {"status": status, "last_error": error[:2000], "lease_until": None,
                      "not_before": _t(now + timedelta(seconds=retry_in_s or 0)),
                      "updated_at": _t(now)}},
        )
        return status if result.matched_count == 1 else "lost"

    async def get_job(self, job_id: str) -> Job | None:
        doc = await self.db.jobs.find_one({"_id": job_id})
        return self._job(doc) if doc else None

    async def list_jobs(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        query: Doc = {}
        if status:
            query["status"] = status
        if kind:
            query["kind"] = kind
        cursor = self.db.jobs.find(query).sort([("created_at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [self._job(d) async for d in cursor]

    async def job_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind in await self.db.jobs.distinct("kind"):
            for status in _JOB_STATUSES:
                n = await self.db.jobs.count_documents({"kind": kind, "status": status})
                if n:
                    out.setdefault(kind, {})[status] = int(n)
        return out

    # -- documents -------------------------------------------------------------------------------------------------
    async def get_doc(self, collection: str, key: str) -> dict[str, Any] | None:
        doc = await self.db.docs.find_one({"_id": _doc_id(collection, key)})
        return json.loads(doc["doc"]) if doc else None

    async def put_doc(self, collection: str, key: str, doc: dict[str, Any]) -> None:
        update = {"$set": {"collection": collection, "key": key, "doc": dumps(doc), "updated_at": _t(utcnow())}}
        try:
            await self.db.docs.update_one({"_id": _doc_id(collection, key)}, update, upsert=True)
        except DuplicateKeyError:  # a concurrent first write of the same key: now it exists, update it
            await self.db.docs.update_one({"_id": _doc_id(collection, key)}, update)

    async def delete_doc(self, collection: str, key: str) -> bool:
        result = await self.db.docs.delete_one({"_id": _doc_id(collection, key)})
        return result.deleted_count == 1

    async def list_docs(self, collection: str, limit: int = 10_000) -> list[tuple[str, dict[str, Any]]]:
        cursor = self.db.docs.find({"collection": collection}).sort([("key", ASCENDING)]).limit(limit)
        return [(d["key"], json.loads(d["doc"])) async for d in cursor]

    # -- data protection -------------------------------------------------------------------------------------------
    async def _note_refs(self, key: str, ticket_ids: list[str]) -> set[str]:
        """The raw refs of these tickets' messages, merged with (and saved to) docs ``erasures``/``key`` before
        anything is deleted or anonymized: a retry after a crash still returns the refs of messages the first
        attempt already processed."""
        record = await self.get_doc("erasures", key) or {"raw_refs": []}
        refs: set[str] = set(record["raw_refs"])
        for tid in ticket_ids:
            refs.update(await self._distinct(self.db.messages, "raw_ref", {"ticket_id": tid}))
        await self.put_doc("erasures", key, {"raw_refs": sorted(refs)})
        return refs

    async def _unused_raw_refs(self, refs: set[str]) -> list[str]:
        if not refs:
            return []
        used = set(await self._distinct(self.db.messages, "raw_ref", {"raw_ref": {"$in": sorted(refs)}}))
        return sorted(refs - used)

    async def _drop_ticket(self, ticket_id: str) -> None:
        """Events redacted (kind, actor and time stay), then messages, then the ticket: a retry finds what is left."""
        await self.db.events.update_many({"ticket_id": ticket_id}, {"$set": {"data": "{}"}})
        await self.db.messages.delete_many({"ticket_id": ticket_id})
        await self.db.tickets.delete_one({"_id": ticket_id})

    async def erase_contact(self, contact_id: str, actor: str) -> list[str]:
        """Erase a person: tickets (events redacted, messages deleted), identities, the contact and the contacts
        merged into it. Safe to retry after a crash (see ``_note_refs`` and ``_drop_ticket``)."""
        tickets = [t["_id"] async for t in self.db.tickets.find({"contact_id": contact_id}, {"_id": 1})]
        refs = await self._note_refs(f"contact:{contact_id}", tickets)
        for tid in tickets:
            await self._drop_ticket(tid)
        await self.db.identities.delete_many({"contact_id": contact_id})
        await self.db.contacts.delete_one({"_id": contact_id})
        async for c in self.db.contacts.find({"merged_into": contact_id}, {"_id": 1}):
            await self.db.contacts.delete_one({"_id": c["_id"]})
        unused = await self._unused_raw_refs(refs)
        await self._event("contact.erased", None, actor, {"contact_id": contact_id, "tickets": len(tickets)})
        await self.delete_doc("erasures", f"contact:{contact_id}")
        return unused

    # -- retention (workers/quality/retention.py) ------------------------------------------------------------------
    async def anonymize_ticket(self, ticket_id: str, actor: str, placeholder: str) -> list[str]:
        """See ``Store.anonymize_ticket``. Messages first, then tag events, then the ticket (closed, subject replaced,
        out of the search index) and its events; every step is idempotent, so a retry after a crash completes it."""
        doc = await self.db.tickets.find_one({"_id": ticket_id})
        if doc is None:
            raise NotFound(f"ticket {ticket_id}")
        ticket = self._ticket(doc)
        refs = await self._note_refs(f"ticket:{ticket_id}", [ticket_id])
        n = 0
        async for m in self.db.messages.find({"ticket_id": ticket_id}, {"attachments": 1, "meta": 1, "subject": 1}):
            n += 1
            atts = [{**a, "filename": placeholder, "sha256": None, "content_id": None, "skipped": "anonymized"}
                    for a in _loads(m.get("attachments"), [])]
            meta = {k: v for k, v in _loads(m.get("meta"), {}).items() if k in KEPT_MESSAGE_META}
            meta["anonymized"] = True
            await self.db.messages.update_one({"_id": m["_id"]}, {"$set": {
                "text": placeholder, "html": None, "subject": placeholder if m.get("subject") is not None else None,
                "author_kind": None, "author_value": None, "author_name": None, "raw_ref": None,
                "attachments": dumps(atts), "attachment_refs": [], "meta": dumps(meta), "delivery_error": None,
                "search_terms": []}})
        async for e in self.db.events.find({"ticket_id": ticket_id, "kind": str(EventKind.TAGGED)}, {"data": 1}):
            data = _loads(e.get("data"), {})
            if "why" in data:
                data.pop("why")
                await self.db.events.update_one({"_id": e["_id"]}, {"$set": {"data": dumps(data)}})
        sets, events = plan_ticket_changes(ticket, TicketChanges(status=TicketStatus.CLOSED))
        tags = {k: {**t.to_dict(), "why": []} for k, t in ticket.tags.items()}
        update: Doc = {
            "subject": placeholder if ticket.subject is not None else None, "tags": dumps(tags),
            "meta": dumps({**ticket.meta, "anonymized_at": ts(utcnow())}), "status": str(TicketStatus.CLOSED),
            "search_terms": search_terms(placeholder),
        }
        if ticket.resolved_at is None and sets.get("resolved_at") is not None:
            update["resolved_at"] = _t(sets["resolved_at"])
        await self.db.tickets.update_one({"_id": ticket_id}, {"$set": update, "$inc": {"rev": 1}})
        for ev in events:
            await self._event(ev.kind, ticket_id, actor, ev.data)
        await self._event("ticket.anonymized", ticket_id, actor, {"number": ticket.number, "messages": n})
        unused = await self._unused_raw_refs(refs)
        await self.delete_doc("erasures", f"ticket:{ticket_id}")
        return unused

    async def anonymize_contact(self, contact_id: str, actor: str, placeholder: str) -> None:
        if await self.db.contacts.find_one({"_id": contact_id}, {"_id": 1}) is None:
            raise NotFound(f"contact {contact_id}")
        await self.db.contacts.update_one({"_id": contact_id}, {"$set": {"name": placeholder}})
        async for c in self.db.contacts.find({"merged_into": contact_id}, {"_id": 1}):
            await self.db.contacts.update_one({"_id": c["_id"]}, {"$set": {"name": placeholder}})
        await self.db.identities.delete_many({"contact_id": contact_id})
        await self._refresh_ticket_terms_for_contact(contact_id)
        await self._event("contact.anonymized", None, actor, {"contact_id": contact_id})

    async def delete_ticket(self, ticket_id: str, actor: str) -> list[str]:
        doc = await self.db.tickets.find_one({"_id": ticket_id}, {"number": 1})
        if doc is None:
            raise NotFound(f"ticket {ticket_id}")
        refs = await self._note_refs(f"ticket:{ticket_id}", [ticket_id])
        await self._drop_ticket(ticket_id)
        await self._event("ticket.deleted", ticket_id, actor, {"number": int(doc["number"])})
        unused = await self._unused_raw_refs(refs)
        await self.delete_doc("erasures", f"ticket:{ticket_id}")
        return unused

    async def attachment_refs_in_use(self, refs: list[str]) -> set[str]:
        used = set()
        for ref in set(refs):
            if await self.db.messages.find_one({"attachment_refs": {"$elemMatch": {"$eq": ref}}}, {"_id": 1}):
                used.add(ref)
        return used
