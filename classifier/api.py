"""Public API of the classifier: train, load the active model, predict.

    info = train(data_dir, labelled_examples)      # new version, activated
    clf = load_active(data_dir)                     # trains from the catalogue on first use (cold start)
    pred = clf.predict(subject, text, k=3)          # Prediction: top-k trámites and agencies, abstain flags, terms
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from classifier import registry
from classifier.agencies import AgencyDirectory, default_directory
from classifier.catalog import Catalog, load_catalog
from classifier.corpus import CorpusConfig, build_corpus, message_key, message_text, seed_examples, summarize
from classifier.evaluate import MessageRecord, evaluate
from classifier.lexicon import default_lexicon
from classifier.model import ModelConfig, Scores, TramiteInfo, TriageModel
from classifier.settings import ClassifierSettings
from classifier.types import (
    NO_TRAMITE,
    UNKNOWN,
    AgencyCandidate,
    LabelledExample,
    ModelInfo,
    Prediction,
    TramiteCandidate,
)

log = logging.getLogger(__name__)

HOLDOUT_MIN_LABELS = 40  # below this, a model's metrics are not computed (too few labelled tickets)
_train_lock = threading.RLock()


class Classifier:
    """A loaded model with its settings. Thread-safe for prediction."""

    def __init__(self, model: TriageModel, info: ModelInfo, settings: ClassifierSettings | None = None) -> None:
        self.model = model
        self.info = info
        self.settings = settings or ClassifierSettings()

    @property
    def version(self) -> str:
        return self.info.version

    def with_settings(self, settings: ClassifierSettings) -> Classifier:
        """The same model with other thresholds (cheap: shares the fitted state)."""
        return self if settings is self.settings else Classifier(self.model, self.info, settings)

    def organismo_of(self, agency: str | None) -> str | None:
        if agency is None:
            return None
        return self.model.agency_organismo.get(agency) or default_directory().organismo_of(agency)

    def predict(self, subject: str | None, text: str, k: int | None = None, explain: bool = True) -> Prediction:
        return self.predict_batch([(subject, text)], k=k, explain=explain)[0]

    def predict_batch(
        self, messages: list[tuple[str | None, str]], k: int | None = None, explain: bool = False
    ) -> list[Prediction]:
        if not messages:
            return []
        k = k or self.settings.top_k
        texts = [message_text(s, t) for s, t in messages]
        x, bases = self.model.vectorize_with_base(texts)
        scores = self.model.score(x, bases, normalized=True)
        return [self._prediction(scores, i, k, x[i] if explain else None, texts[i]) for i in range(len(texts))]

    def _prediction(self, scores: Scores, i: int, k: int, x_row: Any, text: str) -> Prediction:
        tramites = self._top_tramites(scores, i, k)
        agencies = self._top_agencies(scores, i, k)
        best_t, best_a = tramites[0], agencies[0]
        abstain_t = best_t.p < self.settings.tramite_threshold_for(best_t.key)
        abstain_a = best_a.p < self.settings.agency_threshold_for(best_a.name)
        terms: list[str] = []
        if x_row is not None:
            t_index = self._tramite_index.get(best_t.key) if best_t.key else None
            a_index = self._agency_index.get(best_a.name) if best_a.name else None
            terms = self.model.explain(x_row, text, t_index, a_index)
        return Prediction(
            tramite=tramites,
            agency=agencies,
            abstain_tramite=abstain_t,
            abstain_agency=abstain_a,
            unknown=best_a.name is None and not abstain_a,
            terms=terms,
            model_version=self.version,
        )

    @property
    def _tramite_index(self) -> dict[str, int]:
        cached = getattr(self, "_t_index", None)
        if cached is None:
            cached = {t.key: i for i, t in enumerate(self.model.tramites)}
            self._t_index = cached
        return cached

    @property
    def _agency_index(self) -> dict[str, int]:
        cached = getattr(self, "_a_index", None)
        if cached is None:
            cached = {a: i for i, a in enumerate(self.model.agencies)}
            self._a_index = cached
        return cached

    def _top_tramites(self, scores: Scores, i: int, k: int) -> list[TramiteCandidate]:
        row = scores.tramite[i]
        top = np.argpartition(-row, min(k, len(row) - 1))[:k] if len(row) > k else np.arange(len(row))
        cands = [self._tramite_candidate(int(j), float(row[j])) for j in top]
        cands.append(TramiteCandidate(None, None, None, None, round(float(scores.no_tramite[i]), 4)))
        return sorted(cands, key=lambda c: -c.p)[:k]

    def _tramite_candidate(self, j: int, p: float) -> TramiteCandidate:
        t: TramiteInfo = self.model.tramites[j]
        return TramiteCandidate(t.key, t.name, t.organismo, t.agency, round(p, 4))

    def _top_agencies(self, scores: Scores, i: int, k: int) -> list[AgencyCandidate]:
        row = scores.agency[i]
        top = np.argpartition(-row, min(k, len(row) - 1))[:k] if len(row) > k else np.arange(len(row))
        # ranked on the unrounded probabilities: the agency of the answer trámite leads by a hair (model.py)
        ranked = sorted(
            [(float(row[j]), self.model.agencies[j]) for j in top] + [(float(scores.unknown[i]), None)],
            key=lambda c: -c[0],
        )[:k]
        return [AgencyCandidate(name, self.organismo_of(name), round(p, 4)) for p, name in ranked]


# -- training ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = ModelConfig()
    corpus: CorpusConfig = CorpusConfig()
    holdout_share: float = 0.2  # of labelled tickets, for the metrics recorded with the model
    seed: int = 7


def fit_model(
    catalog: Catalog,
    directory: AgencyDirectory,
    labelled: Iterable[LabelledExample] = (),
    cfg: TrainConfig | None = None,
    exclude: Collection[str] = frozenset(),
) -> tuple[TriageModel, dict[str, Any]]:
    """Fit a model in memory; returns it with its training data summary. Seed messages and labelled tickets whose
    :func:`message_key` is in ``exclude`` are not trained on."""
    cfg = cfg or TrainConfig()
    docs = build_corpus(catalog, directory, labelled, cfg.corpus, exclude)
    tramites = [TramiteInfo(t.key, t.name, t.agency, t.organismo) for t in catalog.active()]
    agencies = {d.agency for d in docs if d.agency != UNKNOWN} | {t.agency for t in tramites}
    organismo = {a: directory.organismo_of(a) or a for a in agencies}
    model = TriageModel(cfg.model).fit(docs, tramites, organismo, NO_TRAMITE, UNKNOWN)
    summary = {
        **summarize(docs),
        "catalog_source": catalog.source,
        "catalog_fingerprint": catalog.fingerprint(),
        "catalog_active": len(tramites),
        "profiles": len(directory.profiles),
        "lexicon_phrases": len(default_lexicon().phrases),
        "fit_seconds": round(model.fit_seconds, 2),
    }
    return model, summary


def _holdout_metrics(
    catalog: Catalog, directory: AgencyDirectory, labelled: list[LabelledExample], cfg: TrainConfig
) -> dict[str, Any]:
    if len(labelled) < HOLDOUT_MIN_LABELS:
        return {"note": f"not evaluated: {len(labelled)} labelled tickets (< {HOLDOUT_MIN_LABELS})"}
    rng = random.Random(cfg.seed)
    shuffled = labelled[:]
    rng.shuffle(shuffled)
    cut = max(1, int(len(shuffled) * cfg.holdout_share))
    test, train = shuffled[:cut], shuffled[cut:]
    model, _ = fit_model(catalog, directory, train, cfg)
    clf = Classifier(model, ModelInfo(version="holdout", created=""))
    records = [MessageRecord(str(i), e.subject, e.text, e.tramite, e.agency, True) for i, e in enumerate(test)]
    preds = clf.predict_batch([(r.subject, r.text) for r in records], k=3)
    result = evaluate(records, preds, clf.organismo_of)
    result.pop("confusions", None)
    result["holdout"] = f"{len(test)} of {len(labelled)} labelled tickets"
    return result


def train(
    data_dir: Path | str,
    examples: Iterable[LabelledExample] = (),
    cfg: TrainConfig | None = None,
    activate: bool = True,
    evaluate_holdout: bool = True,
) -> ModelInfo:
    """Train a model on the catalogue of ``data_dir``, the agency profiles and ``examples``; save it as a new version
    and (by default) make it active."""
    cfg = cfg or TrainConfig()
    labelled = list(examples)
    catalog = load_catalog(data_dir)
    directory = default_directory()
    with _train_lock:
        metrics = _holdout_metrics(catalog, directory, labelled, cfg) if evaluate_holdout else {}
        model, summary = fit_model(catalog, directory, labelled, cfg)
        info = ModelInfo(
            version=registry.new_version(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            training=summary,
            metrics=metrics,
            params={"model": cfg.model.to_dict(), "corpus": cfg.corpus.__dict__},
        )
        registry.save(data_dir, model, info)
        if activate:
            registry.activate(data_dir, info.version)
            info.active = True
    log.info("trained classifier model %s in %.1fs", info.version, summary["fit_seconds"])
    return info


def load_active(
    data_dir: Path | str, settings: ClassifierSettings | None = None, cold_start: bool = True
) -> Classifier:
    """The active model of ``data_dir``; with none, trains one from the catalogue first (``cold_start``)."""
    settings = settings or ClassifierSettings.load(data_dir)
    version = registry.active_version(data_dir)
    if version is None:
        if not cold_start:
            raise registry.RegistryError("no active classifier model")
        with _train_lock:
            version = registry.active_version(data_dir)
            if version is None:
                version = train(data_dir, (), evaluate_holdout=False).version
    stored = registry.load(data_dir, version)
    return Classifier(stored.model, stored.info, settings)


def scoring_model(
    data_dir: Path | str, messages: Iterable[tuple[str | None, str]], labelled: Iterable[LabelledExample] = ()
) -> tuple[Classifier, int]:
    """The model to score ``messages`` with, and how many of them it had to leave out of its training.

    That is the active model, unless it was trained on seed messages (or, among ``labelled``, tickets) that are the
    same as some of ``messages``: a model must never be scored on what it learned from, so a model is then trained the
    same way without them, in memory (it is not saved)."""
    clf = load_active(data_dir)
    labelled = list(labelled)
    seeds = seed_examples() if clf.info.training.get("seed_messages") else []
    tickets = labelled if clf.info.training.get("labelled_tickets") else []
    trained_on = {message_key(e.subject, e.text) for e in [*seeds, *tickets]}
    overlap = trained_on.intersection(message_key(subject, text) for subject, text in messages)
    if not overlap:
        return clf, 0
    cfg = TrainConfig(clf.model.cfg, CorpusConfig.from_dict(clf.info.params.get("corpus") or {}))
    model, summary = fit_model(load_catalog(data_dir), default_directory(), labelled, cfg, exclude=overlap)
    info = ModelInfo(version=f"{clf.version}-without-{len(overlap)}", created=clf.info.created, training=summary)
    log.info("model %s: trained without the %d messages it is about to score", info.version, len(overlap))
    return Classifier(model, info, clf.settings), len(overlap)


def list_models(data_dir: Path | str) -> list[ModelInfo]:
    return registry.list_models(data_dir)


def rollback(data_dir: Path | str) -> str:
    return registry.rollback(data_dir)
