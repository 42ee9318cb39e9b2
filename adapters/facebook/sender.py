"""Replies on Facebook: a comment reply (``POST /{comment-id}/comments``) and the Messenger Send API.

Messenger window (Meta's policy): a reply with ``messaging_type=RESPONSE`` is allowed for 24 hours after the
citizen's last message. With ``facebook.human_agent_tag`` on (the app needs Meta's Human Agent permission), replies
between 24 hours and 7 days go out as ``MESSAGE_TAG`` + ``HUMAN_AGENT``. Past that the reply is refused before any
call: the agent sees the reason (``reply_warning``) and the message fails permanently with the same Spanish text.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from adapters.facebook.graph import OUTSIDE_WINDOW_SUBCODES, GraphClient, GraphError
from adapters.facebook.ingest import report_graph_error
from inbox.channels import SendError
from inbox.domain import Direction, Message, Ticket, utcnow
from inbox.health import report_health

if TYPE_CHECKING:
    from workers.runtime import Runtime

WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
MESSENGER_MAX_CHARS = 2000
COMMENT_MAX_CHARS = 8000

OUTSIDE_WINDOW = ("Pasaron más de 24 horas desde el último mensaje del ciudadano en Messenger: Facebook no permite "
                  "responderle por este medio hasta que vuelva a escribir. Contactalo por otro canal o esperá su "
                  "próximo mensaje.")
OUTSIDE_HUMAN_AGENT_WINDOW = ("Pasaron más de 7 días desde el último mensaje del ciudadano en Messenger: Facebook no "
                              "permite responderle por este medio hasta que vuelva a escribir. Contactalo por otro "
                              "canal.")


def last_inbound(thread: list[Message], channel: str) -> Message | None:
    for m in reversed(thread):
        if m.direction == Direction.IN and m.channel == channel:
            return m
    return None


class _GraphSender:
    channel = ""

    def __init__(self, rt: Runtime, graph: GraphClient):
        self.rt = rt
        self.graph = graph

    async def _post(self, path: str, body: dict, what: str) -> dict:
        try:
            result = await self.graph.request("POST", path, json_body=body)
        except GraphError as exc:
            await report_graph_error(self.rt, exc, (self.channel,), what)
            if exc.auth_failed:
                raise SendError(f"Facebook rechazó el token de la Página ({exc.describe()}); avisá a un "
                                f"administrador.", permanent=True) from None
            if exc.subcode in OUTSIDE_WINDOW_SUBCODES:
                raise SendError(OUTSIDE_WINDOW, permanent=True) from None
            if exc.retryable:
                raise SendError(f"Facebook: {exc.describe()}", retry_after_s=exc.retry_after_s) from None
            raise SendError(f"Facebook rechazó la respuesta: {exc.describe()}", permanent=True) from None
        await report_health(self.rt.store, self.channel, self.rt.settings.facebook.page_id or "?", True)
        return result


class CommentSender(_GraphSender):
    """Channel ``facebook``: answers under the citizen's comment thread (or under the visitor post)."""

    channel = "facebook"

    def reply_warning(self, ticket: Ticket, thread: list[Message]) -> str | None:
        if last_inbound(thread, self.channel) is None:
            return "Este ticket no tiene comentarios de Facebook del ciudadano: no hay a qué responder."
        return ("La respuesta se publica como comentario público en Facebook: cualquiera puede leerla. No incluyas "
                "datos personales; para eso pedile que escriba por Messenger.")

    async def send(self, ticket: Ticket, message: Message, thread: list[Message]) -> str:
        last = last_inbound(thread, self.channel)
        target = last.meta.get("fb_reply_to") if last else None
        if not target:
            raise SendError("No hay un comentario ni publicación del ciudadano al que responder.", permanent=True)
        text = message.text.strip()
        if not text:
            raise SendError("La respuesta está vacía.", permanent=True)
        if len(text) > COMMENT_MAX_CHARS:
            raise SendError(f"La respuesta supera los {COMMENT_MAX_CHARS} caracteres de un comentario de Facebook.",
                            permanent=True)
        result = await self._post(f"{target}/comments", {"message": text}, "respuesta a comentario")
        if not result.get("id"):
            raise SendError("Facebook aceptó el comentario pero no devolvió el id", permanent=True)
        return str(result["id"])


class MessengerSender(_GraphSender):
    channel = "messenger"

    def _window(self, last: Message) -> tuple[str | None, str | None]:
        """(messaging_type, refusal reason)."""
        age = utcnow() - (last.sent_at or last.received_at)
        if age <= WINDOW:
            return "RESPONSE", None
        if self.rt.settings.facebook.human_agent_tag:
            return ("MESSAGE_TAG", None) if age <= HUMAN_AGENT_WINDOW else (None, OUTSIDE_HUMAN_AGENT_WINDOW)
        return None, OUTSIDE_WINDOW

    def reply_warning(self, ticket: Ticket, thread: list[Message]) -> str | None:
        last = last_inbound(thread, self.channel)
        if last is None:
            return "Este ticket no tiene mensajes de Messenger del ciudadano: no hay a quién responder."
        kind, refusal = self._window(last)
        if refusal:
            return refusal
        if kind == "MESSAGE_TAG":
            return ("Pasaron más de 24 horas desde el último mensaje del ciudadano: la respuesta sale con la etiqueta "
                    "HUMAN_AGENT (permitida hasta 7 días) y debe ser una respuesta humana al caso.")
        left = WINDOW - (utcnow() - (last.sent_at or last.received_at))
        if left < timedelta(hours=2):
            return f"Quedan {max(1, int(left.total_seconds() // 60))} minutos para responder por Messenger (24 h)."
        return None

    async def send(self, ticket: Ticket, message: Message, thread: list[Message]) -> str:
        last = last_inbound(thread, self.channel)
        psid = (last.meta.get("psid") or (last.author.value if last.author else None)) if last else None
        if last is None or not psid:
            raise SendError("No hay un mensaje de Messenger del ciudadano al que responder.", permanent=True)
        kind, refusal = self._window(last)
        if refusal:
            raise SendError(refusal, permanent=True)
        text = message.text.strip()
        if not text:
            raise SendError("La respuesta está vacía.", permanent=True)
        if len(text) > MESSENGER_MAX_CHARS:
            raise SendError(f"Messenger admite hasta {MESSENGER_MAX_CHARS} caracteres por mensaje; acortá la "
                            f"respuesta.", permanent=True)
        # message.metadata comes back in the echo (which the webhook ignores): it names the ticket for audits
        body: dict = {"recipient": {"id": psid}, "messaging_type": kind,
                      "message": {"text": text, "metadata": f"inbox:ticket={ticket.number}"}}
        if kind == "MESSAGE_TAG":
            body["tag"] = "HUMAN_AGENT"
        page = self.rt.settings.facebook.page_id or "me"
        result = await self._post(f"{page}/messages", body, "Messenger")
        if not result.get("message_id"):
            raise SendError("Facebook aceptó el mensaje pero no devolvió el id", permanent=True)
        return str(result["message_id"])
