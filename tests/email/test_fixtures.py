"""Every shared fixture mail through ``inbox ingest email``; the Spanish cases against expected.json."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from adapters.email.parse import ParseOptions, parse_message
from tests.email.conftest import FIXTURES, OUR_ADDRESS, OUR_DOMAIN
from workers.cli import main

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
EXTRA = json.loads((FIXTURES / "expected_extra.json").read_text(encoding="utf-8"))
OPTIONS = ParseOptions(own_addresses=frozenset({OUR_ADDRESS}), own_domains=frozenset({OUR_DOMAIN}))
ALL_FILES = sorted(FIXTURES.glob("*.eml"))


def test_there_are_thirty_fixture_files() -> None:
    assert len(ALL_FILES) == 30


def test_every_fixture_goes_through_inbox_ingest_email(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[email]\nmessage_id_domain = "{OUR_DOMAIN}"\n'
                        f'[[email.accounts]]\nname = "atencion"\naddress = "{OUR_ADDRESS}"\n', encoding="utf-8")
    data = tmp_path / "data"
    rc = main(["ingest", "email", "--settings", str(settings), "--data-dir", str(data), "--account", "atencion",
               "--json", *map(str, ALL_FILES)])
    assert rc == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # es09 is es01 delivered a second time through the Cc alias: the one duplicate; nothing is quarantined.
    assert counts == {"ingested": 29, "duplicates": 1, "quarantined": 0}
    with sqlite3.connect(data / "inbox.sqlite3") as db:
        rows = dict(db.execute("SELECT external_id, flags FROM messages WHERE channel='email'").fetchall())
    assert json.loads(rows["ticket-1042.7f3a9c2e@inbox.example.gub.uy"]) == ["own_message", "loop"]
    assert json.loads(rows["auto.20251104140300.77f1@empresa.example.com"]) == ["auto_reply"]
    # the same input again is all duplicates (idempotent ingest)
    main(["ingest", "email", "--settings", str(settings), "--data-dir", str(data), "--account", "atencion",
          "--json", *map(str, ALL_FILES)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "ingested": 0, "duplicates": 30, "quarantined": 0}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spanish_case_matches_expected_json(name: str) -> None:
    exp = EXPECTED[name]
    m = parse_message((FIXTURES / name).read_bytes(), "atencion", options=OPTIONS)
    assert m.sender.value == exp["from_address"]
    assert m.sender.display_name == exp["from_name"]
    assert m.subject == exp["subject"]
    assert m.text[:40] == exp["text_body_startswith"]
    assert (m.html is not None) == exp["has_html"]
    normal = [a for a in m.attachments if a.content_id is None]
    assert [{"filename": a.filename, "content_type": a.content_type, "size": a.size} for a in normal] == \
        exp["attachments"]
    assert (f"<{m.hints.in_reply_to}>" if m.hints.in_reply_to else None) == exp["in_reply_to"]
    assert [f"<{r}>" for r in m.hints.references] == exp["references"]
    assert ("auto_reply" in m.flags) == exp["is_auto_reply"]


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_spanish_case_matches_expected_extra(name: str) -> None:
    extra = EXTRA[name]
    m = parse_message((FIXTURES / name).read_bytes(), "atencion", options=OPTIONS)
    if extra.get("message_id"):
        assert f"<{m.external_id}>" == extra["message_id"]
    else:
        assert m.meta["synthetic_message_id"] is True
    if extra.get("ticket_tag"):
        assert m.hints.ticket_number == int(extra["ticket_tag"])
    if extra.get("is_loop"):
        assert {"own_message", "loop"} <= set(m.flags)
    if "reply_to_address" in extra:
        assert m.meta["reply_to"] == [{"name": extra["reply_to_name"], "address": extra["reply_to_address"]}]
    if "forwarded_original_from" in extra:
        fwd = m.meta["forwarded"][0]
        assert (fwd["from"], fwd["name"], fwd["subject"]) == (
            extra["forwarded_original_from"], extra["forwarded_original_name"], extra["forwarded_original_subject"])
    if "quoted_history_starts_with" in extra:
        assert m.meta["quoted_text"].startswith(extra["quoted_history_starts_with"])
        assert "Estimada Lucía" not in m.text
    if "attachment_sha256" in extra:
        import hashlib

        got = {a.filename: hashlib.sha256(a.data or b"").hexdigest() for a in m.attachments}
        assert got == extra["attachment_sha256"]
    if extra.get("must_not_trigger_auto_acknowledgement"):
        assert "auto_reply" in m.flags
    for pii in extra.get("pii", []):  # nothing is lost: the fake cédula / phone stay in the visible text
        digits = "".join(ch for ch in pii if ch.isdigit())
        assert digits in "".join(ch for ch in m.text if ch.isdigit())


def test_duplicate_message_id_has_the_same_content_hash() -> None:
    a = parse_message((FIXTURES / "es01_pasaporte_iso8859_qp.eml").read_bytes(), "atencion")
    b = parse_message((FIXTURES / "es09_message_id_duplicado.eml").read_bytes(), "atencion")
    assert a.external_id == b.external_id
    assert a.meta["content_hash"] == b.meta["content_hash"]
    assert a.raw != b.raw


def test_hostile_html_is_sanitized() -> None:
    m = parse_message((FIXTURES / "es02_outlook_html_xss_pixel.eml").read_bytes(), "atencion", options=OPTIONS)
    html = m.html or ""
    lowered = html.lower()
    for needle in ("<script", "onload", "onerror", "onmouseover", "javascript:", "<iframe", "tracking.example.net",
                   "attacker.example.net", "phish.example.net", "url(", "document.cookie", "<style", "<head"):
        assert needle not in lowered, needle
    assert "Buenas tardes, les escribo porque el turno" in html
    assert "¿Me pueden reagendar" in html
    assert m.meta["tracking_pixels_removed"] == 1
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.parametrize("path", ALL_FILES, ids=[p.name for p in ALL_FILES])
def test_every_fixture_parses_with_a_sender_and_some_id(path: Path) -> None:
    m = parse_message(path.read_bytes(), "atencion", options=OPTIONS)
    assert "@" in m.sender.value and m.external_id
    assert m.raw == path.read_bytes()
