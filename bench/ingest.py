"""Ingest throughput on SQLite through the whole pipeline, next to the raw floor (plain sqlite3 inserts of the same
rows) and the figure with many tickets already stored.

    .venv/bin/python bench/ingest.py [--sizes 10000 100000] [--prefill 1000000] [--thread 5000]

Prints one line per measurement. Run by hand; figures go in the notes, not in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __name__ == "__main__":  # run as a script: the project root, not bench/ (bench/web.py would shadow web/)
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from inbox.domain import Identity, InboundMessage, ThreadHints
from inbox.store.search_index import PART_BITS
from workers.runtime import close_runtime, open_runtime, settings_from

# Temporary stores live next to the project (bench/out), not in /tmp: on some machines /tmp creates files far slower.
TMP = Path(__file__).parent / "out"
TMP.mkdir(exist_ok=True)

WORDS = ("cédula pasaporte partida nacimiento jubilación trámite consulta agenda hora certificado "
         "residencia factura agua luz reclamo licencia conducir").split()


def make_message(i: int, salt: str = "") -> InboundMessage:
    sender = f"ciudadano{i % 5000}@example.uy"
    text = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(30)) + f" mensaje {i}"
    raw = f"From: {sender}\r\nMessage-ID: <{salt}{i}@bench>\r\nSubject: consulta {i}\r\n\r\n{text}\r\n".encode()
    # every third message replies to an earlier one, so threading does real lookups
    reply_to = f"{salt}{i - 3}@bench" if i % 3 == 0 and i >= 3 else None
    return InboundMessage(
        channel="email", account="bench", external_id=f"{salt}{i}@bench",
        sender=Identity("email", sender, f"Ciudadano {i % 5000}"), text=text, raw=raw,
        sent_at=datetime.now(UTC), subject=f"consulta {i}", hints=ThreadHints(in_reply_to=reply_to),
    )


async def pipeline_rate(data_dir: Path, n: int, salt: str = "", concurrency: int = 32) -> float:
    rt = await open_runtime(settings_from(None, **{"core.data_dir": str(data_dir)}))
    rt.pipeline.job_planners.clear()  # measure ingest, not triage-job bookkeeping... kept below
    from inbox.ingest import plan_triage

    rt.pipeline.job_planners.append(plan_triage)
    messages = [make_message(i, salt) for i in range(n)]
    queue: asyncio.Queue[InboundMessage] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)

    async def worker() -> None:
        while not queue.empty():
            await rt.pipeline.ingest(queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await close_runtime(rt)
    return n / elapsed


async def thread_rate(data_dir: Path, n: int) -> float:
    """Messages/s when every message joins one conversation (one ticket): a long thread's search row must not make
    each new message dearer than the last."""
    rt = await open_runtime(settings_from(None, **{"core.data_dir": str(data_dir)}))
    messages = [make_message(i, "t") for i in range(n)]
    for m in messages:
        m.hints = ThreadHints(conversation_id="one-long-thread")
    await rt.pipeline.ingest(messages[0])
    start = time.perf_counter()
    for chunk in range(1, n, 32):
        await asyncio.gather(*(rt.pipeline.ingest(m) for m in messages[chunk:chunk + 32]))
    elapsed = time.perf_counter() - start
    await close_runtime(rt)
    return (n - 1) / elapsed


def raw_floor(n: int) -> float:
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, channel TEXT, account TEXT, external_id TEXT, "
                     "sender TEXT, subject TEXT, text TEXT, raw BLOB)")
        rows = [(f"m{i}", "email", "bench", m.external_id, m.sender.value, m.subject, m.text, m.raw)
                for i, m in enumerate(make_message(i) for i in range(n))]
        start = time.perf_counter()
        for row in rows:  # one transaction per message, as the pipeline commits one message at a time
            conn.execute("BEGIN")
            conn.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?)", row)
            conn.execute("COMMIT")
        return n / (time.perf_counter() - start)


def prefill(data_dir: Path, tickets: int) -> None:
    """Seed many tickets fast with direct SQL in the real schema (ids unlike the benchmark's)."""
    db = data_dir / "inbox.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    conn.execute("BEGIN")
    batch = 50_000
    for start in range(0, tickets, batch):
        ids = range(start, min(tickets, start + batch))
        conn.executemany("INSERT INTO contacts (id, name, created_at) VALUES (?, ?, ?)",
                         ((f"pc{i}", f"Persona {i}", now) for i in ids))
        conn.executemany("INSERT INTO identities (kind, value, contact_id) VALUES ('email', ?, ?)",
                         ((f"persona{i}@prefill.uy", f"pc{i}") for i in ids))
        conn.executemany(
            "INSERT INTO tickets (id, number, status, channel, contact_id, subject, created_at, last_activity_at, "
            "message_count) VALUES (?, ?, 'open', 'email', ?, ?, ?, ?, 1)",
            ((f"pt{i}", 10 + i, f"pc{i}", f"prefill {i}", now, now) for i in ids))
        conn.executemany(
            "INSERT INTO messages (id, ticket_id, direction, channel, account, external_id, text, received_at) "
            "VALUES (?, ?, 'in', 'email', 'prefill', ?, ?, ?)",
            ((f"pm{i}", f"pt{i}", f"pre{i}@prefill", f"texto {i}", now) for i in ids))
        conn.executemany("INSERT INTO search_fts (rowid, subject, contact, body) VALUES (?, ?, ?, ?)",
                         (((10 + i) << PART_BITS, f"prefill {i}", f"Persona {i}", f"texto {i}") for i in ids))
    conn.execute("INSERT OR REPLACE INTO counters VALUES ('ticket_number', ?)", (tickets + 10,))
    conn.execute("COMMIT")
    conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--prefill", type=int, default=1_000_000)
    ap.add_argument("--thread", type=int, default=5_000, help="messages of the one-ticket thread (0: skip)")
    args = ap.parse_args()
    for n in args.sizes:
        with tempfile.TemporaryDirectory(dir=TMP) as tmp:
            rate = await pipeline_rate(Path(tmp), n)
        floor = raw_floor(n)
        print(f"pipeline n={n}: {rate:,.0f} msg/s | raw floor {floor:,.0f} rows/s | ratio {rate / floor:.2f}")
    if args.thread:
        with tempfile.TemporaryDirectory(dir=TMP) as tmp:
            rate = await thread_rate(Path(tmp), args.thread)
        print(f"one thread of {args.thread:,} messages: {rate:,.0f} msg/s")
    if args.prefill:
        n = args.sizes[0]
        with tempfile.TemporaryDirectory(dir=TMP) as tmp:
            empty = await pipeline_rate(Path(tmp), n, salt="e")
        with tempfile.TemporaryDirectory(dir=TMP) as tmp:
            rt = await open_runtime(settings_from(None, **{"core.data_dir": tmp}))
            await close_runtime(rt)
            t0 = time.perf_counter()
            prefill(Path(tmp), args.prefill)
            print(f"prefilled {args.prefill:,} tickets in {time.perf_counter() - t0:.0f} s")
            # A store that grew over months has no dirty pages waiting: measure ingest, not the kernel writing back
            # the gigabyte the prefill has just written.
            os.sync()
            full = await pipeline_rate(Path(tmp), n, salt="f")
        print(f"pipeline n={n}: empty store {empty:,.0f} msg/s | with {args.prefill:,} tickets {full:,.0f} msg/s "
              f"| {100 * full / empty:.0f}% of empty")


if __name__ == "__main__":
    asyncio.run(main())
