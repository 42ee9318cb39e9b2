"""Training documents built from the catalogue, the citizen phrasings of trámites, the agency profiles, the unknown
examples, the seed messages and labelled tickets.

Every document carries two labels, the trámite (a catalogue key or NO_TRAMITE) and the agency (a name or UNKNOWN),
and a weight. Catalogue and profile texts are long and formal while messages are short and informal, so each source
text is also cut into shorter views (name alone, sentences, keyword groups, random word subsets) that look more like
what citizens write.
"""

from __future__ import annotations

import random
import re
import tomllib
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from classifier.agencies import AgencyDirectory, AgencyProfile
from classifier.catalog import Catalog, Tramite
from classifier.evaluate import parse_jsonl
from classifier.types import NO_TRAMITE, UNKNOWN, LabelledExample

# Texts written like messages (labelled tickets, seed messages): they weigh more in the gate and the classifiers.
LABEL_SOURCES = frozenset({"label", "seed"})

_SENTENCE = re.compile(r"(?<=[.;:!?])\s+|\s+-\s+")


@dataclass(frozen=True)
class Doc:
    text: str
    tramite: str  # catalogue key or NO_TRAMITE
    agency: str  # agency name or UNKNOWN
    weight: float
    source: str  # catalog | phrasing | profile | unknown | seed | label
    gate: bool = True  # used to train the kind gate (trámite / agency only / unknown)


@dataclass(frozen=True)
class CorpusConfig:
    dropout_views: int = 4  # random word-subset views per trámite
    dropout_keep: float = 0.5
    label_weight: float = 1.0  # weight of a labelled ticket (3.0 measured worse: one message dominates a centroid)
    phrasing_weight: float = 3.0  # weight of each citizen phrasing of a trámite (data/tramite_phrasings.toml)
    agency_phrasing_weight: float = 3.0  # ... and of each citizen message about a body (data/agency_phrasings.toml)
    # Profiles of agencies that run catalogue trámites share their words with those trámites: keep them out of the
    # kind gate, so "se me venció la cédula" is not taken for a message about the agency with no trámite.
    gate_skips_catalog_agencies: bool = True
    # The labelled development messages, shipped as seed labels (data/seed_messages.jsonl): a fresh install learns
    # from 420 messages written like citizens write before any agent labelled a ticket. Cross-validation on that same
    # file turns them off; scoring a file that shares messages with them trains without those (api.scoring_model).
    seed_messages: bool = True
    seed: int = 13

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CorpusConfig:
        """The config a model's metadata recorded (keys this version does not know are ignored)."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def message_text(subject: str | None, text: str) -> str:
    """The text the model reads for a message: subject and body."""
    subject = (subject or "").strip()
    return f"{subject}. {text}" if subject else text


def message_key(subject: str | None, text: str) -> str:
    """What makes two messages the same message: their subject and text, case and spacing aside."""
    return " ".join(message_text(subject, text).casefold().split())


def _sentences(text: str, min_words: int = 3) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.split()) >= min_words]


def _dropout(words: list[str], keep: float, rng: random.Random) -> str:
    kept = [w for w in words if rng.random() < keep]
    return " ".join(kept or words[:3])


def tramite_views(t: Tramite, directory: AgencyDirectory, cfg: CorpusConfig, rng: random.Random) -> list[str]:
    acronym = directory.acronym_of(t.agency)
    agency = f"{t.agency} {acronym}"
    full = f"{t.name}. {t.name}. {agency}. {t.description}. {t.requirements}"
    views = [full, f"{t.name}. {agency}", t.name]
    if t.description:
        views.append(f"{t.name}. {t.description}")
    views += [f"{s} {acronym}" for s in _sentences(t.description)]
    words = f"{t.name} {t.description} {t.requirements}".split()
    views += [_dropout(words, cfg.dropout_keep, rng) for _ in range(cfg.dropout_views)]
    return views


def profile_views(p: AgencyProfile) -> list[str]:
    head = f"{p.name} {p.acronym}".strip()
    views = [p.document(), f"{head}. {p.description}"]
    keywords = list(p.keywords)
    views += [f"{kw} {p.acronym}".strip() for kw in keywords]
    views += [", ".join(keywords[i : i + 3]) for i in range(0, len(keywords), 3)]
    views += [alias for alias in p.aliases]
    return views


def tramite_phrasings(text: str | None = None) -> dict[str, list[str]]:
    """Citizen phrasings per trámite key (``data/tramite_phrasings.toml``: ``[[tramite]]`` tables with ``key`` and
    ``phrases``); a key listed twice keeps the phrases of both."""
    return _phrasings("tramite_phrasings.toml", "tramite", "key", text)


def agency_phrasings(text: str | None = None) -> dict[str, list[str]]:
    """Citizen messages per public body about its services, not its catalogue trámites (``data/agency_phrasings.toml``:
    ``[[agency]]`` tables with ``name`` and ``phrases``)."""
    return _phrasings("agency_phrasings.toml", "agency", "name", text)


def _phrasings(file: str, table: str, key_field: str, text: str | None) -> dict[str, list[str]]:
    if text is None:
        text = resources.files("classifier").joinpath(f"data/{file}").read_text(encoding="utf-8")
    phrasings: dict[str, list[str]] = {}
    for entry in tomllib.loads(text).get(table, []):
        key, phrases = str(entry.get(key_field) or ""), entry.get("phrases") or []
        if key:
            phrasings.setdefault(key, []).extend(str(p).strip() for p in phrases if str(p).strip())
    return phrasings


def unknown_texts() -> list[str]:
    raw = resources.files("classifier").joinpath("data/unknown.txt").read_text(encoding="utf-8")
    return [line.strip() for line in raw.splitlines() if line.strip() and not line.startswith("#")]


def seed_examples() -> list[LabelledExample]:
    """The shipped seed labels (``data/seed_messages.jsonl``, the format of ``inbox classifier eval``'s files)."""
    raw = resources.files("classifier").joinpath("data/seed_messages.jsonl").read_text(encoding="utf-8")
    return [record.example() for record in parse_jsonl(raw.splitlines())]


def _label_doc(
    ex: LabelledExample, catalog: Catalog, directory: AgencyDirectory, weight: float, source: str = "label"
) -> Doc | None:
    tramite = catalog.get(ex.tramite)
    if ex.tramite and tramite is None:
        return None  # a key this catalogue never had
    agency = ex.agency or (tramite.agency if tramite else None)
    agency = directory.canonical(agency) if agency and not tramite else agency
    return Doc(
        text=message_text(ex.subject, ex.text),
        tramite=tramite.key if tramite else NO_TRAMITE,
        agency=agency or UNKNOWN,
        weight=weight,
        source=source,
    )


def build_corpus(
    catalog: Catalog,
    directory: AgencyDirectory,
    labelled: Iterable[LabelledExample] = (),
    cfg: CorpusConfig | None = None,
    exclude: Collection[str] = frozenset(),
) -> list[Doc]:
    """All training documents; seed messages and labelled tickets whose :func:`message_key` is in ``exclude`` (the
    messages about to be scored) are left out."""
    cfg = cfg or CorpusConfig()
    rng = random.Random(cfg.seed)
    docs: list[Doc] = []
    phrasings = tramite_phrasings() if cfg.phrasing_weight > 0 else {}
    for t in sorted(catalog.active(), key=lambda x: x.key):
        docs += [Doc(v, t.key, t.agency, 1.0, "catalog") for v in tramite_views(t, directory, cfg, rng)]
        docs += [Doc(v, t.key, t.agency, cfg.phrasing_weight, "phrasing") for v in phrasings.get(t.key, ())]
    catalog_agencies = {t.agency for t in catalog.active()}
    for p in directory.profiles.values():
        gate = not (cfg.gate_skips_catalog_agencies and p.name in catalog_agencies)
        docs += [Doc(v, NO_TRAMITE, p.name, 1.0, "profile", gate) for v in profile_views(p)]
    if cfg.agency_phrasing_weight > 0:
        catalog_bodies = {directory.organismo_of(a) for a in catalog_agencies}
        for name, phrases in agency_phrasings().items():
            agency = directory.canonical(name) or name
            gate = not (cfg.gate_skips_catalog_agencies and agency in catalog_bodies)
            docs += [Doc(v, NO_TRAMITE, agency, cfg.agency_phrasing_weight, "phrasing", gate) for v in phrases]
    docs += [Doc(text, NO_TRAMITE, UNKNOWN, 1.0, "unknown") for text in unknown_texts()]
    seeds = seed_examples() if cfg.seed_messages else []
    examples = [(ex, "seed") for ex in seeds] + [(ex, "label") for ex in labelled]
    for ex, source in examples:
        if exclude and message_key(ex.subject, ex.text) in exclude:
            continue
        doc = _label_doc(ex, catalog, directory, cfg.label_weight, source)
        if doc is not None:
            docs.append(doc)
    return docs


def summarize(docs: list[Doc]) -> dict[str, object]:
    by_source = Counter(d.source for d in docs)
    return {
        "documents": len(docs),
        "by_source": dict(sorted(by_source.items())),
        "tramites": len({d.tramite for d in docs if d.tramite != NO_TRAMITE}),
        "agencies": len({d.agency for d in docs if d.agency != UNKNOWN}),
        "labelled_tickets": by_source.get("label", 0),
        "seed_messages": by_source.get("seed", 0),
    }
