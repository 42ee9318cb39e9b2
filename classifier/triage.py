"""Auto-triage: classify a ticket, write model tags, route confident ones; never touch a tag an agent set.

``triage_ticket`` is the body of the ``triage`` job (payload ``{"ticket_id"}``), enqueued by the ingest pipeline.
``labelled_examples`` reads the learning loop's labels back from the store (the ``labels`` documents that the web app
writes when an agent confirms or corrects a tag).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from classifier.api import Classifier
from classifier.settings import ClassifierSettings
from classifier.types import LabelledExample, Prediction
from inbox.domain import Direction, Message, Tag, Ticket
from inbox.store.base import Store, TicketChanges

log = logging.getLogger(__name__)

ACTOR = "system:classifier"
LABELS = "labels"  # documents collection of agents' confirmations and corrections
MAX_TEXT_CHARS = 4000  # the first inbound messages carry the request; later ones are mostly follow-ups
SKIP_FLAGS = {"auto_reply", "bounce", "loop", "own_message"}


@dataclass
class TriageResult:
    ticket_id: str
    status: str  # tagged | abstained | unknown | skipped
    tags: dict[str, Tag] = field(default_factory=dict)
    queue: str | None = None
    model_version: str | None = None
    reason: str | None = None


def ticket_text(messages: list[Message]) -> str:
    """The citizen's words: inbound messages (oldest first) that are not auto-replies or bounces."""
    parts: list[str] = []
    size = 0
    for m in sorted(messages, key=lambda m: m.received_at):
        if m.direction != Direction.IN or SKIP_FLAGS.intersection(m.flags) or not m.text.strip():
            continue
        parts.append(m.text.strip())
        size += len(parts[-1])
        if size >= MAX_TEXT_CHARS:
            break
    return "\n".join(parts)[:MAX_TEXT_CHARS]


def _is_agent(tag: Tag | None) -> bool:
    return tag is not None and tag.source == "agent"


def _model_tags(pred: Prediction, ticket: Ticket) -> dict[str, Tag]:
    tags: dict[str, Tag] = {}
    best_t, best_a = pred.tramite[0], pred.agency[0]
    if not pred.abstain_tramite and best_t.key is not None and not _is_agent(ticket.tags.get("tramite")):
        tags["tramite"] = Tag(best_t.key, "model", best_t.p, pred.model_version, best_t.name, list(pred.terms))
    if not pred.abstain_agency and best_a.name is not None and not _is_agent(ticket.tags.get("agency")):
        tags["agency"] = Tag(best_a.name, "model", best_a.p, pred.model_version, best_a.name, list(pred.terms))
    return tags


def _route(pred: Prediction, ticket: Ticket, tags: dict[str, Tag], settings: ClassifierSettings) -> str | None:
    """The agency's queue, for a ticket that has none yet and whose agency the model just tagged."""
    if not settings.route or ticket.queue or "agency" not in tags:
        return None
    best = pred.agency[0]
    return settings.queue_for(best.organismo, best.name)


def _suggestions(pred: Prediction) -> dict[str, Any]:
    d = pred.to_dict()
    return {k: d[k] for k in ("tramite", "agency", "abstain", "unknown", "terms", "model_version")}


async def triage_ticket(
    store: Store, classifier: Classifier, ticket_id: str, settings: ClassifierSettings | None = None
) -> TriageResult:
    """Classify one ticket and write the outcome (idempotent: re-running overwrites only model tags)."""
    settings = settings or classifier.settings
    classifier = classifier.with_settings(settings)
    ticket = await store.get_ticket(ticket_id)
    if ticket is None:
        return TriageResult(ticket_id, "skipped", reason="no such ticket")
    if _is_agent(ticket.tags.get("tramite")) and _is_agent(ticket.tags.get("agency")):
        return TriageResult(ticket_id, "skipped", reason="tagged by an agent")
    text = ticket_text(await store.list_messages(ticket_id))
    if not text and not ticket.subject:
        return TriageResult(ticket_id, "skipped", reason="no inbound text")
    pred = classifier.predict(ticket.subject, text)
    tags = _model_tags(pred, ticket)
    queue = _route(pred, ticket, tags, settings)
    changes = TicketChanges(tags=tags or None, queue=queue, meta={"classifier": _suggestions(pred)})
    await store.update_ticket(ticket_id, changes, actor=ACTOR)
    status = "tagged" if tags else "unknown" if pred.unknown else "abstained"
    log.info("triage %s: %s (model %s)", ticket_id, status, pred.model_version)
    return TriageResult(ticket_id, status, tags, queue, pred.model_version)


async def labelled_examples(store: Store, limit: int = 1_000_000) -> list[LabelledExample]:
    """The learning loop's labels: the ``labels`` documents (ticket_id → {subject, text, tramite, agency, by, at})
    written when an agent confirms or corrects a ticket's tags (see docs/CONVENTIONS.md)."""
    examples: list[LabelledExample] = []
    for _key, doc in await store.list_docs(LABELS, limit=limit):
        text = str(doc.get("text") or "").strip()
        if not text and not doc.get("subject"):
            continue
        examples.append(
            LabelledExample(
                text=text,
                tramite=doc.get("tramite") or None,
                agency=doc.get("agency") or None,
                subject=doc.get("subject") or None,
            )
        )
    return examples
