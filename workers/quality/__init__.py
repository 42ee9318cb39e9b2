"""Service quality plugin: queues and fair assignment, SLAs on Uruguay's calendar, satisfaction surveys, public
results, dashboards, data protection and Prometheus metrics. See docs/quality.md.

Registers job handlers (``quality_tick``, ``sla_check``, ``sla_notify``, ``assign``, ``csat_send``), an ingest job
planner, the ``quality`` worker, the web pages (web/quality) and the ``inbox quality ...`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from workers.quality.settings import SECTIONS

if TYPE_CHECKING:
    from workers.runtime import Runtime

SETTINGS = SECTIONS


def setup(rt: Runtime) -> None:
    from workers.quality import assignment, csat, engine, sla

    rt.job_handlers["quality_tick"] = engine.tick_job
    rt.job_handlers["sla_check"] = sla.check_job
    rt.job_handlers["sla_notify"] = sla.notify_job
    rt.job_handlers["assign"] = assignment.assign_job
    rt.job_handlers["csat_send"] = csat.send_job
    rt.workers["quality"] = engine.quality_worker

    def planner(p: Any, ctx: Any) -> list[Any]:
        return engine.plan_quality(rt, p, ctx)

    planner.__name__ = "plan_quality"
    rt.pipeline.job_planners.append(planner)

    def web_setup(app: Any, runtime: Runtime) -> None:
        from web.quality import setup_web

        setup_web(app, runtime)

    rt.web_setups.append(web_setup)


# -- command line ----------------------------------------------------------------------------------------------------
async def _find_contact(rt: Runtime, args: argparse.Namespace) -> Any:
    if args.contact:
        return await rt.store.get_contact(args.contact)
    kind, _, value = args.identity.partition(":")
    return await rt.store.find_contact_by_identity(kind, value)


async def _export(rt: Runtime, args: argparse.Namespace) -> int:
    from workers.quality.retention import export_contact

    contact = await _find_contact(rt, args)
    if contact is None:
        print("no such contact", file=sys.stderr)
        return 1
    data = await export_contact(rt, contact.id)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


async def _erase(rt: Runtime, args: argparse.Namespace) -> int:
    from workers.quality.retention import erase_contact

    contact = await _find_contact(rt, args)
    if contact is None:
        print("no such contact", file=sys.stderr)
        return 1
    if not args.yes:
        print(f"would erase contact {contact.id} ({contact.name}); add --yes to do it", file=sys.stderr)
        return 2
    result = await erase_contact(rt, contact.id, f"cli:{args.by}")
    print(json.dumps(result))
    return 0


async def _retention(rt: Runtime, args: argparse.Namespace) -> int:
    from workers.quality.retention import run_retention

    print(json.dumps(await run_retention(rt, dry_run=args.dry_run, force=True)))
    return 0


async def _tick(rt: Runtime, args: argparse.Namespace) -> int:
    from workers.quality.engine import tick

    print(json.dumps(await tick(rt)))
    return 0


def register_cli(sub: Any, common: argparse.ArgumentParser, with_runtime: Any) -> None:
    p = sub.add_parser("quality", parents=[common], help="service quality: data protection, retention, sweeps")
    qsub = p.add_subparsers(dest="quality_command", required=True)
    for name, fn, help_ in (("export", _export, "export one person's data as JSON"),
                            ("erase", _erase, "erase one person's data everywhere")):
        q = qsub.add_parser(name, parents=[common], help=help_)
        g = q.add_mutually_exclusive_group(required=True)
        g.add_argument("--contact", help="contact id")
        g.add_argument("--identity", help="KIND:VALUE, e.g. email:ana@example.com")
        if name == "export":
            q.add_argument("-o", "--output", help="write to this file instead of standard output")
        else:
            q.add_argument("--yes", action="store_true", help="really erase")
            q.add_argument("--by", default="admin", help="who requested it (recorded in the audit log)")
        q.set_defaults(func=with_runtime(fn))
    q = qsub.add_parser("retention", parents=[common], help="apply the retention policies now")
    q.add_argument("--dry-run", action="store_true", help="only count what would be anonymized or deleted")
    q.set_defaults(func=with_runtime(_retention))
    q = qsub.add_parser("tick", parents=[common], help="run one quality tick (events, assignment sweeps) now")
    q.set_defaults(func=with_runtime(_tick))
