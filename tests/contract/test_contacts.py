"""Contacts: identities belong to exactly one contact; merge moves identities and tickets, unmerge brings them back."""

from __future__ import annotations

import pytest

from inbox.domain import Contact, EventKind, Identity, TicketFilter
from inbox.ingest import Pipeline
from inbox.store.base import NotFound, Store, StoreError

from .factory import inbound


async def test_create_and_find_by_normalized_identity(store: Store) -> None:
    c = Contact("c1", "Ana Pérez", [Identity("email", "Ana@Example.UY"), Identity("ci", "1.234.567-8")])
    await store.create_contact(c, "agent:x")
    got = await store.get_contact("c1")
    assert got is not None and got.name == "Ana Pérez" and got.merged_into is None
    assert sorted(i.key for i in got.identities) == [("ci", "12345678"), ("email", "ana@example.uy")]
    found = await store.find_contact_by_identity("email", "  ANA@example.uy ")
    assert found is not None and found.id == "c1"
    assert (await store.find_contact_by_identity("ci", "12345678")).id == "c1"
    assert await store.find_contact_by_identity("email", "nadie@example.uy") is None
    assert await store.get_contact("nope") is None
    events = await store.list_events(kinds=[EventKind.CONTACT_CREATED])
    assert [e.data["contact_id"] for e in events] == ["c1"]


async def test_identity_belongs_to_exactly_one_contact(store: Store) -> None:
    await store.create_contact(Contact("c1", "Ana", [Identity("email", "ana@example.uy")]), "a")
    with pytest.raises(StoreError):
        await store.create_contact(Contact("c2", "Otra", [Identity("email", "ANA@example.uy")]), "a")
    assert await store.get_contact("c2") is None
    await store.create_contact(Contact("c3", "Beto", [Identity("email", "beto@example.uy")]), "a")
    with pytest.raises(StoreError):
        await store.add_identity("c3", Identity("email", "ana@example.uy"), "a")
    await store.add_identity("c1", Identity("email", "ana@example.uy"), "a")  # same owner: no-op
    await store.add_identity("c3", Identity("phone", "+598 99 123 456"), "a")
    assert (await store.find_contact_by_identity("phone", "+59899123456")).id == "c3"
    assert len((await store.get_contact("c1")).identities) == 1


async def test_pipeline_attaches_extra_identity_to_the_same_person(store: Store, pipeline: Pipeline) -> None:
    first = await pipeline.ingest(inbound(sender="ana@example.uy", extra_identities=[Identity("ci", "1234567-8")]))
    second = await pipeline.ingest(inbound(sender="ana.trabajo@example.uy",
                                           extra_identities=[Identity("ci", "12345678")]))
    assert first.status == second.status == "ingested"
    owner = await store.find_contact_by_identity("ci", "12345678")
    assert owner is not None
    assert (await store.find_contact_by_identity("email", "ana.trabajo@example.uy")).id == owner.id
    assert (await store.find_contact_by_identity("email", "ana@example.uy")).id == owner.id


async def test_merge_and_unmerge(store: Store, pipeline: Pipeline) -> None:
    a = await pipeline.ingest(inbound(sender="ana@example.uy", name="Ana", subject="Pasaporte"))
    b1 = await pipeline.ingest(inbound(sender="ana.perez@correo.uy", name="Ana Pérez", subject="Cédula"))
    b2 = await pipeline.ingest(inbound(sender="ana.perez@correo.uy", name="Ana Pérez", subject="Otra cosa"))
    keep = (await store.get_ticket(a.ticket_id)).contact_id
    other = (await store.get_ticket(b1.ticket_id)).contact_id
    assert keep != other

    with pytest.raises(StoreError):
        await store.merge_contacts(keep, keep, "agent:x")
    with pytest.raises(NotFound):
        await store.merge_contacts(keep, "nope", "agent:x")

    merge_id = await store.merge_contacts(keep, other, "agent:x")
    kept = await store.get_contact(keep)
    assert sorted(i.value for i in kept.identities) == ["ana.perez@correo.uy", "ana@example.uy"]
    assert (await store.get_contact(other)).merged_into == keep
    assert (await store.find_contact_by_identity("email", "ana.perez@correo.uy")).id == keep
    for r in (a, b1, b2):
        assert (await store.get_ticket(r.ticket_id)).contact_id == keep
    assert await store.count_tickets(TicketFilter(contact_id=keep)) == 3
    assert await store.count_tickets(TicketFilter(contact_id=other)) == 0
    # the kept contact's tickets are found by the merged address
    found = await store.list_tickets(TicketFilter(text="correo"))
    assert {t.id for t in found.items} == {a.ticket_id, b1.ticket_id, b2.ticket_id}
    assert [c.id for c in await store.search_contacts("ana")] == [keep]  # merged contacts are not listed
    merged = await store.list_events(kinds=[EventKind.CONTACT_MERGED])
    assert len(merged) == 1 and merged[0].data["merge_id"] == merge_id and merged[0].actor == "agent:x"
    assert sorted(merged[0].data["tickets"]) == sorted([b1.ticket_id, b2.ticket_id])

    await store.unmerge_contacts(merge_id, "agent:y")
    assert (await store.get_contact(other)).merged_into is None
    assert [i.value for i in (await store.get_contact(keep)).identities] == ["ana@example.uy"]
    assert [i.value for i in (await store.get_contact(other)).identities] == ["ana.perez@correo.uy"]
    assert (await store.get_ticket(a.ticket_id)).contact_id == keep
    assert (await store.get_ticket(b1.ticket_id)).contact_id == other
    assert (await store.get_ticket(b2.ticket_id)).contact_id == other
    assert {t.id for t in (await store.list_tickets(TicketFilter(text="correo"))).items} == {b1.ticket_id, b2.ticket_id}
    unmerged = await store.list_events(kinds=[EventKind.CONTACT_UNMERGED])
    assert len(unmerged) == 1 and unmerged[0].data["merge_id"] == merge_id and unmerged[0].actor == "agent:y"
    assert unmerged[0].seq > merged[0].seq

    with pytest.raises(StoreError):
        await store.unmerge_contacts(merge_id, "agent:y")
    with pytest.raises(NotFound):
        await store.unmerge_contacts("no-such-merge", "agent:y")
    assert (await store.get_doc("merges", merge_id))["undone"] is True


async def test_search_contacts(store: Store) -> None:
    await store.create_contact(Contact("c1", "José Pérez", [Identity("email", "jose@example.uy")]), "a")
    await store.create_contact(Contact("c2", None, [Identity("x", "12345", "María X", "@maria")]), "a")
    await store.create_contact(Contact("c3", "Otro", [Identity("phone", "099 111 222")]), "a")
    assert [c.id for c in await store.search_contacts("josé")] == ["c1"]
    assert [c.id for c in await store.search_contacts("JOSE@example")] == ["c1"]
    assert [c.id for c in await store.search_contacts("maría")] == ["c2"]
    assert [c.id for c in await store.search_contacts("099111")] == ["c3"]
    assert await store.search_contacts("nadie") == []
    assert len(await store.search_contacts("o", limit=2)) == 2
