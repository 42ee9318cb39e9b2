"""The agents' inbox under load: seeds 1,000,000 tickets into SQLite (bulk SQL straight into the schema, search
index included), serves the real app (``inbox serve``) in its own process and measures, with 50 concurrent clients
signed in as agents, the latency of the inbox list and of a full-text search (HTTP, page rendered).

    .venv/bin/python bench/web.py [--tickets 1000000] [--clients 50] [--seconds 20] [--think-ms 0] [--reuse]

Targets: inbox list p95 <= 50 ms, search p95 <= 150 ms. Each client sends its next request as soon as the previous
answer is read, after an optional think time (``--think-ms``, uniform 0..N ms; with a think time the clients also
start at random instants within it, as independent agents would). The seeded database is kept in
bench/out/web-<N>/ and reused with ``--reuse``. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = Path(__file__).parent / "out"
PASSWORD = "bench-password-1"
AGENT = "agente@bench.uy"
CHANNELS = [("email", 45), ("x", 15), ("facebook", 10), ("messenger", 10), ("web", 12), ("phone", 5), ("pac", 3)]
FIRST = ["María", "José", "Juan", "Ana", "Lucía", "Martín", "Sofía", "Diego", "Valentina", "Andrés", "Camila",
         "Nicolás", "Florencia", "Gonzalo", "Agustina", "Rodrigo", "Natalia", "Sebastián", "Carolina", "Pablo"]
LAST = ["Rodríguez", "González", "Fernández", "Pérez", "López", "Martínez", "Sosa", "Núñez", "Silva", "Pereira",
        "Díaz", "Suárez", "Álvarez", "Méndez", "Romero", "Castro", "Acosta", "Benítez", "Ramírez", "Techera"]
OPENERS = ["Consulta sobre", "Reclamo por", "Información de", "Problema con", "Duda sobre", "Solicitud de",
           "Turno para", "Estado de mi trámite:"]


def tramites() -> list[dict[str, str]]:
    path = ROOT / "classifier" / "data" / "tramites_sample.csv"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        key = r.get("id") or r.get("url")
        if key:
            out.append({"key": key, "name": r["nombre_tramite"], "agency": r["institucion_nombre"].split(" - ")[0]})
    return out


def weighted(rng: random.Random, items: list[tuple[str, int]]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def seed(db: Path, n_tickets: int, rng: random.Random) -> None:
    """Bulk-load ``n_tickets`` tickets (one inbound message each) into a freshly migrated SQLite file."""
    from inbox.store.search_index import first_rowid
    from inbox.store.sqlite import SQLiteStore

    async def migrate() -> None:
        store = SQLiteStore(db)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA temp_store=MEMORY")
    indexes = [r for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name IN "
                                       "('tickets','messages','identities') AND sql IS NOT NULL")]
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    tr = tramites()
    queues = sorted({t["agency"] for t in tr})[:25]
    agents = [f"agente{i}@bench.uy" for i in range(60)]
    words = sorted({w.lower() for t in tr for w in re.findall(r"\w{4,}", t["name"])})
    n_contacts = max(1, n_tickets * 2 // 5)
    now = datetime.now(UTC)
    span = timedelta(days=730)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    contact_text = []
    contact_rows, ident_rows = [], []
    for i in range(n_contacts):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{i}@correo.com.uy".encode("ascii", "ignore").decode()
        contact_rows.append((f"c_{i}", name, None, (now - span).isoformat(timespec="microseconds")))
        ident_rows.append(("email", email, f"c_{i}", name, None))
        text = f"{name} {email}"
        if i % 5 == 0:
            phone = f"09{i % 10_000_000:07d}"
            ident_rows.append(("phone", phone, f"c_{i}", name, None))
            text += f" {phone}"
        contact_text.append(text)
    conn.executemany("INSERT INTO contacts VALUES (?,?,?,?)", contact_rows)
    conn.executemany("INSERT INTO identities VALUES (?,?,?,?,?)", ident_rows)
    del contact_rows, ident_rows

    def rows():
        for k in range(n_tickets):
            number = 1001 + k
            frac = (k + rng.random()) / n_tickets
            last = now - span * (1 - frac)
            age = now - last
            if age < timedelta(days=14):
                status = rng.choice(["new", "open", "open", "pending"])
            else:
                status = "closed" if rng.random() < 0.85 else "resolved"
            channel = weighted(rng, CHANNELS)
            c = rng.randrange(n_contacts)
            t = rng.choice(tr) if rng.random() < 0.7 else None
            assignee = rng.choice(agents) if status != "new" and rng.random() < 0.9 else None
            queue = t["agency"] if t and t["agency"] in queues else (rng.choice(queues) if rng.random() < .5 else None)
            subject = f"{rng.choice(OPENERS)} {t['name'] if t else ' '.join(rng.sample(words, 3))}"
            text = (f"Buenas, {' '.join(rng.sample(words, 12))}. Mi cédula es {rng.randrange(10**6, 6 * 10**6)}. "
                    f"Gracias, {contact_text[c].split(' ')[0]}")
            tags = json.dumps({"tramite": {"value": t["key"], "source": "model", "confidence": 0.8, "model_version":
                                           "bench", "label": t["name"], "why": []}} if t else {}, ensure_ascii=False)
            created = (last - timedelta(hours=rng.random() * 48)).isoformat(timespec="microseconds")
            last_s = last.isoformat(timespec="microseconds")
            yield (number, channel, c, subject, tags, t["key"] if t else None, t["agency"] if t else None, assignee,
                   queue, status, created, last_s, text)

    tickets_sql = ("INSERT INTO tickets (id, number, status, channel, contact_id, subject, tags, tramite, agency, "
                   "assignee, queue, priority, created_at, last_activity_at, message_count, meta) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,'normal',?,?,1,'{\"account\":\"bench\"}')")
    messages_sql = ("INSERT INTO messages (seq, id, ticket_id, direction, channel, account, external_id, "
                    "author_kind, author_value, author_name, subject, text, received_at) "
                    "VALUES (?,?,?,'in',?,'bench',?,?,?,?,?,?,?)")
    batch_t, batch_m, batch_s = [], [], []

    def flush() -> None:
        conn.executemany(tickets_sql, batch_t)
        conn.executemany(messages_sql, batch_m)
        conn.executemany("INSERT INTO search_fts (rowid, subject, contact, body) VALUES (?,?,?,?)", batch_s)
        for b in (batch_t, batch_m, batch_s):
            b.clear()

    for (number, channel, c, subject, tags, tkey, agency, assignee, queue, status, created, last_s, text) in rows():
        tid = f"t_{number}"
        batch_t.append((tid, number, status, channel, f"c_{c}", subject, tags, tkey, agency, assignee, queue,
                        created, last_s))
        batch_m.append((number, f"m_{number}", tid, channel, f"bench-{number}", "email",
                        contact_text[c].split(" ")[2] if len(contact_text[c].split(" ")) > 2 else "x",
                        contact_text[c].rsplit(" ", 1)[0], subject, text, last_s))
        batch_s.append((first_rowid(number), subject, contact_text[c], text))
        if len(batch_t) >= 20_000:
            flush()
    flush()
    conn.execute("INSERT OR REPLACE INTO counters VALUES ('ticket_number', ?)", (1000 + n_tickets,))
    conn.execute("COMMIT")
    t1 = time.perf_counter()
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    print(f"seeded {n_tickets:,} tickets, {n_contacts:,} contacts in {t1 - t0:.0f} s "
          f"(+{time.perf_counter() - t1:.0f} s indexes, ANALYZE, FTS optimize)", flush=True)


def add_agent(data_dir: Path) -> None:
    from web.auth import create_user
    from workers.runtime import close_runtime, open_runtime, settings_from

    async def run() -> None:
        rt = await open_runtime(settings_from(None, **{"core.data_dir": str(data_dir)}))
        try:
            await create_user(rt.store, AGENT, "agent", PASSWORD, name="Agente Bench",
                              queues=["Ministerio del Interior"])
        finally:
            await close_runtime(rt)

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INBOX_DATA_DIR": str(data_dir), "INBOX_WORKERS__IN_PROCESS": "",
           "INBOX_CORE__LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def load(base: str, clients: int, seconds: float, think_ms: float, rng: random.Random) -> None:
    import aiohttp

    tr = tramites()
    queues = sorted({t["agency"] for t in tr})[:25]
    words = sorted({w.lower() for t in tr for w in re.findall(r"\w{5,}", t["name"])})
    searches = words + [w.lower() for w in LAST] + [w.lower() for w in FIRST] + ["cedula", "jubilacion", "gracias"]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        html = await (await session.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        r = await session.post("/login", data={"email": AGENT, "password": PASSWORD, "csrf_token": token})
        assert r.status == 200 and "Bandeja" in await r.text(), r.status
        cursors: list[str] = []

        def list_url() -> str:
            choice = rng.random()
            if choice < 0.3:
                url = "/inbox"
            elif choice < 0.45:
                url = "/inbox?view=unassigned"
            elif choice < 0.6:
                url = "/inbox?view=mine"
            elif choice < 0.75:
                url = f"/inbox?queue={rng.choice(queues)}"
            elif choice < 0.9:
                url = f"/inbox?channel={rng.choice(CHANNELS)[0]}"
            else:
                url = f"/inbox?cursor={rng.choice(cursors)}" if cursors else "/inbox"
            return url

        def search_url() -> str:
            q = rng.choice(searches)
            if rng.random() < 0.3:
                q += " " + rng.choice(searches)[:4]  # a second word, typed halfway (prefix)
            scope = "&status=any" if rng.random() < 0.5 else ""
            return f"/inbox?q={q}{scope}"

        async def phase(name: str, make_url, duration: float) -> None:  # type: ignore[no-untyped-def]
            latencies: list[float] = []
            errors = 0
            stop_at = time.perf_counter() + duration

            async def client() -> None:
                nonlocal errors
                if think_ms:  # independent agents: they do not all click at the same instant
                    await asyncio.sleep(rng.random() * think_ms / 1000)
                while time.perf_counter() < stop_at:
                    url = make_url()
                    t0 = time.perf_counter()
                    async with session.get(url) as resp:
                        body = await resp.text()
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if resp.status != 200:
                        errors += 1
                    elif len(cursors) < 200 and "cursor=" in body:
                        m = re.search(r'cursor=([A-Za-z0-9_-]+)" rel="next"', body)
                        if m:
                            cursors.append(m.group(1))
                    if think_ms:
                        await asyncio.sleep(rng.random() * think_ms / 1000)

            await asyncio.gather(*(client() for _ in range(clients)))
            if name.startswith("warm"):
                return
            print(f"{name:7} clients={clients} think<= {think_ms:.0f} ms  n={len(latencies):6d}  "
                  f"{len(latencies) / duration:6.0f} req/s  p50={statistics.median(latencies):6.1f} ms  "
                  f"p95={pct(latencies, 95):6.1f} ms  p99={pct(latencies, 99):6.1f} ms  errors={errors}", flush=True)

        await phase("warm-up", list_url, 3)
        await phase("list", list_url, seconds)
        await phase("warm-up", search_url, 3)
        await phase("search", search_url, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--think-ms", type=float, nargs="+", default=[0.0])
    ap.add_argument("--reuse", action="store_true", help="reuse a database seeded earlier with the same size")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    data_dir = OUT / f"web-{args.tickets}"
    db = data_dir / "inbox.sqlite3"
    if not (args.reuse and db.exists()):
        if data_dir.exists():
            for p in sorted(data_dir.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
        data_dir.mkdir(parents=True, exist_ok=True)
        seed(db, args.tickets, rng)
        add_agent(data_dir)
    port = free_port()
    server = start_server(data_dir, port)
    try:
        for think in args.think_ms:
            asyncio.run(load(f"http://127.0.0.1:{port}", args.clients, args.seconds, think, rng))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
