"""Generated inputs for the core tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from inbox.domain import Identity, InboundMessage, ThreadHints


def inbound(i: int, *, sender: str | None = None, reply_to: str | None = None, subject: str | None = None,
            text: str | None = None, channel: str = "email", account: str = "test",
            conversation: str | None = None, ticket_number: int | None = None) -> InboundMessage:
    sender = sender or f"persona{i}@example.uy"
    text = text or f"Hola, consulta número {i} sobre mi cédula"
    ext = f"msg{i}@test"
    raw = f"From: {sender}\r\nMessage-ID: <{ext}>\r\nSubject: {subject or i}\r\n\r\n{text}\r\n".encode()
    return InboundMessage(
        channel=channel, account=account, external_id=ext, sender=Identity("email" if channel == "email" else channel,
                                                                           sender, f"Persona {i}"),
        text=text, raw=raw, sent_at=datetime.now(UTC), subject=subject or f"Consulta {i}",
        hints=ThreadHints(in_reply_to=reply_to, conversation_id=conversation, ticket_number=ticket_number),
    )


def write_emails(folder: Path, n: int, senders: int = 300) -> list[Path]:
    """n raw emails; every fourth one replies to an earlier one, so threading is exercised."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        headers = [f"From: Persona {i % senders} <persona{i % senders}@example.uy>",
                   "To: atencionciudadana@example.gub.uy",
                   f"Message-ID: <crash{i}@example.uy>", f"Subject: Consulta {i}",
                   "Date: Mon, 03 Nov 2025 10:02:00 -0300", "Content-Type: text/plain; charset=utf-8"]
        if i % 4 == 3:
            headers.append(f"In-Reply-To: <crash{i - 3}@example.uy>")
        body = f"Buenas, necesito información del trámite {i}. Gracias."
        path = folder / f"{i:05d}.eml"
        path.write_bytes(("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode())
        paths.append(path)
    return paths
