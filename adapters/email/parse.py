"""Raw RFC 5322 bytes → InboundMessage, through an ordered list of small named filters (Zammad style).

prepare_raw → parse_structure → read_addresses → read_subject_and_date → identify → collect_parts → detect_bounce
→ derive_text → forwarded_inline → split_quotes → sanitize_html → detect_auto_reply → detect_own_message
→ thread_hints

Each filter reads and fills a ``ParseContext``; ``parse_message`` runs them and builds the InboundMessage. Input that
cannot be a mail (no headers, no sender at all) raises ``MalformedEmail``; the caller quarantines the raw bytes.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.email import htmlsafe, mime
from adapters.email.quotes import FORWARD_MARKER, FORWARD_SUBJECT, SplitText, split_quotes
from inbox.domain import Identity, IdentityKind, InboundAttachment, InboundMessage, ThreadHints

TICKET_TAG = re.compile(r"\[#(\d{1,9})\]")
LOOP_HEADER = "X-Inbox-Loop"
TICKET_HEADER = "X-Inbox-Ticket"
SYNTHETIC_DOMAIN = "synthetic.invalid"
# Headers that change between two deliveries of the same mail (trace, delivery, filtering): not part of its content.
_CONTENT_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TRAILING_SPACE = re.compile(rb"[ \t\r]+(?=\n|$)")
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:respuesta autom[áa]tica|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|"
    r"out of (?:the )?office|fuera de (?:la )?oficina|r[ée]ponse automatique|abwesenheitsnotiz|"
    r"resposta autom[áa]tica|ausencia)\b[^:]{0,40}:",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery status notification \(failure\)|mail delivery failed|"
    r"returned mail|failure notice|no se (?:pudo|puede) entregar|no entregado|notificaci[óo]n de estado de "
    r"entrega \(error\))",
    re.IGNORECASE,
)
_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}


class MalformedEmail(ValueError):
    """Input that is not an email at all; the raw bytes are quarantined, never dropped."""


@dataclass(frozen=True)
class ParseOptions:
    own_addresses: frozenset[str] = frozenset()  # our mailbox addresses (lower-case)
    own_domains: frozenset[str] = frozenset()  # domains of our Message-IDs
    max_attachment_bytes: int = 25 * 1024 * 1024
    allow_remote_images: bool = False
    max_subject_chars: int = 1000
    max_text_chars: int = 200_000


@dataclass
class ParseContext:
    raw: bytes
    account: str
    options: ParseOptions
    data: bytes = b""  # the bytes actually parsed (raw minus leading junk)
    msg: email.message.Message | None = None
    headers: mime.RawHeaders | None = None
    from_name: str = ""
    from_address: str = ""
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    sent_at: datetime | None = None
    message_id: str = ""
    synthetic_id: bool = False
    content_hash: str = ""
    plain_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    cids: dict[str, int] = field(default_factory=dict)  # Content-ID → index in attachments
    forwarded: list[dict[str, Any]] = field(default_factory=list)
    dsn: dict[str, Any] | None = None
    returned_ids: list[str] = field(default_factory=list)  # Message-IDs of mail returned in a bounce
    body_text: str = ""  # the text of the mail's own body parts
    text_full: str = ""  # visible + signature + quoted
    split: SplitText | None = None
    html: str | None = None
    flags: list[str] = field(default_factory=list)
    hints: ThreadHints = field(default_factory=ThreadHints)
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # decoding decisions and defects worth keeping

    def flag(self, name: str, reason: str) -> None:
        if name not in self.flags:
            self.flags.append(name)
        self.meta.setdefault("flag_reasons", {}).setdefault(name, []).append(reason)

    @property
    def h(self) -> mime.RawHeaders:
        assert self.headers is not None
        return self.headers


Filter = Callable[[ParseContext], None]


# -- filters -------------------------------------------------------------------------------------------------------
def prepare_raw(ctx: ParseContext) -> None:
    """Drop leading blank or whitespace-only lines (seen in the wild) so the first header parses."""
    if not ctx.raw.strip():
        raise MalformedEmail("empty input")
    data = ctx.raw
    while True:
        nl = data.find(b"\n")
        if nl < 0 or data[:nl].strip():
            break
        data = data[nl + 1:]
    ctx.data = data


def parse_structure(ctx: ParseContext) -> None:
    msg = mime.parse_bytes(ctx.data)
    if not msg.keys():
        raise MalformedEmail("no headers")
    ctx.msg = msg
    ctx.headers = mime.RawHeaders(msg)
    defects = {type(d).__name__ for part in msg.walk() for d in getattr(part, "defects", [])}
    if defects:
        ctx.notes.extend(sorted(defects))


def read_addresses(ctx: ParseContext) -> None:
    h = ctx.h
    sender = (mime.parse_addresses(h.all("from")) or mime.parse_addresses(h.all("sender"))
              or mime.parse_addresses(h.all("reply-to")))
    if not sender:
        path = mime.message_ids(h.raw("return-path"))
        sender = [("", path[0].lower())] if path else []
    if not sender:
        raise MalformedEmail("no sender address")
    ctx.from_name, ctx.from_address = sender[0]
    ctx.reply_to = mime.parse_addresses(h.all("reply-to"))
    ctx.to = mime.parse_addresses(h.all("to"))
    ctx.cc = mime.parse_addresses(h.all("cc"))


def read_subject_and_date(ctx: ParseContext) -> None:
    limit = ctx.options.max_subject_chars
    ctx.subject = ctx.h.text("subject", limit + 1)
    if len(ctx.subject) > limit:
        ctx.subject = ctx.subject[:limit]
        ctx.meta["subject_truncated"] = True
    date = ctx.h.raw("date")
    if date:
        try:
            parsed = email.utils.parsedate_to_datetime(mime.raw_to_text(date).strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ctx.sent_at = parsed


def content_hash(data: bytes, headers: mime.RawHeaders) -> str:
    """A hash of what the mail says, not of how it travelled: the content headers and the body, line endings
    normalised. Two deliveries of one mail (e.g. through a Cc alias) hash the same."""
    digest = hashlib.sha256()
    for name in _CONTENT_HEADERS:
        for value in headers.all(name):
            digest.update(name.encode() + b":" + re.sub(r"\s+", " ", mime.raw_to_text(value)).strip().encode(
                "utf-8", "surrogateescape") + b"\n")
    m = _HEADER_END.search(data)
    body = data[m.end():] if m else b""
    body = _TRAILING_SPACE.sub(b"", body.replace(b"\r\n", b"\n")).strip()
    digest.update(b"\n\n" + body)
    return digest.hexdigest()


def identify(ctx: ParseContext) -> None:
    ctx.content_hash = content_hash(ctx.data, ctx.h)
    ids = mime.message_ids(ctx.h.raw("message-id"))
    if ids:
        ctx.message_id = ids[0][:500]
    else:
        ctx.message_id = f"{ctx.content_hash[:32]}@{SYNTHETIC_DOMAIN}"
        ctx.synthetic_id = True


def _attachment(ctx: ParseContext, part: email.message.Message, data: bytes, filename: str | None,
                content_type: str) -> InboundAttachment:
    if not filename:
        ext = ".eml" if content_type == "message/rfc822" else (mimetypes.guess_extension(content_type) or ".bin")
        filename = f"adjunto-{len(ctx.attachments) + 1}{ext}"
    cid_raw = part.get("Content-ID")
    ids = mime.message_ids(str(cid_raw)) if cid_raw else []
    cid = ids[0] if ids else (str(cid_raw).strip().strip("<>") or None if cid_raw else None)
    skipped = "too_large" if len(data) > ctx.options.max_attachment_bytes else None
    return InboundAttachment(filename=filename, content_type=content_type, data=None if skipped else data,
                             size=len(data), content_id=cid, skipped=skipped)


def _message_bytes(inner: email.message.Message) -> bytes:
    try:
        return inner.as_bytes()
    except Exception:  # the generator chokes on some broken input; the raw mail stays archived anyway
        return str(inner).encode("utf-8", "surrogateescape")


def _summarize_message(inner: email.message.Message) -> dict[str, Any]:
    h = mime.RawHeaders(inner)
    sender = mime.parse_addresses(h.all("from"))
    text = ""
    for part in inner.walk():
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            text = mime.part_text(part).text
            break
    if not text:
        for part in inner.walk():
            if part.get_content_type() == "text/html":
                text = htmlsafe.html_to_text(mime.part_text(part).text)
                break
    ids = mime.message_ids(h.raw("message-id"))
    return {
        "from": sender[0][1] if sender else None,
        "name": (sender[0][0] or None) if sender else None,
        "subject": h.text("subject", 1000),
        "date": h.text("date"),
        "message_id": ids[0] if ids else None,
        "text": text[:20_000],
    }


def _parse_dsn(part: email.message.Message) -> dict[str, Any]:
    blocks = part.get_payload()
    fields: dict[str, Any] = {"recipients": []}
    if not isinstance(blocks, list):
        return fields
    for i, block in enumerate(blocks):
        if not isinstance(block, email.message.Message):
            continue
        if i == 0:
            fields["reporting_mta"] = mime.decode_header(block.get("Reporting-MTA"))
            continue
        fields["recipients"].append({
            "recipient": mime.decode_header(block.get("Final-Recipient") or block.get("Original-Recipient")),
            "action": mime.decode_header(block.get("Action")).lower(),
            "status": mime.decode_header(block.get("Status")),
            "diagnostic": mime.decode_header(block.get("Diagnostic-Code"))[:1000],
        })
    return fields


def _visit(ctx: ParseContext, part: email.message.Message) -> None:
    ctype = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = mime.filename_of(part)
    if ctype == "message/rfc822" or ctype == "message/global":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, email.message.Message):
            ctx.attachments.append(_attachment(ctx, part, _message_bytes(inner), filename, "message/rfc822"))
            summary = _summarize_message(inner)
            summary["attachment"] = ctx.attachments[-1].filename
            ctx.forwarded.append(summary)
        return
    if ctype == "text/rfc822-headers":
        found = re.search(r"(?im)^message-id:\s*(.+)$", mime.part_text(part).text)
        if found:
            ctx.returned_ids.extend(mime.message_ids(found.group(1)))
        return
    if ctype == "message/delivery-status":
        ctx.dsn = _parse_dsn(part)
        return
    if part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, email.message.Message):
                _visit(ctx, child)
        return
    is_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and not (
        filename and disposition == "inline" and ctype == "text/plain" and ctx.plain_parts)
    if is_body:
        decoded = mime.part_text(part)
        if decoded.how != "declared":
            ctx.notes.append(f"{ctype}: declared {mime.charset_of(part)!r}, decoded as {decoded.charset} "
                             f"({decoded.how})")
        (ctx.plain_parts if ctype == "text/plain" else ctx.html_parts).append(decoded.text)
        return
    data = mime.part_bytes(part)
    ctx.attachments.append(_attachment(ctx, part, data, filename, ctype))


def collect_parts(ctx: ParseContext) -> None:
    assert ctx.msg is not None
    _visit(ctx, ctx.msg)
    html = "\n".join(ctx.html_parts)
    # An inline part is an embedded image only when the HTML shows it; otherwise it is a normal attachment.
    kept: list[InboundAttachment] = []
    for a in ctx.attachments:
        if a.content_id and f"cid:{a.content_id}" not in html:
            a = InboundAttachment(a.filename, a.content_type, a.data, a.size, None, a.skipped)
        kept.append(a)
    ctx.attachments = kept
    ctx.cids = {a.content_id: i for i, a in enumerate(kept) if a.content_id}


def derive_text(ctx: ParseContext) -> None:
    if ctx.plain_parts:
        text = "\n\n".join(p.strip("\n") for p in ctx.plain_parts)
    elif ctx.html_parts:
        text = htmlsafe.html_to_text("\n".join(ctx.html_parts))
        ctx.meta["text_from_html"] = True
    else:
        text = ""
    ctx.body_text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _attached_messages_text(ctx: ParseContext) -> str:
    """Forwarded messages attached as message/rfc822 are content agents must see (not for bounces)."""
    if "bounce" in ctx.flags:
        return ""
    blocks = []
    for fwd in ctx.forwarded:
        if not fwd.get("text"):
            continue
        sender = f"{fwd['name']} <{fwd['from']}>" if fwd.get("name") else fwd.get("from")
        header = "\n".join(f"{label}: {value}" for label, value in (
            ("De", sender), ("Asunto", fwd.get("subject")), ("Fecha", fwd.get("date"))) if value)
        blocks.append(f"---------- Mensaje adjunto ----------\n{header}\n\n{fwd['text'].strip()}")
    return "\n\n".join(blocks)


def split_quoted(ctx: ParseContext) -> None:
    split = split_quotes(ctx.body_text, ctx.subject)
    attached = _attached_messages_text(ctx)
    if attached:
        split.visible = f"{split.visible}\n\n{attached}".strip()
    limit = ctx.options.max_text_chars
    if len(split.visible) > limit:
        split.visible = split.visible[:limit]
        ctx.meta["text_truncated"] = True
    ctx.split = split
    ctx.text_full = split.full
    if split.quoted:
        ctx.meta["quoted_text"] = split.quoted[:limit]
        ctx.meta["quote_rule"] = split.rule
    if split.signature:
        ctx.meta["signature"] = split.signature


def sanitize_html(ctx: ParseContext) -> None:
    if not ctx.html_parts:
        return
    raw_html = "\n".join(ctx.html_parts)
    _, pixels = htmlsafe.remove_tracking_pixels(raw_html)
    if pixels:
        ctx.meta["tracking_pixels_removed"] = pixels
    ctx.html = htmlsafe.sanitize_html(raw_html, allow_remote_images=ctx.options.allow_remote_images)


def detect_bounce(ctx: ParseContext) -> None:
    """DSNs (RFC 3464) and the mailer-daemon notices of servers that do not send them."""
    assert ctx.msg is not None
    local = ctx.from_address.split("@", 1)[0]
    report = ctx.msg.get_content_type() == "multipart/report" and (
        str(ctx.msg.get_param("report-type") or "").lower() == "delivery-status")
    if report or ctx.dsn is not None:
        ctx.flag("bounce", "delivery-status report")
    elif ctx.h.has("x-failed-recipients"):
        ctx.flag("bounce", "X-Failed-Recipients")
    elif local in _DAEMONS and (_BOUNCE_SUBJECT.match(ctx.subject) or ctx.forwarded):
        ctx.flag("bounce", f"from {local}")
    if "bounce" in ctx.flags:
        ctx.returned_ids.extend(f["message_id"] for f in ctx.forwarded if f.get("message_id"))
        ctx.meta["bounce"] = {**(ctx.dsn or {}), "returned_message_ids": list(ctx.returned_ids)}


def detect_auto_reply(ctx: ParseContext) -> None:
    """RFC 3834 Auto-Submitted, the X-Autoreply family, Precedence, and auto-reply subjects. Mailing lists and
    newsletters (Precedence bulk/list, List-Id) are flagged "bulk": they still become tickets but get no ack."""
    if "bounce" in ctx.flags:
        return
    h = ctx.h
    auto_submitted = h.text("auto-submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        ctx.flag("auto_reply", f"Auto-Submitted: {auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-auto-reply", "x-autorespond-from"):
        value = h.text(name).lower()
        if h.has(name) and value not in ("no", "false", "0"):
            ctx.flag("auto_reply", f"{name}: {value}")
    precedence = h.text("precedence").lower()
    if precedence in ("auto_reply", "auto-reply"):
        ctx.flag("auto_reply", f"Precedence: {precedence}")
    elif precedence in ("bulk", "junk", "list"):
        ctx.flag("bulk", f"Precedence: {precedence}")
    if h.has("list-id") or h.has("list-unsubscribe"):
        ctx.flag("bulk", "mailing list headers")
    if _AUTO_SUBJECT.match(ctx.subject):
        ctx.flag("auto_reply", "subject")


def detect_own_message(ctx: ParseContext) -> None:
    """Our own mail coming back: our Message-ID domain, our address as sender, our loop header."""
    opts = ctx.options
    domain = ctx.message_id.rpartition("@")[2].lower()
    if not ctx.synthetic_id and domain in opts.own_domains:
        ctx.flag("own_message", f"Message-ID domain {domain}")
    if ctx.from_address in opts.own_addresses:
        ctx.flag("own_message", "From is our address")
    loop = [mime.decode_header(v).lower() for v in ctx.h.all(LOOP_HEADER)]
    if loop and (not opts.own_addresses or any(v.strip("<> ") in opts.own_addresses for v in loop)):
        ctx.flag("loop", f"{LOOP_HEADER}: {loop[0]}")
        if "own_message" in ctx.flags and (ctx.h.has("resent-from") or ctx.h.has("resent-to")):
            ctx.meta.setdefault("flag_reasons", {}).setdefault("loop", []).append("Resent-* headers")


def thread_hints(ctx: ParseContext) -> None:
    in_reply_to = mime.message_ids(ctx.h.raw("in-reply-to"))
    references = mime.message_ids(" ".join(ctx.h.all("references")))[-50:]
    for rid in ctx.returned_ids:  # a bounce threads onto the ticket of the mail it returns
        if rid not in references:
            references.append(rid)
    tag = TICKET_TAG.search(ctx.subject)
    ctx.hints = ThreadHints(
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=references,
        ticket_number=int(tag.group(1)) if tag else None,
    )


_FWD_FIELD = re.compile(r"^[ \t]*\*?(De|From|Asunto|Subject|Fecha|Date|Enviado|Sent)\*?\s*:\s*(.+)$",
                        re.IGNORECASE | re.MULTILINE)


def forwarded_inline(ctx: ParseContext) -> None:
    """The original sender, subject and date of a forward written inline (Gmail/Outlook/Apple), for agents."""
    text = ctx.body_text
    m = FORWARD_MARKER.search(text)
    if m is None and not FORWARD_SUBJECT.match(ctx.subject):
        return
    block = text[m.end():] if m else text
    fields: dict[str, str] = {}
    for fm in _FWD_FIELD.finditer(block[:3000]):
        key = fm.group(1).lower()
        key = {"de": "from", "asunto": "subject", "fecha": "date", "enviado": "date", "sent": "date"}.get(key, key)
        fields.setdefault(key, fm.group(2).strip())
        if len(fields) == 3:
            break
    if "from" not in fields:
        return
    addrs = mime.parse_addresses([fields["from"]])
    entry: dict[str, Any] = {"from": addrs[0][1] if addrs else None, "name": (addrs[0][0] or None) if addrs else None,
                             "subject": fields.get("subject"), "date": fields.get("date"), "inline": True}
    ctx.forwarded.insert(0, entry)


FILTERS: list[tuple[str, Filter]] = [
    ("prepare_raw", prepare_raw),
    ("parse_structure", parse_structure),
    ("read_addresses", read_addresses),
    ("read_subject_and_date", read_subject_and_date),
    ("identify", identify),
    ("collect_parts", collect_parts),
    ("detect_bounce", detect_bounce),
    ("derive_text", derive_text),
    ("forwarded_inline", forwarded_inline),
    ("split_quotes", split_quoted),
    ("sanitize_html", sanitize_html),
    ("detect_auto_reply", detect_auto_reply),
    ("detect_own_message", detect_own_message),
    ("thread_hints", thread_hints),
]


def run_filters(raw: bytes, account: str, options: ParseOptions | None = None) -> ParseContext:
    ctx = ParseContext(raw=raw, account=account, options=options or ParseOptions())
    for _name, step in FILTERS:
        step(ctx)
    return ctx


def parse_message(raw: bytes, account: str, *, options: ParseOptions | None = None) -> InboundMessage:
    """Parse one raw mail. Raises ``MalformedEmail`` for input that is not a mail (the caller quarantines it)."""
    try:
        ctx = run_filters(raw, account, options)
    except MalformedEmail:
        raise
    except (RecursionError, MemoryError) as exc:
        raise MalformedEmail(f"cannot parse: {type(exc).__name__}") from exc
    return to_inbound(ctx)


def _addr_list(items: list[tuple[str, str]]) -> list[dict[str, str | None]]:
    return [{"name": name or None, "address": addr} for name, addr in items]


def to_inbound(ctx: ParseContext) -> InboundMessage:
    assert ctx.split is not None
    meta: dict[str, Any] = {
        "message_id": ctx.message_id,
        "content_hash": ctx.content_hash,
        "to": _addr_list(ctx.to),
        "cc": _addr_list(ctx.cc),
        **ctx.meta,
    }
    if ctx.reply_to:
        meta["reply_to"] = _addr_list(ctx.reply_to)
    if ctx.synthetic_id:
        meta["synthetic_message_id"] = True
    if ctx.forwarded:
        meta["forwarded"] = [{k: v for k, v in f.items() if k != "text"} for f in ctx.forwarded]
    if ctx.notes:
        meta["parse_notes"] = ctx.notes[:20]
    return InboundMessage(
        channel="email",
        account=ctx.account,
        external_id=ctx.message_id,
        sender=Identity(IdentityKind.EMAIL, ctx.from_address, ctx.from_name or None),
        text=ctx.split.visible,
        raw=ctx.raw,
        sent_at=ctx.sent_at,
        subject=ctx.subject or None,
        html=ctx.html,
        attachments=ctx.attachments,
        hints=ctx.hints,
        meta=meta,
        flags=list(ctx.flags),
    )
