"""Replies on X: a public reply to the citizen's latest tweet, or a DM in the citizen's DM conversation.

Which one is decided by the thread's last inbound X message: ``meta["x_kind"]`` is ``mention`` or ``dm``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from adapters.x.client import XApi, XAuthError, XError, XForbidden, XRateLimited, XRequestError
from inbox.channels import SendError
from inbox.domain import Direction, Message, Ticket
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

URL_RE = re.compile(r"https?://\S+")
TCO_LENGTH = 23  # X counts every link as 23 characters


def weighted_length(text: str) -> int:
    """Close to X's count: links are 23 characters; everything else one per code point (CJK counts 2 on X)."""
    return len(URL_RE.sub("x" * TCO_LENGTH, text))


def last_inbound(thread: list[Message]) -> Message | None:
    for m in reversed(thread):
        if m.direction == Direction.IN and m.channel == "x" and m.meta.get("x_kind") in ("mention", "dm"):
            return m
    return None


class XSender:
    channel = "x"

    def __init__(self, rt: Runtime, api: XApi):
        self.rt = rt
        self.api = api

    def reply_warning(self, ticket: Ticket, thread: list[Message]) -> str | None:
        last = last_inbound(thread)
        if last is None:
            return "Este ticket no tiene mensajes de X del ciudadano: no hay a qué responder en X."
        if last.meta.get("x_kind") == "mention":
            who = f"de @{last.meta['username']}" if last.meta.get("username") else "del ciudadano"
            return (f"La respuesta se publica en X como respuesta pública al tweet {who}: cualquiera puede "
                    f"leerla. No incluyas datos personales; para eso pedile que escriba por mensaje directo "
                    f"(máximo {self.rt.settings.x.tweet_max_chars} caracteres).")
        return None

    async def send(self, ticket: Ticket, message: Message, thread: list[Message]) -> str:
        last = last_inbound(thread)
        if last is None:
            raise SendError("No hay un mensaje de X del ciudadano en este ticket al que responder.", permanent=True)
        text = message.text.strip()
        if not text:
            raise SendError("La respuesta está vacía.", permanent=True)
        try:
            if last.meta.get("x_kind") == "mention":
                limit = self.rt.settings.x.tweet_max_chars
                if weighted_length(text) > limit:
                    raise SendError(f"La respuesta supera los {limit} caracteres que admite un tweet; acortala o "
                                    f"respondé por mensaje directo.", permanent=True)
                body = await self.api.call("create_tweet", text=text, in_reply_to_tweet_id=last.external_id)
                sent_id = (body.get("data") or {}).get("id")
            else:
                conversation = str(last.meta.get("dm_conversation_id") or "")
                participant = last.author.value if last.author else ""
                if "-" in conversation and participant:  # one-to-one: the documented "with/:participant_id" route
                    body = await self.api.call("create_direct_message", participant_id=participant, text=text)
                else:
                    body = await self.api.call("create_direct_message", dm_conversation_id=conversation, text=text)
                sent_id = (body.get("data") or {}).get("dm_event_id")
        except XRateLimited as exc:
            raise SendError(f"X: límite de uso alcanzado ({exc.detail})",
                            retry_after_s=exc.wait_s(self.rt.settings.x.rate_limit_margin_s)) from None
        except XAuthError as exc:
            await report_health(self.rt.store, "x", self.rt.settings.x.user_id or "?", False,
                                f"X rechazó las credenciales al enviar: {exc.detail}")
            raise SendError(f"X rechazó las credenciales de la cuenta ({exc.detail}); avisá a un administrador.",
                            permanent=True) from None
        except (XForbidden, XRequestError) as exc:
            raise SendError(f"X rechazó la respuesta: {exc.detail}", permanent=True) from None
        except XError as exc:
            raise SendError(f"X no respondió: {exc.detail}") from None
        if not sent_id:
            raise SendError("X aceptó el envío pero no devolvió el id", permanent=True)
        return str(sent_id)
