"""Full-text search over ticket subjects, message texts and contact names/addresses: case and accent insensitive."""

from __future__ import annotations

import pytest

from inbox.domain import TicketFilter
from inbox.ingest import Pipeline
from inbox.store.base import Store

from .factory import inbound


@pytest.fixture
async def corpus(store: Store, pipeline: Pipeline) -> dict[str, str]:
    cedula = await pipeline.ingest(inbound(sender="jose.perez@example.uy", name="José Pérez",
                                           subject="Renovación de cédula",
                                           text="Necesito renovar mi CÉDULA antes del viaje, es urgente."))
    pasaporte = await pipeline.ingest(inbound(sender="ana@example.uy", name="Ana Núñez", subject="Pasaporte",
                                              text="Consulta sobre el trámite del pasaporte electrónico."))
    hijo = await pipeline.ingest(inbound(sender="maria@example.uy", name="María", subject="Otro tema",
                                         text="quiero sacar la cedula de mi hijo"))
    nada = await pipeline.ingest(inbound(sender="x@example.uy", name=None, subject="Horarios",
                                         text="¿A qué hora abren las oficinas?"))
    return {"cedula": cedula.ticket_id, "pasaporte": pasaporte.ticket_id, "hijo": hijo.ticket_id,
            "nada": nada.ticket_id}


async def _found(store: Store, text: str, **flt: object) -> set[str]:
    f = TicketFilter(text=text, **flt)  # type: ignore[arg-type]
    items = (await store.list_tickets(f, limit=100)).items
    assert await store.count_tickets(f) == len(items)
    return {t.id for t in items}


@pytest.mark.parametrize("query", ["cedula", "cédula", "CEDULA", "Cédula", "CÉDULA"])
async def test_accents_and_case_are_ignored(store: Store, corpus: dict[str, str], query: str) -> None:
    assert await _found(store, query) == {corpus["cedula"], corpus["hijo"]}


async def test_search_fields(store: Store, corpus: dict[str, str]) -> None:
    assert await _found(store, "renovacion") == {corpus["cedula"]}  # subject
    assert await _found(store, "tramite") == {corpus["pasaporte"]}  # message text only
    assert await _found(store, "electronico") == {corpus["pasaporte"]}
    assert await _found(store, "jose") == {corpus["cedula"]}  # contact name
    assert await _found(store, "nunez") == {corpus["pasaporte"]}
    assert await _found(store, "jose.perez@example.uy") == {corpus["cedula"]}  # contact address
    assert await _found(store, "maria") == {corpus["hijo"]}


async def test_every_word_must_match_last_is_a_prefix(store: Store, corpus: dict[str, str]) -> None:
    assert await _found(store, "cedula hijo") == {corpus["hijo"]}
    assert await _found(store, "ced") == {corpus["cedula"], corpus["hijo"]}
    assert await _found(store, "pasap") == {corpus["pasaporte"]}
    assert await _found(store, "oficin") == {corpus["nada"]}
    assert await _found(store, "ced viaje") == set()  # only the last word is a prefix
    assert await _found(store, "renovar cedul") == {corpus["cedula"]}
    assert await _found(store, "cedula pasaporte") == set()  # not in one ticket's fields or one message


async def test_no_match_and_no_words(store: Store, corpus: dict[str, str]) -> None:
    assert await _found(store, "inexistente") == set()
    assert await _found(store, "¿?!") == set()
    assert await _found(store, "   ") == set()


async def test_search_with_filters(store: Store, corpus: dict[str, str]) -> None:
    assert await _found(store, "cedula", status=["new"]) == {corpus["cedula"], corpus["hijo"]}
    assert await _found(store, "cedula", status=["open"]) == set()
    cedula = await store.get_ticket(corpus["cedula"])
    assert await _found(store, "cedula", contact_id=cedula.contact_id) == {corpus["cedula"]}


async def test_later_messages_are_searchable(store: Store, pipeline: Pipeline, corpus: dict[str, str]) -> None:
    t = await store.get_ticket(corpus["nada"])
    [first] = await store.list_messages(t.id)
    await pipeline.ingest(inbound(sender="x@example.uy", in_reply_to=first.external_id, text="y además la partida"))
    assert await _found(store, "ademas partida") == {corpus["nada"]}
