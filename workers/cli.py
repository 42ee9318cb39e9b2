"""The ``inbox`` command line. Core commands live here; plugins add theirs through ``register_cli``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from inbox.settings import Settings, SettingsError
from workers import runtime as rtmod
from workers.runtime import Runtime

log = logging.getLogger("inbox")


def load(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"core.data_dir": getattr(args, "data_dir", None),
                                 "core.store": getattr(args, "store", None),
                                 "core.mongodb_url": getattr(args, "mongodb_url", None)}
    return rtmod.settings_from(getattr(args, "settings", None), **overrides)


def with_runtime(fn: Callable[[Runtime, argparse.Namespace], Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    """Run ``fn`` with an open runtime built from the command's options."""

    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            rt = await rtmod.open_runtime(load(args))
            try:
                return await fn(rt, args)
            finally:
                await rtmod.close_runtime(rt)

        return asyncio.run(main())

    return run


# -- serve ---------------------------------------------------------------------------------------------------------
async def _serve(rt: Runtime, args: argparse.Namespace) -> int:
    from aiohttp import web

    from web.app import create_app

    host = args.host or rt.settings.web.host
    port = args.port if args.port is not None else rt.settings.web.port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(rt), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    print(f"inbox serving on http://{host}:{bound}/ (data: {rt.data_dir.resolve()})", flush=True)
    tasks = [asyncio.create_task(_run_worker(rt, name, stop)) for name in rt.settings.workers.in_process]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    return 0


async def _run_worker(rt: Runtime, name: str, stop: asyncio.Event) -> None:
    worker = rt.workers.get(name)
    if worker is None:
        raise SystemExit(f"unknown worker {name!r}; known: {', '.join(sorted(rt.workers))}")
    while not stop.is_set():
        try:
            await worker(rt, stop)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # a worker never dies silently: log and restart after a pause
            log.exception("worker %s crashed; restarting in 5 s", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)


async def _worker(rt: Runtime, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if args.name not in rt.workers:
        print(f"unknown worker {args.name!r}; known: {', '.join(sorted(rt.workers))}", file=sys.stderr)
        return 2
    await _run_worker(rt, args.name, stop)
    return 0


# -- ingest --------------------------------------------------------------------------------------------------------
async def _ingest_email(rt: Runtime, args: argparse.Namespace) -> int:
    from adapters.email.parse import parse_message

    counts = {"ingested": 0, "duplicates": 0, "quarantined": 0}
    for name in args.files:
        path = Path(name)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc}", file=sys.stderr)
            counts["quarantined"] += 1
            continue
        try:
            inbound = parse_message(raw, args.account, options=rt.services.get("email.parse_options"))
        except Exception as exc:  # bad input is archived and reported, never a crash
            outcome = await rt.pipeline.quarantine(raw, "email", args.account, f"{type(exc).__name__}: {exc}")
        else:
            outcome = await rt.pipeline.ingest(inbound)
        key = {"ingested": "ingested", "duplicate": "duplicates", "quarantined": "quarantined"}[outcome.status]
        counts[key] += 1
        if args.verbose:
            print(f"{name}: {outcome.status} #{outcome.ticket_number or '-'}", file=sys.stderr)
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"ingested {counts['ingested']}, duplicates {counts['duplicates']}, quarantined {counts['quarantined']}")
    return 0


# -- tickets -------------------------------------------------------------------------------------------------------
async def _tickets(rt: Runtime, args: argparse.Namespace) -> int:
    from inbox.domain import TicketFilter

    flt = TicketFilter(status=args.status or None, channel=args.channel, text=args.search)
    rows: list[dict[str, Any]] = []
    cursor = None
    while len(rows) < args.limit:
        page = await rt.store.list_tickets(flt, cursor=cursor, limit=min(500, args.limit - len(rows)))
        for t in page.items:
            contact = await rt.store.get_contact(t.contact_id)
            rows.append({
                "number": t.number,
                "status": t.status,
                "channel": t.channel,
                "subject": t.subject,
                "contact": _contact_label(contact),
                "contact_id": t.contact_id,
                "messages": t.message_count,
                "tramite": t.tags["tramite"].value if "tramite" in t.tags else None,
                "agency": t.tags["agency"].value if "agency" in t.tags else None,
                "assignee": t.assignee,
                "queue": t.queue,
                "last_activity_at": t.last_activity_at.isoformat(),
            })
        cursor = page.next_cursor
        if cursor is None:
            break
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print(f"{'#':>7}  {'status':8} {'channel':9} {'msgs':>4}  {'contact':28} subject")
    for r in rows:
        print(f"{r['number']:>7}  {r['status']:8} {r['channel']:9} {r['messages']:>4}  "
              f"{(r['contact'] or '')[:28]:28} {(r['subject'] or '')[:60]}")
    return 0


def _contact_label(contact: Any) -> str | None:
    if contact is None:
        return None
    if contact.name:
        return str(contact.name)
    return contact.identities[0].value if contact.identities else contact.id


# -- db ------------------------------------------------------------------------------------------------------------
async def _migrate(rt: Runtime, args: argparse.Namespace) -> int:
    applied = await rt.store.migrate()
    print("schema is up to date" if not applied else "applied: " + ", ".join(applied))
    return 0


def common_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data-dir", help="data directory (default ./data, or INBOX_DATA_DIR)")
    p.add_argument("--store", choices=["sqlite", "mongodb"], help="store backend (default sqlite)")
    p.add_argument("--mongodb-url", help="MongoDB URL when --store mongodb")
    p.add_argument("--settings", help="settings file (default ./settings.toml or INBOX_SETTINGS)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(prog="inbox", description="Unified citizen-service inbox", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the web app and in-process workers")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=with_runtime(_serve))

    p = sub.add_parser("worker", parents=[common], help="run one kind of worker alone")
    p.add_argument("name")
    p.set_defaults(func=with_runtime(_worker))

    p = sub.add_parser("ingest", parents=[common], help="feed raw inputs through the ingest pipeline")
    isub = p.add_subparsers(dest="channel", required=True)
    pe = isub.add_parser("email", parents=[common], help="raw .eml files")
    pe.add_argument("files", nargs="+")
    pe.add_argument("--account", default="import", help="mailbox account name to file them under")
    pe.add_argument("--json", action="store_true")
    pe.add_argument("-v", "--verbose", action="store_true")
    pe.set_defaults(func=with_runtime(_ingest_email))

    p = sub.add_parser("tickets", parents=[common], help="list tickets")
    p.add_argument("--json", action="store_true")
    p.add_argument("--status", action="append")
    p.add_argument("--channel")
    p.add_argument("--search")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=with_runtime(_tickets))

    p = sub.add_parser("db", parents=[common], help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("migrate", parents=[common]).set_defaults(func=with_runtime(_migrate))

    for module in rtmod.plugin_modules():
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub, common, with_runtime)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rtmod.register_plugin_settings()
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"settings error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
