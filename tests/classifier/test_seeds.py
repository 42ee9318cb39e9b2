"""Seed messages (classifier/data/seed_messages.jsonl): a fresh install trains on them, and a file that shares
messages with them is never scored by a model that learned from those messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier import api
from classifier.agencies import default_directory
from classifier.catalog import load_sample
from classifier.corpus import CorpusConfig, build_corpus, message_key, seed_examples
from classifier.types import NO_TRAMITE, LabelledExample

from .test_cli import parser, run, write_jsonl


def _as_record(i: int, ex: LabelledExample) -> dict[str, object]:
    return {"id": f"s{i}", "channel": "email", "subject": ex.subject, "text": ex.text, "tramite": ex.tramite,
            "agency": ex.agency}


def test_every_seed_is_labelled_with_a_catalogue_trámite_or_a_known_agency() -> None:
    seeds = seed_examples()
    keys = {t.key for t in load_sample().active()}
    directory = default_directory()
    assert len(seeds) >= 400
    assert {s.tramite for s in seeds if s.tramite} <= keys
    for s in seeds:
        if s.agency and not s.tramite:
            assert directory.profile(s.agency) or directory.organismo_of(s.agency), s.agency


def test_seeds_are_trained_on_unless_turned_off_or_excluded() -> None:
    catalog, directory = load_sample(), default_directory()
    seeds = seed_examples()
    docs = [d for d in build_corpus(catalog, directory) if d.source == "seed"]
    assert len(docs) == len(seeds)
    first = seeds[0]
    assert docs[0].tramite == (first.tramite or NO_TRAMITE) and first.text in docs[0].text
    off = build_corpus(catalog, directory, cfg=CorpusConfig(seed_messages=False))
    assert not [d for d in off if d.source == "seed"]
    left = [d for d in build_corpus(catalog, directory, exclude={message_key(first.subject, first.text)})
            if d.source == "seed"]
    assert len(left) == len(seeds) - 1 and all(first.text not in d.text for d in left)


def test_message_key_ignores_case_and_spacing_only() -> None:
    assert message_key("Cédula", "se me  venció\nla cédula") == message_key("cédula", "Se me venció la cédula ")
    assert message_key(None, "se me venció la cédula") != message_key(None, "se me venció el pasaporte")


@pytest.mark.parametrize("command", ["eval", "batch"])
def test_a_file_with_seed_messages_is_scored_by_a_model_not_trained_on_them(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    seeds = seed_examples()
    active = api.load_active(data_dir, cold_start=False)
    assert active.info.training["seed_messages"] == len(seeds)
    rows = [_as_record(i, ex) for i, ex in enumerate(seeds[:3])]
    rows.append({"id": "new", "channel": "web", "subject": None, "text": "quiero renovar la libreta de conducir",
                 "tramite": None, "agency": None})
    f = write_jsonl(tmp_path / "mixed.jsonl", rows)
    argv = ["classifier", "eval", str(f), "--json"] if command == "eval" else ["classify", "--batch", str(f)]
    rc, out = run(parser(), "--data-dir", str(data_dir), *argv)
    assert rc == 0
    assert "3 of these messages are among the model's training messages" in capsys.readouterr().err
    if command == "eval":
        assert json.loads(out)["model_version"] == f"{active.version}-without-3"
    else:
        assert [json.loads(line)["id"] for line in out.splitlines()] == ["s0", "s1", "s2", "new"]
    clf, left_out = api.scoring_model(data_dir, [(r["subject"], r["text"]) for r in rows])  # type: ignore[misc]
    assert left_out == 3 and clf.info.training["seed_messages"] == len(seeds) - 3


def test_a_file_sharing_no_message_is_scored_by_the_active_model(data_dir: Path) -> None:
    clf, left_out = api.scoring_model(data_dir, [(None, "hola, cómo saco la libreta de conducir en Florida?")])
    assert left_out == 0 and clf.version == api.load_active(data_dir, cold_start=False).version
