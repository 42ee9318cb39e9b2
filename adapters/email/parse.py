"""Raw RFC 5322 bytes → InboundMessage (plain stdlib parse; deepened by the email channel work)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re

from inbox.domain import Identity, IdentityKind, InboundMessage, ThreadHints

TICKET_TAG = re.compile(r"\[#(\d{1,9})\]")
MSGID = re.compile(r"<([^<>\s]+)>")


class MalformedEmail(ValueError):
    pass


def parse_message(raw: bytes, account: str) -> InboundMessage:
    if not raw.strip():
        raise MalformedEmail("empty input")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not msg.keys():
        raise MalformedEmail("no headers")
    name, addr = email.utils.parseaddr(str(msg.get("From", "")))
    if not addr or "@" not in addr:
        raise MalformedEmail("no sender address")
    message_id = _first_id(str(msg.get("Message-ID", ""))) or "synthetic-" + hashlib.sha256(raw).hexdigest()[:32]
    subject = str(msg.get("Subject", "") or "")
    body = msg.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    m = TICKET_TAG.search(subject)
    date = None
    try:
        date = email.utils.parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    return InboundMessage(
        channel="email",
        account=account,
        external_id=message_id,
        sender=Identity(IdentityKind.EMAIL, addr.lower(), name or None),
        text=text,
        raw=raw,
        sent_at=date,
        subject=subject,
        hints=ThreadHints(
            in_reply_to=_first_id(str(msg.get("In-Reply-To", ""))),
            references=MSGID.findall(str(msg.get("References", ""))),
            ticket_number=int(m.group(1)) if m else None,
        ),
    )


def _first_id(value: str) -> str | None:
    m = MSGID.search(value)
    return m.group(1) if m else (value.strip() or None)
