"""Citizen phrasings of trámites (classifier/data/tramite_phrasings.toml) and citizen messages about the bodies'
services (classifier/data/agency_phrasings.toml): parsing, the shipped files, and what the model learns from them."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from classifier import corpus
from classifier.agencies import default_directory
from classifier.api import Classifier, fit_model
from classifier.catalog import load_sample
from classifier.corpus import CorpusConfig, agency_phrasings, build_corpus, tramite_phrasings
from classifier.types import ModelInfo

RENEWAL = "3459"  # Renovación de licencia de conducir - San José (a key of the packaged sample)


def test_parse_merges_repeated_keys_and_drops_blanks() -> None:
    text = """
[[tramite]]
key = "a"
phrases = ["uno", "  ", "dos"]

[[tramite]]
key = "a"
phrases = ["tres"]

[[tramite]]
name = "sin clave"
phrases = ["ignorada"]
"""
    assert tramite_phrasings(text) == {"a": ["uno", "dos", "tres"]}


def test_every_shipped_key_is_a_catalogue_trámite_with_phrases() -> None:
    shipped = tramite_phrasings()
    keys = {t.key for t in load_sample().active()}
    assert shipped, "no phrasings shipped"
    assert set(shipped) <= keys, f"unknown keys: {sorted(set(shipped) - keys)[:5]}"
    assert all(len(phrases) >= 1 for phrases in shipped.values())


@pytest.mark.parametrize("file, table", [("tramite_phrasings.toml", "tramite"), ("agency_phrasings.toml", "agency")])
def test_shipped_files_hold_tables_only(file: str, table: str) -> None:
    # a table header lost in an edit (say, commented out) leaves its phrases as top-level keys, silently unused
    text = resources.files("classifier").joinpath(f"data/{file}").read_text(encoding="utf-8")
    assert set(tomllib.loads(text)) == {table}


def test_every_shipped_agency_phrasing_names_a_profiled_body() -> None:
    shipped = agency_phrasings()
    directory = default_directory()
    assert shipped, "no agency phrasings shipped"
    assert [name for name in shipped if directory.profile(name) is None] == []
    assert all(len(phrases) >= 1 for phrases in shipped.values())


def test_agency_phrasings_of_catalogue_bodies_stay_out_of_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages about a body that runs catalogue trámites train its centroid and classifiers, not the kind gate (its
    trámites' messages would be taken for messages about the body alone); other bodies' messages train the gate."""
    monkeypatch.setattr(corpus, "tramite_phrasings", lambda: {})
    monkeypatch.setattr(
        corpus,
        "agency_phrasings",
        lambda: {"Ministerio del Interior": ["la comisaría no me toma la denuncia"], "UTE": ["sin luz desde ayer"]},
    )
    docs = build_corpus(load_sample(), default_directory(), cfg=CorpusConfig(agency_phrasing_weight=2.0))
    phrasing = {d.text: d for d in docs if d.source == "phrasing"}
    interior, ute = phrasing["la comisaría no me toma la denuncia"], phrasing["sin luz desde ayer"]
    assert (interior.agency, interior.tramite, interior.weight, interior.gate) == (
        "Ministerio del Interior",
        corpus.NO_TRAMITE,
        2.0,
        False,
    )
    assert ute.agency == default_directory().canonical("UTE") and ute.gate is True


def test_corpus_takes_phrasings_of_catalogue_trámites_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        corpus, "tramite_phrasings", lambda: {RENEWAL: ["se me vence la libreta"], "no-such-key": ["perdida"]}
    )
    monkeypatch.setattr(corpus, "agency_phrasings", lambda: {})
    docs = build_corpus(load_sample(), default_directory(), cfg=CorpusConfig(phrasing_weight=2.5))
    phrasing = [d for d in docs if d.source == "phrasing"]
    assert [(d.text, d.tramite, d.weight) for d in phrasing] == [("se me vence la libreta", RENEWAL, 2.5)]
    off = build_corpus(load_sample(), default_directory(), cfg=CorpusConfig(phrasing_weight=0))
    assert not [d for d in off if d.source == "phrasing"]


def test_a_phrasing_teaches_the_model_a_citizen_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """A word no catalogue text uses reaches its trámite only once a phrasing says it."""
    message = "necesito el zorbaflex de la intendencia para el auto"

    def top_key(phrases: dict[str, list[str]]) -> str | None:
        """The best catalogue trámite for the message (whatever P(no trámite) is)."""
        monkeypatch.setattr(corpus, "tramite_phrasings", lambda: phrases)
        model, _ = fit_model(load_sample(), default_directory())
        prediction = Classifier(model, ModelInfo(version="t", created="")).predict(None, message, k=5)
        return next(c.key for c in prediction.tramite if c.key)

    assert top_key({}) != RENEWAL
    taught = {RENEWAL: ["se me vence el zorbaflex", "tengo que renovar el zorbaflex en San José"]}
    assert top_key(taught) == RENEWAL
