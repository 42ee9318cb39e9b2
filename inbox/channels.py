"""The outbound side of the channel contract. Adapters implement ChannelSender; the outbox job calls it."""

from __future__ import annotations

from typing import Protocol

from inbox.domain import Message, Ticket

# Every channel's name as citizens and agents read it (Spanish, the UI's first language; web/i18n translates).
CHANNEL_LABELS = {
    "email": "Correo",
    "x": "X",
    "facebook": "Facebook",
    "messenger": "Messenger",
    "web": "Formulario web",
    "phone": "Teléfono",
    "pac": "Atención presencial",
}


class SendError(Exception):
    """A delivery failure. ``permanent`` ones mark the message failed; others are retried with backoff."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class ChannelSender(Protocol):
    channel: str

    async def send(self, ticket: Ticket, message: Message, thread: list[Message]) -> str:
        """Deliver ``message`` in the conversation of ``thread``; return the channel's id for it."""
        ...

    def reply_warning(self, ticket: Ticket, thread: list[Message]) -> str | None:
        """A reason the channel's rules forbid or limit a reply now (shown to the agent), or None."""
        ...
