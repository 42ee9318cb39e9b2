"""The SQLite store's full-text index (``search_fts``): which rows a ticket has and how writes keep them current.

A ticket's text is indexed in parts, rowid = ticket number << PART_BITS | part. Part 0 holds the subject, the
contact's names and addresses and the ticket's messages in order. A new message joins the ticket's last part while
that part's body stays under PART_CHARS, and past it starts a new part (with the subject and the contact again).
A query matches a ticket when one of its parts holds every word: a usual thread is one part, so words written in
different messages match together; in a very long thread (a viral post's comments) they do within a part.

Why parts: joining a message rewrites its part, and FTS5 re-reads and re-tokenizes the old row to delete it. With
one row per ticket a thread of 3,000 messages indexed 141 messages/s; the bound keeps a message's cost flat however
long its thread grows. The parts of a ticket are neighbours in rowid order, so a search walking the index newest
first meets them one after the other (see ``SQLiteStore._walk``).
"""

from __future__ import annotations

import sqlite3

PART_BITS = 20
LAST_PART = (1 << PART_BITS) - 1
PART_CHARS = 8_000  # a part's body grows to about this many characters (one message may take it past)
_COLUMNS = ("subject", "contact")


def first_rowid(number: int) -> int:
    return number << PART_BITS


def rowid_range(number: int) -> tuple[int, int]:
    return number << PART_BITS, (number << PART_BITS) | LAST_PART


def contact_text(c: sqlite3.Connection, contact_id: str) -> str:
    """What a ticket's contact contributes to its search rows: the name, the addresses, handles and display names."""
    parts = []
    row = c.execute("SELECT name FROM contacts WHERE id=?", (contact_id,)).fetchone()
    if row and row[0]:
        parts.append(row[0])
    for r in c.execute("SELECT value, display_name, handle FROM identities WHERE contact_id=?", (contact_id,)):
        parts.extend(p for p in r if p)
    return " ".join(parts)


def add_ticket(c: sqlite3.Connection, number: int, subject: str, contact: str, text: str) -> None:
    c.execute("INSERT INTO search_fts (rowid, subject, contact, body) VALUES (?, ?, ?, ?)",
              (first_rowid(number), subject, contact, text))


def add_message(c: sqlite3.Connection, number: int, text: str) -> None:
    """A later message of ticket ``number``: appended to its last part, or the first text of a new part."""
    if not text:
        return
    low, high = rowid_range(number)
    last = c.execute("SELECT rowid, length(body) FROM search_fts WHERE rowid BETWEEN ? AND ? "
                     "ORDER BY rowid DESC LIMIT 1", (low, high)).fetchone()
    if last is not None and (last[1] + len(text) < PART_CHARS or last[0] == high):
        c.execute("UPDATE search_fts SET body = body || char(10) || ? WHERE rowid=?", (text, last[0]))
        return
    ticket = c.execute("SELECT subject, contact_id FROM tickets WHERE number=?", (number,)).fetchone()
    subject, contact = (ticket[0] or "", contact_text(c, ticket[1])) if ticket else ("", "")
    c.execute("INSERT INTO search_fts (rowid, subject, contact, body) VALUES (?, ?, ?, ?)",
              (last[0] + 1 if last is not None else low, subject, contact, text))


def set_column(c: sqlite3.Connection, number: int, column: str, value: str) -> None:
    """The subject or the contact text, on every part of the ticket."""
    if column not in _COLUMNS:
        raise ValueError(f"not a column to set: {column}")
    c.execute(f"UPDATE search_fts SET {column}=? WHERE rowid BETWEEN ? AND ?", (value, *rowid_range(number)))


def refresh_contact(c: sqlite3.Connection, contact_id: str) -> None:
    """After the contact's name or identities changed: its text on every row of every ticket it holds."""
    text = contact_text(c, contact_id)
    for (number,) in c.execute("SELECT number FROM tickets WHERE contact_id=?", (contact_id,)).fetchall():
        set_column(c, number, "contact", text)


def drop(c: sqlite3.Connection, number: int) -> None:
    c.execute("DELETE FROM search_fts WHERE rowid BETWEEN ? AND ?", rowid_range(number))
