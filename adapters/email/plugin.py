"""The email channel plugin: settings section, sender, IMAP worker, pipeline step, thread rules, auto-ack."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from adapters.email.parse import ParseOptions
from adapters.email.rules import (
    ACK_JOB,
    ack_planner,
    by_ticket_tag_correspondent,
    email_message_id,
    recent_subject_rule,
)
from adapters.email.settings import EmailSettings
from inbox.domain import Job
from workers.outbox import queue_reply

if TYPE_CHECKING:
    from workers.runtime import Runtime

SETTINGS = {"email": EmailSettings}
CHANNEL = "email"
ACK_AUTHOR = "system:email-ack"


def email_settings(rt: Runtime) -> EmailSettings:
    return rt.settings.email  # type: ignore[no-any-return]


def parse_options(settings: EmailSettings) -> ParseOptions:
    """What the parser must know about us: our addresses and Message-ID domain, limits."""
    return ParseOptions(
        own_addresses=frozenset(a.address.lower() for a in settings.accounts),
        own_domains=frozenset({settings.domain}),
        max_attachment_bytes=settings.max_attachment_bytes,
        allow_remote_images=settings.allow_remote_images,
        max_subject_chars=settings.max_subject_chars,
        max_text_chars=settings.max_text_chars,
    )


async def email_worker(rt: Runtime, stop: Any) -> None:
    from adapters.email.imap import run_watchers

    settings = email_settings(rt)
    await run_watchers(rt, settings, parse_options(settings), stop)


async def send_ack(rt: Runtime, job: Job) -> None:
    """The ``email_ack`` job: an outgoing acknowledgement with the ticket number, delivered by the outbox, that does
    not count as the ticket's first response."""
    settings = email_settings(rt)
    ticket = await rt.store.get_ticket(job.payload["ticket_id"])
    if ticket is None:
        return
    await queue_reply(rt, ticket, settings.ack_text.format(number=ticket.number), ACK_AUTHOR, channel=CHANNEL,
                      meta={"kind": "auto_ack"}, request_id=f"ack:{ticket.id}", first_response=False)


def setup(rt: Runtime) -> None:
    from adapters.email.send import SmtpSender

    settings = email_settings(rt)
    rt.channels[CHANNEL] = SmtpSender(rt, settings)
    rt.workers[CHANNEL] = email_worker
    rt.job_handlers[ACK_JOB] = send_ack
    rt.services["email.parse_options"] = parse_options(settings)
    pipeline = rt.pipeline
    pipeline.insert_step("email_message_id", email_message_id, before="dedupe")
    pipeline.insert_thread_rule("email_ticket_tag_correspondent", by_ticket_tag_correspondent)
    pipeline.insert_thread_rule("email_recent_subject", recent_subject_rule(settings.subject_thread_days))
    pipeline.job_planners.append(ack_planner(settings))


# -- CLI -----------------------------------------------------------------------------------------------------------
async def _status(rt: Runtime, args: argparse.Namespace) -> int:
    from inbox.health import channel_health

    settings = email_settings(rt)
    cursors = {k: v for k, v in await rt.store.list_docs("cursors") if k.startswith("imap:")}
    health = [h for h in await channel_health(rt.store) if h.get("channel") == CHANNEL]
    out = {"accounts": [a.name for a in settings.accounts], "message_id_domain": settings.domain,
           "cursors": cursors, "health": health}
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def register_cli(sub: Any, common: argparse.ArgumentParser, with_runtime: Any) -> None:
    p = sub.add_parser("email", parents=[common], help="email channel: cursors and health of the mailboxes")
    esub = p.add_subparsers(dest="email_command", required=True)
    esub.add_parser("status", parents=[common], help="mailboxes, IMAP cursors and health").set_defaults(
        func=with_runtime(_status))
