"""TLS for real: IMAPS and IMAP STARTTLS against a TLS Dovecot, SMTP STARTTLS and implicit TLS against aiosmtpd, all
with a certificate from a private CA (trustme) that only ``tls_ca_file`` makes trusted. Without it, or when the
server does not offer STARTTLS, nothing is read or sent, and nothing falls back to plain text."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from adapters.email.settings import EmailAccount
from adapters.email.tls import tls_context
from inbox.channels import SendError
from inbox.domain import DeliveryStatus, TicketFilter
from inbox.settings import SettingsError
from tests.email.conftest import OUR_ADDRESS, account, count_messages, mail, wait_until
from tests.email.test_send import citizen_ticket, run_jobs_once
from tests.support.dovecot import Dovecot, started
from tests.support.smtp import SmtpServer
from workers.outbox import queue_reply
from workers.runtime import Runtime

TIMEOUT = 30.0  # generous: the CI machine has 2 cores


@dataclass
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    ca_file: Path  # the CA certificate (PEM): what tls_ca_file points at
    cert_file: Path  # the server's certificate chain (PEM)
    key_file: Path  # the server's private key (PEM)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA (unknown to the system) and a server certificate it signed for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="Inbox test CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    pki = Pki(ca, server, folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(pki.ca_file))
    server.private_key_pem.write_to_path(str(pki.key_file))
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(pki.cert_file), append=i > 0)
    return pki


@pytest.fixture(scope="module")
def tls_dovecot(pki: Pki) -> Iterator[Dovecot]:
    """A second Dovecot, with TLS: IMAPS on ``imaps_port``, STARTTLS offered on ``imap_port``."""
    with started(tls=(pki.cert_file, pki.key_file)) as dc:
        yield dc


@pytest.fixture
def tls_mailbox(tls_dovecot: Dovecot) -> str:
    user = tls_dovecot.new_user("t")
    tls_dovecot.ensure_maildir(user)
    return user


@pytest.fixture(params=["starttls", "implicit"])
async def tls_smtp(request: pytest.FixtureRequest, pki: Pki) -> AsyncIterator[tuple[str, SmtpServer]]:
    """aiosmtpd with the trustme certificate: STARTTLS required before MAIL, or implicit TLS."""
    mode = request.param
    ctx = pki.server_context()
    server = await (SmtpServer.start(starttls=ctx) if mode == "starttls" else SmtpServer.start(implicit_tls=ctx))
    try:
        yield mode, server
    finally:
        await server.stop()


def imap_tls(dc: Dovecot, mode: str, **extra: Any) -> dict[str, Any]:
    """Account keys for IMAP over implicit TLS (the IMAPS port) or STARTTLS (the plain port)."""
    if mode == "implicit":
        return {"imap_host": "127.0.0.1", "imap_port": dc.imaps_port, "imap_tls": True, **extra}
    # by name: the certificate's DNS name is checked too (Dovecot listens on 127.0.0.1 only)
    return {"imap_host": "localhost", "imap_port": dc.imap_port, "imap_tls": False, "imap_starttls": True, **extra}


def smtp_tls(mode: str, **extra: Any) -> dict[str, Any]:
    if mode == "implicit":
        return {"smtp_tls": True, "smtp_starttls": False, **extra}
    return {"smtp_tls": False, "smtp_starttls": True, **extra}


def logins(dc: Dovecot, user: str) -> list[str]:
    """Dovecot's "Login:" log lines of ``user`` (a TLS session's line carries ", TLS,")."""
    return [line for line in dc.log().splitlines() if "imap-login: Info: Login:" in line and f"user=<{user}>" in line]


async def health(rt: Runtime, key: str = "email:atencion") -> dict[str, Any]:
    return await rt.store.get_doc("channel_health", key) or {}


# -- IMAP --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["implicit", "starttls"])
async def test_mail_is_ingested_over_tls_with_the_ca_file(mode: str, pki: Pki, tls_dovecot: Dovecot, tls_mailbox: str,
                                                          make_rt, run_worker) -> None:
    """(a) IMAPS and (b) STARTTLS on the plain port, verified against tls_ca_file: a mail waiting in the box and one
    announced by IDLE (reads through TLS, including imaplib's buffer) both become tickets; Dovecot saw TLS logins."""
    tls_dovecot.write_maildir(tls_mailbox, [mail(1, subject="Consulta por TLS")])
    rt = await make_rt([account("atencion", tls_mailbox, **imap_tls(tls_dovecot, mode, tls_ca_file=str(pki.ca_file),
                                                                    tls_verify=True, poll_interval_s=60.0))])
    run_worker(rt)

    async def first() -> bool:
        return await count_messages(rt) == 1

    async def idling() -> bool:
        doc = await health(rt)
        return doc.get("status") == "ok" and "IDLE" in doc.get("detail", "")

    await wait_until(first, timeout=TIMEOUT)
    await wait_until(idling, timeout=TIMEOUT)
    tls_dovecot.lmtp_deliver(tls_mailbox, mail(2, subject="Segunda consulta por TLS"))

    async def second() -> bool:
        return await count_messages(rt) == 2

    await wait_until(second, timeout=TIMEOUT)  # poll_interval_s is 60: only IDLE can bring it this soon
    subjects = {t.subject for t in (await rt.store.list_tickets(TicketFilter(channel="email"))).items}
    assert subjects == {"Consulta por TLS", "Segunda consulta por TLS"}

    async def logged() -> bool:
        return bool(logins(tls_dovecot, tls_mailbox))

    await wait_until(logged, timeout=TIMEOUT)
    lines = logins(tls_dovecot, tls_mailbox)
    assert all(", TLS," in line for line in lines), lines


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
async def test_untrusted_certificate_stops_the_watcher_and_shows_in_health(mode: str, tls_dovecot: Dovecot,
                                                                           tls_mailbox: str, make_rt,
                                                                           run_worker) -> None:
    """(d) Without tls_ca_file (system CAs only, verification on) the private CA is not trusted: the watcher never
    logs in, ingests nothing, and the channel's health is an error naming the certificate."""
    tls_dovecot.write_maildir(tls_mailbox, [mail(1)])
    rt = await make_rt([account("atencion", tls_mailbox, **imap_tls(tls_dovecot, mode, tls_verify=True))])
    run_worker(rt)

    async def failing() -> bool:
        return (await health(rt)).get("status") == "error"

    await wait_until(failing, timeout=TIMEOUT)
    doc = await health(rt)
    assert "CERTIFICATE_VERIFY_FAILED" in doc["detail"] and "tls_ca_file" in doc["detail"], doc
    [watcher] = rt.services["email.watchers"]
    assert watcher.stats["connects"] == 0
    assert await count_messages(rt) == 0
    assert logins(tls_dovecot, tls_mailbox) == []  # the password never went out, in TLS or in plain text


async def test_imap_starttls_not_offered_fails_instead_of_going_on_in_plain_text(dovecot: Dovecot, mailbox: str,
                                                                                 make_rt, run_worker) -> None:
    """(e) STARTTLS configured against a server that does not offer it (the plain test Dovecot): no login."""
    dovecot.write_maildir(mailbox, [mail(1)])
    rt = await make_rt([account("atencion", mailbox, dovecot, imap_tls=False, imap_starttls=True)])
    run_worker(rt)

    async def failing() -> bool:
        return (await health(rt)).get("status") == "error"

    await wait_until(failing, timeout=TIMEOUT)
    assert "STARTTLS" in (await health(rt))["detail"]
    assert rt.services["email.watchers"][0].stats["connects"] == 0
    assert await count_messages(rt) == 0
    assert logins(dovecot, mailbox) == []


# -- SMTP --------------------------------------------------------------------------------------------------------------
async def test_reply_is_sent_over_tls_with_the_ca_file(tls_smtp: tuple[str, SmtpServer], pki: Pki, make_rt) -> None:
    """(c) A reply through the outbox reaches aiosmtpd over STARTTLS, and over implicit TLS (smtp_tls = true)."""
    mode, server = tls_smtp
    rt = await make_rt([account("atencion", "x", smtp=server, **smtp_tls(mode, tls_ca_file=str(pki.ca_file)))])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Respuesta cifrada", "agente@example.gub.uy", request_id="r1")
    assert await run_jobs_once(rt) == ["done"]
    [captured] = server.messages
    assert captured.tls, "the mail came in plain text"
    assert captured.recipients == ["persona1@example.com"] and captured.sender == OUR_ADDRESS
    assert captured.mail["Message-ID"] == f"<{reply.id}@inbox.example.gub.uy>"
    assert (await rt.store.get_message(reply.id)).delivery_status == DeliveryStatus.SENT
    assert (await health(rt, "email:atencion/smtp"))["status"] == "ok"


async def test_untrusted_smtp_certificate_fails_the_delivery(tls_smtp: tuple[str, SmtpServer], make_rt) -> None:
    """(d) Without tls_ca_file the reply is not sent: the deliver job goes back to the queue with the certificate
    error, the SMTP health is an error, and the server received nothing."""
    mode, server = tls_smtp
    rt = await make_rt([account("atencion", "x", smtp=server, **smtp_tls(mode, tls_verify=True))])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    assert await run_jobs_once(rt) == ["ready"]  # retried later (the operator may fix the CA), never sent unverified
    job = (await rt.store.list_jobs(kind="deliver"))[0]
    assert job.status == "ready" and "CERTIFICATE_VERIFY_FAILED" in (job.last_error or ""), job.last_error
    assert server.messages == []
    doc = await health(rt, "email:atencion/smtp")
    assert doc["status"] == "error" and "certificate" in doc["detail"]
    assert (await rt.store.get_message(reply.id)).delivery_status != DeliveryStatus.SENT


async def test_smtp_starttls_not_offered_fails_instead_of_going_on_in_plain_text(smtp_server: SmtpServer,
                                                                                 make_rt) -> None:
    """(e) STARTTLS configured against a plain server that does not offer it: an error, nothing sent."""
    rt = await make_rt([account("atencion", "x", smtp=smtp_server, smtp_starttls=True)])
    ticket = await citizen_ticket(rt, mail(1))
    reply = await queue_reply(rt, ticket, "Hola", "agente@example.gub.uy", request_id="r1")
    with pytest.raises(SendError) as err:
        await rt.channels["email"].send(ticket, reply, await rt.store.list_messages(ticket.id))
    assert not err.value.permanent and re.search("STARTTLS", err.value.reason, re.IGNORECASE), err.value.reason
    assert smtp_server.messages == []


# -- the SSL context -----------------------------------------------------------------------------------------------
def test_one_context_verifies_against_the_ca_file_or_not_at_all(pki: Pki) -> None:
    ctx = tls_context(EmailAccount(name="a", address="a@x.uy", tls_ca_file=str(pki.ca_file)))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    [ca] = ctx.get_ca_certs()  # that bundle only (not the system's CAs too)
    assert ("organizationName", "Inbox test CA") in [rdn[0] for rdn in ca["subject"]]
    default = tls_context(EmailAccount(name="a", address="a@x.uy"))
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    off = tls_context(EmailAccount(name="a", address="a@x.uy", tls_verify=False))
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname


def test_missing_ca_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="tls_ca_file"):
        EmailAccount(name="a", address="a@x.uy", tls_ca_file=str(tmp_path / "nope.pem")).validate()
