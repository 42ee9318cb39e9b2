"""The outbox: the only way anything leaves. A stored outgoing message (queued) is delivered by a ``deliver`` job
through its channel's sender; the outcome (sent + external id, or failed + reason) is written back as an event."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from inbox.channels import SendError
from inbox.domain import DeliveryStatus, Direction, Job, Message, Ticket, stable_id, utcnow
from inbox.store.base import JobSpec
from workers.jobs import PermanentFailure, RetryLater

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


async def queue_reply(
    rt: Runtime,
    ticket: Ticket,
    text: str,
    author_user: str,
    *,
    html: str | None = None,
    channel: str | None = None,
    meta: dict | None = None,
    request_id: str | None = None,
    first_response: bool = True,
) -> Message:
    """Store an outgoing message (queued) and its delivery job in one write.

    ``request_id`` makes a double-submitted form (or a retried job) one message, not two. Automatic messages
    (acknowledgements, surveys) pass ``first_response=False``: a robot's message must not stop the agents'
    response-time clock."""
    key = request_id or utcnow().isoformat()
    message = Message(
        id=stable_id("m", "out", ticket.id, key),
        ticket_id=ticket.id,
        direction=Direction.OUT,
        channel=channel or ticket.channel,
        account=ticket.meta.get("account", ""),
        external_id=None,
        author=None,
        text=text,
        html=html,
        subject=ticket.subject,
        delivery_status=DeliveryStatus.QUEUED,
        author_user=author_user,
        meta=dict(meta or {}),
    )
    existing = await rt.store.get_message(message.id)
    if existing is not None:
        return existing
    job = JobSpec("deliver", {"message_id": message.id}, dedupe_key=f"deliver:{message.id}")
    return await rt.store.add_message(message, author_user, [], [job], first_response=first_response)


async def deliver(rt: Runtime, job: Job) -> None:
    message = await rt.store.get_message(job.payload["message_id"])
    if message is None:
        raise PermanentFailure(f"message {job.payload['message_id']} is gone")
    if message.delivery_status == DeliveryStatus.SENT:
        return  # a re-delivered job after a crash between send and complete: never send twice
    ticket = await rt.store.get_ticket(message.ticket_id)
    sender = rt.channels.get(message.channel)
    if ticket is None or sender is None:
        reason = f"no sender for channel {message.channel!r}" if ticket else "ticket is gone"
        await rt.store.set_delivery(message.id, DeliveryStatus.FAILED, "system:outbox", error=reason)
        raise PermanentFailure(reason)
    thread = await rt.store.list_messages(ticket.id)
    try:
        external_id = await sender.send(ticket, message, thread)
    except SendError as exc:
        last_try = job.attempts >= job.max_attempts
        if exc.permanent or last_try:
            await rt.store.set_delivery(message.id, DeliveryStatus.FAILED, "system:outbox", error=exc.reason)
            raise PermanentFailure(exc.reason) from exc
        raise RetryLater(exc.reason, exc.retry_after_s) from exc
    await rt.store.set_delivery(message.id, DeliveryStatus.SENT, "system:outbox", external_id=external_id)


async def jobs_worker(rt: Runtime, stop) -> None:
    from workers.jobs import run_jobs

    await run_jobs(rt, stop=stop)


def setup(rt: Runtime) -> None:
    rt.job_handlers["deliver"] = deliver
    rt.workers["jobs"] = jobs_worker
