"""The model: three linear scorers over one TF-IDF feature space.

- **kind gate** (logistic regression, calibrated by construction): does the message concern a catalogue trámite, an
  agency with no fitting trámite, or nothing at all (spam, thanks-only, off-topic)?
- **trámite scorer**: cosine similarity to each trámite's centroid (its catalogue views, its citizen phrasings and the
  labelled tickets), turned into a distribution by a softmax with a low temperature. Most trámites have no labelled
  ticket at all, and a similarity to the catalogue text generalizes to them where a discriminative model trained on
  one document per class does not (measured: see docs/classifier.md).
- **agency scorer**: a mix of centroid similarity and a log-loss SGD classifier over every agency (catalogue units and
  the bodies of the profiles), both reweighted by P(top-level body | text), itself a mix of the bodies' centroid
  similarity and a log-loss SGD classifier over the bodies. The classifiers' coefficients are pruned to the largest
  few thousand per class and their labelled tickets weigh more (they are the only texts written like messages).

They combine hierarchically: P(trámite t) = P(kind=trámite)·P(t | trámite); P(no trámite) = 1 − P(kind=trámite);
P(agency a) = P(kind=trámite)·[mix·Σ_{t of a} P(t | trámite) + (1−mix)·P(a | text)] + P(kind=agency)·P(a | text);
P(unknown) = P(kind=unknown). Where a trámite is the answer (it outranks "no trámite"), the agency that runs it is
raised to lead the agency ranking (``agency_follows_tramite``), so the two answers never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.preprocessing import normalize as l2_normalize

from classifier.corpus import LABEL_SOURCES, Doc
from classifier.features import FeatureConfig, Featurizer, stem
from classifier.normalize import normalize

KIND_TRAMITE, KIND_AGENCY, KIND_UNKNOWN = "tramite", "agency", "unknown"


@dataclass(frozen=True)
class ModelConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tramite_temperature: float = 0.04
    agency_temperature: float = 0.05
    # share of a discriminative classifier over the agencies (one-vs-rest log-loss SGD on the word features, pruned
    # like the body classifier below: ``sgd_alpha``, ``sgd_epochs``) in P(a | text); the rest is centroid similarity
    agency_sgd_weight: float = 0.7
    centroid_terms: int = 1500  # features kept per centroid (largest weights): bounds model size and latency
    agency_from_tramite: float = 0.5  # share of the trámite-derived agency when the message is about a trámite
    organismo_weight: float = 0.5  # exponent of the top-level-body similarity that reweights P(agency); 0 = off
    organismo_temperature: float = 0.05
    organismo_weight_tramite: float = 1.0  # the same reweighting for P(t | trámite)
    mention_boost: float = 4.0  # a body named in the message (acronym, name): its probability ×(1 + boost); 0 = off
    mention_unknown: float = 0.25  # ... and P(unknown) × this (a message that names one or two bodies is about them)
    mention_max: int = 2  # more bodies named than this (a rant against "ANTEL UTE OSE BPS") is no evidence
    # When a trámite is the answer (it outranks "no trámite"), the agency that runs it leads the agency ranking
    agency_follows_tramite: bool = True
    # Discriminative P(top-level body | text): a log-loss linear classifier (one-vs-rest SGD) over the bodies, trained
    # on the catalogue views, the profiles and the labelled tickets (weighted ×clf_label_weight: the only texts
    # written like messages), mixed with the centroid similarity: P(body) = (1 − w)·centroid softmax + w·classifier.
    organismo_clf_weight: float = 0.7
    organismo_clf_alpha: float = 5e-6
    organismo_clf_epochs: int = 5
    clf_label_weight: float = 2.0  # labelled tickets in the discriminative body and agency classifiers
    clf_terms: int = 5000  # coefficients kept per class (largest magnitude): model size and latency stay bounded
    organismo_clf_words_only: bool = False  # read the word features only (the char n-grams cost ~5× to train on)
    agency_clf_words_only: bool = True
    gate_c: float = 10.0
    gate_label_weight: float = 6.0  # weight of a labelled ticket in the kind gate (relative to catalogue views)
    gate_balanced: bool = True
    sgd_alpha: float = 1e-5
    sgd_epochs: int = 15
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        feats = dict(d.get("features") or {})
        for k in ("word_ngrams", "char_ngrams"):
            if k in feats:
                feats[k] = tuple(feats[k])
        rest = {k: v for k, v in d.items() if k != "features" and k in cls.__dataclass_fields__}
        return cls(features=FeatureConfig(**feats), **rest)


@dataclass(frozen=True)
class TramiteInfo:
    key: str
    name: str
    agency: str
    organismo: str


@dataclass
class Scores:
    """Raw model output for a batch: probabilities over the model's label lists."""

    tramite: np.ndarray  # (n, n_tramites): P(kind=trámite)·P(t | trámite)
    no_tramite: np.ndarray  # (n,)
    agency: np.ndarray  # (n, n_agencies)
    unknown: np.ndarray  # (n,)


def _softmax(z: np.ndarray, temperature: float) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _renormalize(p: np.ndarray) -> np.ndarray:
    total = p.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return p / total


def _centroids(
    labels: Sequence[str], weights: np.ndarray, x: sp.csr_matrix, classes: list[str], keep: int
) -> sp.csr_matrix:
    index = {c: i for i, c in enumerate(classes)}
    mask = np.array([lbl in index for lbl in labels])
    rows = [index[lbl] for lbl, m in zip(labels, mask, strict=True) if m]
    y = sp.csr_matrix((weights[mask], (rows, np.flatnonzero(mask))), shape=(len(classes), len(labels)))
    return _prune_rows(sp.csr_matrix(l2_normalize(y @ x), dtype=np.float32), keep)


def _prune_rows(m: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest entries of each row, then re-normalize the rows."""
    m = m.tocsr()
    m.sort_indices()
    data, indices, indptr = [], [], [0]
    for i in range(m.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        d, j = m.data[lo:hi], m.indices[lo:hi]
        if len(d) > keep:
            top = np.sort(np.argpartition(-d, keep)[:keep])
            d, j = d[top], j[top]
        data.append(d)
        indices.append(j)
        indptr.append(indptr[-1] + len(d))
    pruned = sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=m.shape, dtype=np.float32
    )
    return sp.csr_matrix(l2_normalize(pruned), dtype=np.float32)


def _ovr_proba(x: sp.csr_matrix, coef_t: sp.csr_matrix, intercept: np.ndarray) -> np.ndarray:
    """One-vs-rest log-loss probabilities normalized over the classes (what SGDClassifier.predict_proba returns)."""
    return _ovr_from_scores(np.asarray((x @ coef_t).todense(), dtype=np.float64) + intercept)


def _ovr_from_scores(z: np.ndarray) -> np.ndarray:
    return _renormalize(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))


def _prune_abs(m: np.ndarray, keep: int) -> sp.csr_matrix:
    """Sparse copy of ``m`` with only the ``keep`` largest-magnitude entries of each row."""
    if m.shape[1] > keep:
        m = m.copy()
        for row in m:
            row[np.argpartition(-np.abs(row), keep)[keep:]] = 0.0
    return sp.csr_matrix(m, dtype=np.float32)


def _kind(doc: Doc, no_tramite: str, unknown: str) -> str:
    if doc.tramite != no_tramite:
        return KIND_TRAMITE
    return KIND_AGENCY if doc.agency != unknown else KIND_UNKNOWN


class TriageModel:
    """Fitted state: the featurizer, the centroids, the gate and the agency classifier, plus their label lists."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        self.cfg = cfg or ModelConfig()
        self.featurizer = Featurizer(self.cfg.features)
        self.tramites: list[TramiteInfo] = []
        self.agencies: list[str] = []
        self.agency_organismo: dict[str, str] = {}
        self.tramite_centroids: sp.csr_matrix | None = None
        self.agency_centroids: sp.csr_matrix | None = None
        self.gate: LogisticRegression | None = None
        self.agency_coef: sp.csr_matrix | None = None  # (n_agencies, n_features), pruned
        self.agency_intercept: np.ndarray | None = None
        self.organismos: list[str] = []
        self.organismo_centroids: sp.csr_matrix | None = None
        self.organismo_coef: sp.csr_matrix | None = None  # (n_organismos, n_features), pruned
        self.organismo_intercept: np.ndarray | None = None
        self._tramite_to_agency: np.ndarray | None = None
        self._feature_names: np.ndarray | None = None
        self.fit_seconds: float = 0.0

    # -- training --------------------------------------------------------------------------------------------------
    def fit(
        self,
        docs: list[Doc],
        tramites: list[TramiteInfo],
        agency_organismo: dict[str, str],
        no_tramite: str,
        unknown: str,
    ) -> TriageModel:
        started = time.perf_counter()
        texts = [d.text for d in docs]
        x = self.featurizer.fit_transform(texts)
        weights = np.array([d.weight for d in docs], dtype=np.float64)
        self.tramites = sorted(tramites, key=lambda t: t.key)
        agencies = {d.agency for d in docs if d.agency != unknown} | {t.agency for t in self.tramites}
        self.agencies = sorted(agencies)
        self.agency_organismo = {a: agency_organismo.get(a, a) for a in self.agencies}
        keys = [t.key for t in self.tramites]
        self.tramite_centroids = _centroids([d.tramite for d in docs], weights, x, keys, self.cfg.centroid_terms)
        agency_labels = [d.agency for d in docs]
        self.agency_centroids = _centroids(agency_labels, weights, x, self.agencies, self.cfg.centroid_terms)
        kinds = np.array([_kind(d, no_tramite, unknown) for d in docs])
        in_gate = np.array([d.gate for d in docs])
        balance = "balanced" if self.cfg.gate_balanced else None
        self.gate = LogisticRegression(C=self.cfg.gate_c, max_iter=200, class_weight=balance, solver="newton-cg")
        is_label = np.array([d.source in LABEL_SOURCES for d in docs])
        gate_w = weights * np.where(is_label, self.cfg.gate_label_weight, 1.0)
        self.gate.fit(x[in_gate], kinds[in_gate], sample_weight=gate_w[in_gate])
        clf_w = weights * np.where(is_label, self.cfg.clf_label_weight, 1.0)
        self.agency_coef, self.agency_intercept = None, None
        if self.cfg.agency_sgd_weight > 0:
            agency_y = [lbl if lbl != unknown else "" for lbl in agency_labels]
            cfg = self.cfg
            self.agency_coef, self.agency_intercept = self._fit_linear(
                x, agency_y, clf_w, self.agencies, cfg.sgd_alpha, cfg.sgd_epochs, cfg.agency_clf_words_only
            )
        self.organismos = sorted(set(self.agency_organismo.values()))
        org_labels = [self.agency_organismo.get(a, "") for a in agency_labels]
        self.organismo_centroids = _centroids(org_labels, weights, x, self.organismos, self.cfg.centroid_terms)
        self.organismo_coef, self.organismo_intercept = None, None
        if self.cfg.organismo_clf_weight > 0:
            self.organismo_coef, self.organismo_intercept = self._fit_linear(
                x,
                org_labels,
                clf_w,
                self.organismos,
                self.cfg.organismo_clf_alpha,
                self.cfg.organismo_clf_epochs,
                self.cfg.organismo_clf_words_only,
            )
        self._prepare()
        self.fit_seconds = time.perf_counter() - started
        return self

    def _fit_linear(
        self,
        x: sp.csr_matrix,
        labels: list[str],
        weights: np.ndarray,
        classes: list[str],
        alpha: float,
        epochs: int,
        words_only: bool,
    ) -> tuple[sp.csr_matrix | None, np.ndarray | None]:
        """One-vs-rest log-loss SGD over ``classes`` (texts labelled "" are left out): its coefficients, pruned to the
        ``clf_terms`` largest per class and laid out in the order of ``classes``, and its intercepts."""
        y = np.array(labels, dtype=object)
        mask = y != ""
        if len(set(y[mask])) < 3:
            return None, None
        width = len(self.featurizer.word.vocabulary_) if words_only else x.shape[1]
        clf = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None, random_state=self.cfg.seed)
        clf.fit(x[mask][:, :width], y[mask], sample_weight=weights[mask])
        index = {str(c): i for i, c in enumerate(clf.classes_)}
        coef = np.zeros((len(classes), x.shape[1]), dtype=np.float32)
        intercept = np.full(len(classes), -30.0)  # a class with no training text: never predicted
        for i, c in enumerate(classes):
            j = index.get(c)
            if j is not None:
                coef[i, :width] = clf.coef_[j]
                intercept[i] = clf.intercept_[j]
        return _prune_abs(coef, self.cfg.clf_terms), intercept

    def _prepare(self) -> None:
        """Derived, non-persisted state (fast-path layouts and lookups)."""
        index = {a: i for i, a in enumerate(self.agencies)}
        self._tramite_to_agency = np.array([index[t.agency] for t in self.tramites], dtype=np.int64)
        ones = np.ones(len(self.tramites), dtype=np.float64)
        shape = (len(self.tramites), len(self.agencies))
        rows = np.arange(len(self.tramites))
        self._tramite_agency_matrix = sp.csr_matrix((ones, (rows, self._tramite_to_agency)), shape=shape)
        if self.agency_coef is not None:
            self._agency_coef_t = sp.csr_matrix(self.agency_coef.T)
        assert self.tramite_centroids is not None and self.agency_centroids is not None and self.gate is not None
        if self.organismo_centroids is not None:
            org_index = {o: i for i, o in enumerate(self.organismos)}
            self._agency_to_organismo = np.array([org_index[self.agency_organismo[a]] for a in self.agencies])
            self._tramite_to_organismo = self._agency_to_organismo[self._tramite_to_agency]
            # The top-level bodies are few (~100): their centroids and classifier coefficients as one dense
            # (n_features, 2·n_organismos) block multiply ~4× faster than sparse × sparse.
            blocks = [self.organismo_centroids]
            if self.organismo_coef is not None:
                blocks.append(self.organismo_coef)
            self._organismo_dense_t = np.asarray(sp.vstack(blocks).T.toarray(), dtype=np.float32, order="C")
        self._gate_coef_t = np.ascontiguousarray(self.gate.coef_.T, dtype=np.float64)
        self._gate_intercept = np.asarray(self.gate.intercept_, dtype=np.float64)
        self._tramite_centroids_t = sp.csr_matrix(self.tramite_centroids.T)
        self._agency_centroids_t = sp.csr_matrix(self.agency_centroids.T)
        self._feature_names = None
        self._prepare_mentions()

    def _prepare_mentions(self) -> None:
        from classifier.agencies import default_directory, mention_phrases

        org_index = {o: i for i, o in enumerate(self.organismos)}
        phrases = {k: org_index[o] for k, o in mention_phrases(default_directory()).items() if o in org_index}
        self._mention_phrases = phrases
        self._mention_len = max((len(k) for k in phrases), default=1)
        self._mention_first = frozenset(k[0] for k in phrases)

    def mentions(self, texts: Sequence[str], normalized: bool = False) -> np.ndarray:
        """(n, n_organismos) 1.0 where the text names the top-level body (when it names at most ``mention_max``);
        ``normalized``: the texts are already :func:`basic_normalize`-d."""
        m = np.zeros((len(texts), len(self.organismos)), dtype=np.float64)
        if not self.cfg.mention_boost or not self._mention_phrases:
            return m
        from classifier.normalize import basic_normalize

        for i, text in enumerate(texts):
            tokens = (text if normalized else basic_normalize(text)).split()
            found: set[int] = set()
            first = self._mention_first
            for start in range(len(tokens)):
                if tokens[start] not in first:
                    continue
                for n in range(min(self._mention_len, len(tokens) - start), 0, -1):
                    hit = self._mention_phrases.get(tuple(tokens[start : start + n]))
                    if hit is not None:
                        found.add(hit)
                        break
            if 0 < len(found) <= self.cfg.mention_max:
                m[i, list(found)] = 1.0
        return m

    # -- prediction ------------------------------------------------------------------------------------------------
    def vectorize(self, texts: list[str]) -> sp.csr_matrix:
        return self.featurizer.transform(texts)

    def vectorize_with_base(self, texts: list[str]) -> tuple[sp.csr_matrix, list[str]]:
        """The feature rows and the texts normalized without the lexicon (what :meth:`score` reads mentions from)."""
        return self.featurizer.transform_with_base(texts)

    def score(self, x: sp.csr_matrix, texts: Sequence[str] | None = None, normalized: bool = False) -> Scores:
        """Scores of vectorized messages; with their ``texts`` (``normalized``: as :meth:`vectorize_with_base`
        returns them), bodies the messages name are boosted."""
        assert self.gate is not None and self._tramite_to_agency is not None
        # Multinomial logistic regression: softmax of the linear scores (= predict_proba, without sklearn's overhead).
        gate = _softmax(np.asarray(x @ self._gate_coef_t) + self._gate_intercept, 1.0)
        col = {c: i for i, c in enumerate(self.gate.classes_)}
        named = self.mentions(texts, normalized) if texts is not None and self.organismos else None
        if named is not None:
            any_named = named.any(axis=1)
            gate[any_named, col[KIND_UNKNOWN]] *= self.cfg.mention_unknown
            gate = _renormalize(gate)
        g_t, g_a, g_u = (gate[:, col[k]] for k in (KIND_TRAMITE, KIND_AGENCY, KIND_UNKNOWN))
        p_t = _softmax(np.asarray((x @ self._tramite_centroids_t).todense()), self.cfg.tramite_temperature)
        p_org = self._organismo_probs(x)
        if p_org is not None and named is not None:
            p_org = _renormalize(p_org * (1.0 + self.cfg.mention_boost * named))
        if p_org is not None and self.cfg.organismo_weight_tramite > 0:
            p_t = _renormalize(p_t * p_org[:, self._tramite_to_organismo] ** self.cfg.organismo_weight_tramite)
        p_a = self._agency_given_text(x)
        from_tramite = np.asarray(self._tramite_agency_matrix.T @ p_t.T).T
        mix = self.cfg.agency_from_tramite
        agency = g_t[:, None] * (mix * from_tramite + (1 - mix) * p_a) + g_a[:, None] * p_a
        if p_org is not None and self.cfg.organismo_weight > 0:
            mass = agency.sum(axis=1, keepdims=True)
            agency = _renormalize(agency * p_org[:, self._agency_to_organismo] ** self.cfg.organismo_weight) * mass
        if named is not None and self.organismos:
            mass = agency.sum(axis=1, keepdims=True)
            boost = 1.0 + self.cfg.mention_boost * named[:, self._agency_to_organismo]
            agency = _renormalize(agency * boost) * mass
        tramite = g_t[:, None] * p_t
        if self.cfg.agency_follows_tramite:
            agency = self._lead_with_tramite_agency(tramite, 1 - g_t, agency, g_u)
        return Scores(tramite=tramite, no_tramite=1 - g_t, agency=agency, unknown=g_u)

    def _lead_with_tramite_agency(
        self, tramite: np.ndarray, no_tramite: np.ndarray, agency: np.ndarray, unknown: np.ndarray
    ) -> np.ndarray:
        """Where a trámite is the answer, raise the probability of the agency that runs it to just above the best
        other answer (an agency or unknown): the two answers never disagree, and the message goes where its trámite
        is handled. The mix above can rank another agency first when the message's words lean to a sibling body (a
        gas installer's registration that mentions UTU); measured: body top-1 +0.9 to +1.4 points."""
        assert self._tramite_to_agency is not None
        if not tramite.shape[1]:
            return agency
        top = tramite.argmax(axis=1)
        keyed = np.flatnonzero(tramite[np.arange(len(top)), top] >= no_tramite)
        if not len(keyed):
            return agency
        cols = self._tramite_to_agency[top[keyed]]
        best = np.maximum(agency[keyed].max(axis=1), unknown[keyed])
        agency = agency.copy()
        agency[keyed, cols] = np.maximum(agency[keyed, cols], np.nextafter(best, np.inf))
        return agency

    def _organismo_probs(self, x: sp.csr_matrix) -> np.ndarray | None:
        """P(top-level body | text) from the bodies' centroids (all their units', trámites' and profiles' texts)."""
        if self.organismo_centroids is None or not (self.cfg.organismo_weight or self.cfg.organismo_weight_tramite):
            return None
        n = len(self.organismos)
        z = np.asarray(x @ self._organismo_dense_t, dtype=np.float64)
        p = _softmax(z[:, :n], self.cfg.organismo_temperature)
        w = self.cfg.organismo_clf_weight
        if self.organismo_coef is None or self.organismo_intercept is None or w <= 0:
            return p
        return (1 - w) * p + w * _ovr_from_scores(z[:, n:] + self.organismo_intercept)

    def _agency_given_text(self, x: sp.csr_matrix) -> np.ndarray:
        sim = _softmax(np.asarray((x @ self._agency_centroids_t).todense()), self.cfg.agency_temperature)
        w = self.cfg.agency_sgd_weight
        if self.agency_coef is None or self.agency_intercept is None or w <= 0:
            return sim
        return (1 - w) * sim + w * _ovr_proba(x, self._agency_coef_t, self.agency_intercept)

    # -- explanation -----------------------------------------------------------------------------------------------
    def feature_names(self) -> np.ndarray:
        if self._feature_names is None:
            self._feature_names = self.featurizer.feature_names()
        return self._feature_names

    def explain(
        self, x_row: sp.csr_matrix, text: str, tramite_index: int | None, agency_index: int | None, n: int = 6
    ) -> list[str]:
        """Words of the message that contributed most to the chosen trámite (or agency) centroid."""
        if tramite_index is not None and self.tramite_centroids is not None:
            centroid = self.tramite_centroids[tramite_index]
        elif agency_index is not None and self.agency_centroids is not None:
            centroid = self.agency_centroids[agency_index]
        else:
            return []
        contrib = x_row.multiply(centroid).tocoo()
        names = self.feature_names()
        n_words = len(self.featurizer.word.vocabulary_)
        stems: dict[str, float] = {}
        for j, v in zip(contrib.col, contrib.data, strict=True):
            if j < n_words:
                for part in str(names[j]).split():
                    stems[part] = stems.get(part, 0.0) + float(v)
        ranked = sorted(stems, key=lambda s: -stems[s])
        return _surface_words(text, ranked)[:n]


def _surface_words(text: str, stems_ranked: list[str]) -> list[str]:
    """Map stems back to the words the citizen wrote (first occurrence), best first."""
    by_stem: dict[str, str] = {}
    for token in normalize(text).split():
        by_stem.setdefault(stem(token), token)
    return [by_stem[s] for s in stems_ranked if s in by_stem]
