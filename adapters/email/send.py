"""Outbound mail: the email ChannelSender (aiosmtplib), called by the outbox's ``deliver`` job.

The Message-ID is ``<{message.id}@{domain}>``: derived from the stored message, so a retry after a crash sends the
very same mail (same id, same Date), and the citizen's reply threads back by In-Reply-To. Temporary SMTP failures
raise a retryable SendError; 5xx answers raise SendError(permanent=True) with the server's words.
"""

from __future__ import annotations

import asyncio
import email.utils
import html as htmllib
import logging
import re
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import TYPE_CHECKING

import aiosmtplib

from adapters.email.parse import LOOP_HEADER, SYNTHETIC_DOMAIN, TICKET_HEADER
from adapters.email.settings import EmailAccount, EmailSettings
from adapters.email.tls import describe_tls_error, tls_context
from inbox.channels import SendError
from inbox.domain import Direction, IdentityKind, Message, Ticket, utcnow
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)
CHANNEL = "email"
_PREFIXES = re.compile(r"^\s*(?:(?:re|rv|fw|fwd|aw|wg|sv|res|tr|enc)\s*:\s*)+", re.IGNORECASE)
_TAG = re.compile(r"\s*\[#\d{1,9}\]")
MAX_REFERENCES = 20


def reply_subject(subject: str | None, number: int, fallback: str = "Su consulta") -> str:
    """``Re: <subject> [#N]`` without doubling prefixes or tags."""
    base = _TAG.sub("", subject or "").strip()
    base = _PREFIXES.sub("", base).strip() or fallback
    return f"Re: {base} [#{number}]"


def message_id_for(message: Message, domain: str) -> str:
    """Our Message-ID (without brackets): the same for every attempt to send one stored message."""
    return f"{message.id}@{domain}"


def real_message_id(external_id: str | None) -> str | None:
    """A Message-ID worth putting in In-Reply-To/References (not synthetic, collision suffix removed)."""
    if not external_id:
        return None
    mid = external_id.split("#", 1)[0]
    return None if mid.endswith("@" + SYNTHETIC_DOMAIN) or "@" not in mid else mid


def thread_ids(thread: list[Message], current: Message) -> tuple[str | None, list[str]]:
    """In-Reply-To (the last mail from the citizen) and References (the conversation's ids, oldest first)."""
    ids: list[str] = []
    in_reply_to: str | None = None
    for msg in thread:
        if msg.id == current.id or msg.channel != CHANNEL:
            continue
        mid = real_message_id(msg.external_id)
        if mid is None:
            continue
        if mid not in ids:
            ids.append(mid)
        if msg.direction == Direction.IN:
            in_reply_to = mid
    if in_reply_to is None and ids:
        in_reply_to = ids[-1]
    if len(ids) > MAX_REFERENCES:  # RFC 5322 3.6.4: keep the first and the most recent
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1):]
    return in_reply_to, ids


def recipient_for(thread: list[Message]) -> str | None:
    """Where a reply goes: the Reply-To of the citizen's last mail, else its sender."""
    for msg in reversed(thread):
        if msg.direction != Direction.IN or msg.channel != CHANNEL or msg.author is None:
            continue
        if set(msg.flags) & {"auto_reply", "bounce", "own_message", "loop"}:
            continue
        reply_to = msg.meta.get("reply_to") or []
        if reply_to and isinstance(reply_to[0], dict) and reply_to[0].get("address"):
            return str(reply_to[0]["address"])
        return msg.author.value
    return None


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "".join("<p>" + htmllib.escape(p).replace("\n", "<br>\n") + "</p>\n" for p in paragraphs)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n{body}</body></html>\n'


class SmtpSender:
    """The email channel's sender: composes a threaded reply and hands it to the mailbox's SMTP server."""

    channel = CHANNEL

    def __init__(self, rt: Runtime, settings: EmailSettings):
        self.rt = rt
        self.settings = settings

    # -- ChannelSender ---------------------------------------------------------------------------------------------
    def reply_warning(self, ticket: Ticket, thread: list[Message]) -> str | None:
        if not self.settings.accounts:
            return "No hay casillas de correo configuradas: la respuesta no se puede enviar."
        if recipient_for(thread) is None and not any(m.channel == CHANNEL for m in thread):
            return "El contacto no tiene una dirección de correo en este ticket."
        return None

    async def send(self, ticket: Ticket, message: Message, thread: list[Message]) -> str:
        account = self.account_for(message, ticket)
        to = recipient_for(thread) or await self._contact_address(ticket)
        if to is None:
            raise SendError("no email address to reply to", permanent=True)
        mail = self.compose(ticket, message, thread, account, to)
        await self._deliver(account, mail, to)
        if account.sent_folder:
            await self._append_sent(account, mail)
        return message_id_for(message, self.settings.domain)

    # -- composing -------------------------------------------------------------------------------------------------
    def account_for(self, message: Message, ticket: Ticket) -> EmailAccount:
        for name in (message.account, ticket.meta.get("account")):
            account = self.settings.account(name) if name else None
            if account is not None:
                return account
        if not self.settings.accounts:
            raise SendError("no email account is configured", permanent=True)
        return self.settings.accounts[0]

    async def _contact_address(self, ticket: Ticket) -> str | None:
        contact = await self.rt.store.get_contact(ticket.contact_id)
        if contact is None:
            return None
        emails = [i.value for i in contact.identities if i.kind == IdentityKind.EMAIL]
        return emails[0] if emails else None

    def compose(self, ticket: Ticket, message: Message, thread: list[Message], account: EmailAccount,
                to: str) -> EmailMessage:
        domain = self.settings.domain
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"] = email.utils.formataddr((account.display_name, account.address)) if account.display_name \
            else account.address
        mail["To"] = to
        fallback = self.settings.ack_subject if message.meta.get("kind") == "auto_ack" else "Su consulta"
        subject_source = ticket.subject or message.subject
        mail["Subject"] = reply_subject(subject_source, ticket.number, fallback)
        mail["Date"] = email.utils.format_datetime(message.received_at or utcnow())
        mail["Message-ID"] = f"<{message_id_for(message, domain)}>"
        in_reply_to, references = thread_ids(thread, message)
        if in_reply_to:
            mail["In-Reply-To"] = f"<{in_reply_to}>"
        if references:
            mail["References"] = " ".join(f"<{r}>" for r in references)
        mail[LOOP_HEADER] = account.address
        mail[TICKET_HEADER] = str(ticket.number)
        if message.meta.get("kind") == "auto_ack":
            mail["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots must not answer it
            mail["X-Auto-Response-Suppress"] = "All"
        mail.set_content(message.text or "")
        mail.add_alternative(message.html or text_to_html(message.text or ""), subtype="html")
        for att in message.attachments:
            if att.sha256 is None:
                continue
            data = self.rt.attachments.get(att.sha256)
            maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
            mail.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=att.filename)
        return mail

    # -- SMTP ------------------------------------------------------------------------------------------------------
    async def _deliver(self, account: EmailAccount, mail: EmailMessage, to: str) -> None:
        login = account.smtp_login
        smtp = aiosmtplib.SMTP(
            hostname=account.smtp_server,
            port=account.smtp_port,
            use_tls=account.smtp_tls,
            start_tls=account.smtp_starttls if not account.smtp_tls else False,
            timeout=self.settings.timeout_s,
            tls_context=tls_context(account) if (account.smtp_tls or account.smtp_starttls) else None,
        )
        try:
            await smtp.connect()
            if login:
                await smtp.login(login, account.smtp_password(self.settings.password))
            await smtp.send_message(mail, sender=account.address, recipients=[to])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            raise SendError(reason, permanent=all(c >= 500 for c in codes)) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # The account's credentials, not this message: retried later, and shown as the channel's health.
            await self._health(account, False, f"SMTP login failed: {exc.code} {exc.message}")
            raise SendError(f"SMTP login failed: {exc.code} {exc.message}", retry_after_s=300) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{exc.code} {exc.message}", permanent=exc.code >= 500) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Also a certificate that fails verification, or STARTTLS configured but not offered: never plain text.
            detail = f"{type(exc).__name__}: {exc}{describe_tls_error(exc)}"
            await self._health(account, False, f"SMTP: {detail}")
            raise SendError(f"SMTP unavailable: {detail}") from exc
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        await self._health(account, True, "SMTP ok")

    async def _health(self, account: EmailAccount, ok: bool, detail: str) -> None:
        key = f"{account.name}/smtp"
        last = self.rt.services.setdefault("email.smtp_health", {})
        if last.get(key) == (ok, detail):
            return
        last[key] = (ok, detail)
        try:
            await report_health(self.rt.store, CHANNEL, key, ok, detail)
        except Exception:  # health is best effort; the delivery outcome is what matters here
            log.exception("cannot record SMTP health")

    async def _append_sent(self, account: EmailAccount, mail: EmailMessage) -> None:
        """APPEND the sent mail to the Sent folder; a failure there never fails the delivery."""
        from adapters.email.imap import append_message

        try:
            await asyncio.to_thread(append_message, account, account.password(self.settings.password),
                                    account.sent_folder, mail.as_bytes(), self.settings.timeout_s)
        except Exception as exc:
            log.warning("could not append to %s of %s: %s", account.sent_folder, account.name, exc)
