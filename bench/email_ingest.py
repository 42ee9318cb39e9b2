"""Email ingest throughput: N varied mails delivered into a real Dovecot (written into its Maildir, as the MTA does),
then taken over IMAP (IDLE watcher, BODY.PEEK[] batches, post-commit \\Seen, cursor) through the parser and the
pipeline into the SQLite store. Prints messages/s next to the floor measured in the same run: parsing the same bytes
with ``email.message_from_bytes`` alone (and, for reference, our parser alone).

    .venv/bin/python bench/email_ingest.py [--count 5000] [--batch 50]

Needs Dovecot (apt-get install -y dovecot-imapd dovecot-lmtpd). Run by hand; figures go in the notes.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import os
import random
import shutil
import sys
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.email.parse import ParseOptions, parse_message  # noqa: E402
from inbox.domain import TicketFilter  # noqa: E402
from tests.support.dovecot import PASSWORD, Dovecot  # noqa: E402
from workers.runtime import close_runtime, open_runtime, settings_from  # noqa: E402

TMP = Path(__file__).parent / "out"
FIXTURES = ROOT / "tests" / "fixtures" / "email"
WORDS = ("cédula pasaporte partida nacimiento jubilación trámite consulta agenda hora certificado residencia "
         "factura agua luz reclamo licencia conducir asignaciones familiares BPS intendencia turno").split()
NAMES = ["María José Pérez", "Martín González", "Lucía Fernández", "Diego Sosa", "Ana Silva", "Nelson Cabrera",
         "Florencia Techera", "Rodrigo Núñez", "Valentina Martínez", "Gonzalo Pereira"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generated(i: int, rng: random.Random) -> bytes:
    """One of several shapes: plain UTF-8, Latin-1 QP, HTML only, alternative with quoted history, attachment."""
    kind = i % 6
    person = i % 700
    msg = EmailMessage()
    msg["From"] = f"{NAMES[person % len(NAMES)]} <persona{person}@example.com>"
    msg["To"] = "Atención Ciudadana <atencionciudadana@example.gub.uy>"
    msg["Subject"] = f"Consulta {i}: {sentence(rng, 4)}"
    msg["Date"] = "Mon, 03 Nov 2025 10:02:00 -0300"
    msg["Message-ID"] = f"<bench-{i}@example.com>"
    body = "\n".join(sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(2, 6)))
    if kind == 0:
        msg.set_content(body)
    elif kind == 1:
        msg.set_content(body, charset="iso-8859-1", cte="quoted-printable")
    elif kind == 2:
        msg.set_content(f"<html><body><p>{body.replace(chr(10), '</p><p>')}</p>"
                        f'<img src="https://t.example/p.gif?{i}" width="1" height="1"></body></html>', subtype="html")
    elif kind == 3:
        if i > 6:
            msg["In-Reply-To"] = f"<bench-{i - 6}@example.com>"
        quoted = "\n".join("> " + line for line in body.splitlines())
        msg.set_content(f"{sentence(rng, 10)}\n\nEl lun, 3 nov 2025 a las 10:02, Atención Ciudadana "
                        f"<atencionciudadana@example.gub.uy> escribió:\n\n{quoted}\n")
        msg.add_alternative(f"<div>{sentence(rng, 10)}</div><div class=\"gmail_quote\"><blockquote>"
                            f"{body}</blockquote></div>", subtype="html")
    elif kind == 4:
        msg.set_content(body)
        msg.add_attachment(os.urandom(rng.randint(2_000, 60_000)), maintype="application", subtype="pdf",
                           filename=f"comprobante-{i}.pdf")
    else:
        msg.set_content(body + "\n\n-- \nEnviado desde mi iPhone")
    return msg.as_bytes()


def corpus(count: int) -> list[bytes]:
    """Mostly generated mail, with every 10th one a shared fixture made unique (its Message-ID replaced)."""
    rng = random.Random(7)
    fixtures = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    out = []
    for i in range(count):
        if i % 10 == 9:
            raw = fixtures[(i // 10) % len(fixtures)]
            out.append(f"Message-ID: <fixture-{i}@example.com>\r\n".encode() + _drop_message_id(raw))
        else:
            out.append(generated(i, rng))
    return out


def _drop_message_id(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    end = next((n for n, line in enumerate(lines) if not line.strip()), len(lines))
    head = [line for line in lines[:end] if not line.lower().startswith(b"message-id:")]
    return b"\n".join(head + lines[end:])


def floor(raws: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in raws:
        email.message_from_bytes(raw)
    return len(raws) / (time.perf_counter() - started)


def parser_only(raws: list[bytes]) -> float:
    options = ParseOptions(own_addresses=frozenset({"atencionciudadana@example.gub.uy"}))
    started = time.perf_counter()
    for raw in raws:
        parse_message(raw, "bench", options=options)
    return len(raws) / (time.perf_counter() - started)


async def through_imap(dc: Dovecot, user: str, count: int, batch: int, data_dir: Path) -> dict[str, float]:
    os.environ["INBOX_EMAIL__PASSWORD"] = PASSWORD
    settings = settings_from(None, **{
        "core.data_dir": str(data_dir), "email.message_id_domain": "inbox.example.gub.uy", "email.fetch_batch": batch,
        "email.accounts": [{"name": "atencion", "address": "atencionciudadana@example.gub.uy",
                            "imap_host": "127.0.0.1", "imap_port": dc.imap_port, "imap_tls": False,
                            "imap_user": user}]})
    rt = await open_runtime(settings)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(rt.workers["email"](rt, stop))
    try:
        while True:
            watchers = rt.services.get("email.watchers") or []
            stats = watchers[0].stats if watchers else {}
            done = stats.get("ingested", 0) + stats.get("duplicate", 0) + stats.get("quarantined", 0)
            if done >= count:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        tickets = await rt.store.count_tickets(TicketFilter(channel="email"))
    finally:
        stop.set()
        await task
        await close_runtime(rt)
    return {"seconds": elapsed, "per_s": count / elapsed, "tickets": tickets, **{k: float(v) for k, v in stats.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=50, help="IMAP FETCH batch (email.fetch_batch)")
    args = ap.parse_args()
    TMP.mkdir(exist_ok=True)
    data_dir = TMP / f"email-{os.getpid()}"
    raws = corpus(args.count)
    dc = Dovecot()
    dc.start()
    try:
        user = dc.new_user("bench")
        t = time.perf_counter()
        dc.write_maildir(user, raws)
        deliver_s = time.perf_counter() - t
        result = asyncio.run(through_imap(dc, user, args.count, args.batch, data_dir))
    finally:
        dc.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)
    floor_rate = floor(raws)
    ours = parser_only(raws)
    mb = sum(len(r) for r in raws) / 1e6
    print(f"delivered {args.count} mails ({mb:.1f} MB) into the Maildir in {deliver_s:.1f} s")
    print(f"IMAP → parser → pipeline → SQLite: {result['per_s']:.0f} messages/s "
          f"({args.count} in {result['seconds']:.1f} s; ingested {result['ingested']:.0f}, "
          f"duplicates {result['duplicate']:.0f}, quarantined {result['quarantined']:.0f}, "
          f"{result['tickets']:.0f} tickets)")
    print(f"floor, email.message_from_bytes alone: {floor_rate:.0f} messages/s")
    print(f"our parser alone (parse_message): {ours:.0f} messages/s")
    print(json.dumps({"count": args.count, "batch": args.batch, "messages_per_s": round(result["per_s"], 1),
                      "floor_per_s": round(floor_rate, 1), "parser_per_s": round(ours, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
