"""An in-process SMTP server (aiosmtpd) on a free port that captures what it receives and can be told to refuse.

    server = await SmtpServer.start()
    server.fail_next("451 4.3.0 Try again later")   # the next RCPT is refused with that answer
    ...; server.messages[0].mail["Message-ID"]; await server.stop()

Plain text by default. ``SmtpServer.start(implicit_tls=ctx)`` serves TLS from the first byte (port 465 style);
``SmtpServer.start(starttls=ctx)`` offers STARTTLS and refuses mail until the client has switched to TLS
(port 587 style). ``Captured.tls`` tells whether a mail came in over TLS.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import ssl
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Captured:
    sender: str
    recipients: list[str]
    data: bytes
    mail: email.message.EmailMessage
    tls: bool = False  # received over TLS (implicit or after STARTTLS)


@dataclass
class _Handler:
    messages: list[Captured] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # answers for the next RCPT commands
    data_failures: list[str] = field(default_factory=list)  # answers for the next DATA commands
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.failures:
            return self.failures.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_failures:
            return self.data_failures.pop(0)
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else str(data).encode()
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(mail, email.message.EmailMessage)
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        self.messages.append(Captured(str(envelope.mail_from), list(envelope.rcpt_tos), raw, mail, tls))
        self.received.set()
        return "250 OK queued"


class SmtpServer:
    def __init__(self, server: asyncio.base_events.Server, handler: _Handler):
        self._server = server
        self.handler = handler
        self.port = int(server.sockets[0].getsockname()[1])
        self.host = "127.0.0.1"

    @classmethod
    async def start(cls, *, implicit_tls: ssl.SSLContext | None = None,
                    starttls: ssl.SSLContext | None = None) -> SmtpServer:
        """Listen on a free port: plain text, or with a server-side SSL context either implicit TLS on the socket
        or STARTTLS required before MAIL (not both)."""
        if implicit_tls is not None and starttls is not None:
            raise ValueError("implicit_tls or starttls, not both")
        handler = _Handler()
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            if starttls is None:
                return SMTP(handler, hostname="smtp.test", decode_data=False)
            return SMTP(handler, hostname="smtp.test", decode_data=False, tls_context=starttls,
                        require_starttls=True)

        server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=implicit_tls)
        return cls(server, handler)

    @property
    def messages(self) -> list[Captured]:
        return self.handler.messages

    def fail_next(self, answer: str, times: int = 1) -> None:
        """Refuse the next RCPT(s) with ``answer`` (e.g. "550 5.1.1 No such user", "451 4.3.0 Busy")."""
        self.handler.failures.extend([answer] * times)

    def fail_next_data(self, answer: str, times: int = 1) -> None:
        self.handler.data_failures.extend([answer] * times)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Captured]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            self.handler.received.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"got {len(self.messages)} of {count} mails")
            try:
                await asyncio.wait_for(self.handler.received.wait(), left)
            except TimeoutError:
                pass
        return self.messages

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
