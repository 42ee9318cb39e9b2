"""The triage worker end to end on the real SQLite store: ingest → triage_ticket → tags, queue, agent tags kept."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from classifier import api
from classifier.api import Classifier
from classifier.settings import ClassifierSettings
from classifier.triage import labelled_examples, triage_ticket
from inbox.archive import RawArchive
from inbox.domain import Identity, InboundMessage, Tag
from inbox.ingest import Pipeline
from inbox.store.base import TicketChanges
from inbox.store.sqlite import SQLiteStore

_n = itertools.count(1)
CONFIDENT = ClassifierSettings(tramite_threshold=0.0, agency_threshold=0.0)
UTE = "Administración Nacional de Usinas y Trasmisiones Eléctricas"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "inbox.sqlite3")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def ingest(store: SQLiteStore, tmp_path: Path, text: str, subject: str | None = None) -> str:
    n = next(_n)
    msg = InboundMessage(
        channel="email",
        account="consultas@gub.uy",
        external_id=f"<t{n}@example.uy>",
        sender=Identity("email", f"vecino{n}@example.uy", "Vecino"),
        text=text,
        raw=f"raw {n} {text}".encode(),
        subject=subject,
    )
    outcome = await Pipeline(store, RawArchive(tmp_path / "raw")).ingest(msg)
    assert outcome.ticket_id
    return outcome.ticket_id


async def test_tags_and_routes_a_confident_ticket(store: SQLiteStore, tmp_path: Path, clf: Classifier) -> None:
    tid = await ingest(store, tmp_path, "no tenemos luz desde ayer, la factura de UTE llega igual", "Corte de luz")
    jobs = await store.list_jobs(kind="triage")
    assert any(j.payload.get("ticket_id") == tid for j in jobs)  # the pipeline asks for triage
    result = await triage_ticket(store, clf, tid, CONFIDENT)
    ticket = await store.get_ticket(tid)
    assert ticket is not None and result.status == "tagged"
    tag = ticket.tags["agency"]
    assert (tag.value, tag.source, tag.model_version) == (UTE, "model", clf.version)
    assert tag.confidence is not None and 0 < tag.confidence <= 1 and tag.why
    assert "tramite" not in ticket.tags  # no catalogue trámite for a power cut
    assert ticket.queue == UTE
    assert ticket.meta["classifier"]["agency"][0]["name"] == UTE


async def test_never_overwrites_agent_tags(store: SQLiteStore, tmp_path: Path, clf: Classifier) -> None:
    tid = await ingest(store, tmp_path, "quiero sacar el pasaporte por primera vez", "Pasaporte")
    agent = Tag("4532", "agent", None, None, "Recepción de Peticiones")
    await store.update_ticket(tid, TicketChanges(tags={"tramite": agent}, queue="mesa"), actor="agent:ana")
    await triage_ticket(store, clf, tid, CONFIDENT)
    ticket = await store.get_ticket(tid)
    assert ticket is not None
    assert ticket.tags["tramite"].source == "agent" and ticket.tags["tramite"].value == "4532"
    assert ticket.tags["agency"].source == "model"
    assert ticket.queue == "mesa"  # a queue someone set is kept


async def test_abstains_below_threshold(store: SQLiteStore, tmp_path: Path, clf: Classifier) -> None:
    tid = await ingest(store, tmp_path, "quiero registrar una marca")
    strict = ClassifierSettings(tramite_threshold=1.01, agency_threshold=1.01)
    result = await triage_ticket(store, clf, tid, strict)
    ticket = await store.get_ticket(tid)
    assert ticket is not None and result.status == "abstained"
    assert ticket.tags == {} and ticket.queue is None
    assert ticket.meta["classifier"]["abstain"] == {"tramite": True, "agency": True}


async def test_agent_corrections_feed_the_next_model(
    store: SQLiteStore, tmp_path: Path, data_dir: Path, clf: Classifier
) -> None:
    texts = ["el formulario zorblax no carga", "no encuentro el zorblax en la web", "dónde presento el zorblax?"]
    for text in texts:
        tid = await ingest(store, tmp_path, text)
        await triage_ticket(store, clf, tid, CONFIDENT)
        # What the web app does when an agent corrects the tag: the tag (source agent) and a labels document.
        await store.update_ticket(tid, TicketChanges(tags={"tramite": Tag("182", "agent")}), actor="agent:ana")
        label = {"ticket_id": tid, "subject": None, "text": text, "tramite": "182", "agency": None, "by": "ana"}
        await store.put_doc("labels", tid, label)
    await ingest(store, tmp_path, "otro mensaje sin etiquetar")
    examples = await labelled_examples(store)
    assert sorted(e.text for e in examples) == sorted(texts) and {e.tramite for e in examples} == {"182"}
    api.train(data_dir, examples, evaluate_holdout=False)
    pred = api.load_active(data_dir).predict(None, "problema con el zorblax")
    assert [c.key for c in pred.tramite if c.key][0] == "182"
    assert pred.agency[0].name == "Ministerio de Educación y Cultura - Dirección General de Secretaría"


async def test_missing_ticket_is_skipped(store: SQLiteStore, clf: Classifier) -> None:
    assert (await triage_ticket(store, clf, "tk_nope", CONFIDENT)).status == "skipped"
