"""5-fold cross-validation of the classifier on labelled messages (default: shared/data/messages/dev.jsonl).

For each fold the model is trained on the catalogue, the agency profiles and the other four folds, and scored on the
held-out fold; the same folds are used for a plain baseline (word + character TF-IDF and a linear SVM trained on the
catalogue rows and the other folds, as issue #4 defines it), for the same baseline given our citizen phrasings of the
trámites and of the bodies' services too (``baseline_phrasings``: how much of our figure is the data, how much the
model), and for the model with no labelled message at all (cold start: catalogue, phrasings and profiles only).

    .venv/bin/python bench/classify_cv.py [FILE.jsonl] [--folds 5] [--seed 0] [--no-baseline] [--json]

``--seed`` reshuffles the folds (check that a change helps on other splits too, not only on the default one);
``--no-baseline`` skips the baseline rows (faster, for iterating).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.agencies import default_directory  # noqa: E402
from classifier.api import Classifier, TrainConfig, fit_model  # noqa: E402
from classifier.catalog import Catalog, load_sample  # noqa: E402
from classifier.corpus import CorpusConfig, agency_phrasings, tramite_phrasings  # noqa: E402
from classifier.evaluate import MessageRecord, Outcome, output_metrics, read_jsonl  # noqa: E402
from classifier.types import ModelInfo  # noqa: E402

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "messages" / "dev.jsonl"
NONE = "∅"


def folds_of(n: int, k: int, seed: int = 0) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fold = [0] * n
    for pos, i in enumerate(order):
        fold[i] = pos % k
    return fold


def ours(catalog: Catalog, train: list[MessageRecord], test: list[MessageRecord]) -> dict[str, list[Outcome]]:
    directory = default_directory()
    # The shipped seed messages are the development file itself: off, so a fold is never trained on.
    cfg = TrainConfig(corpus=CorpusConfig(seed_messages=False))
    model, _ = fit_model(catalog, directory, [r.example() for r in train], cfg)
    clf = Classifier(model, ModelInfo(version="cv", created=""))
    preds = clf.predict_batch([(r.subject, r.text) for r in test], k=3)
    from classifier.evaluate import outcomes_for

    return outcomes_for(test, preds, clf.organismo_of)


class Baseline:
    """Word (1-2) + char_wb (2-5) TF-IDF, LinearSVC, trained on catalogue rows and labelled messages, and with
    ``phrasings`` on the citizen phrasings of the trámites and of the bodies' services (data/*_phrasings.toml) too."""

    def __init__(self, phrasings: bool = False) -> None:
        self.phrasings = tramite_phrasings() if phrasings else {}
        self.agency_phrasings = agency_phrasings() if phrasings else {}
        self.word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)

    def _x(self, texts: list[str], fit: bool = False) -> sp.csr_matrix:
        if fit:
            return sp.hstack([self.word.fit_transform(texts), self.char.fit_transform(texts)], format="csr")
        return sp.hstack([self.word.transform(texts), self.char.transform(texts)], format="csr")

    def run(self, catalog: Catalog, train: list[MessageRecord], test: list[MessageRecord]) -> dict[str, list[Outcome]]:
        directory = default_directory()
        rows = catalog.active()
        phrased = [(t, p) for t in rows for p in self.phrasings.get(t.key, ())]
        about_bodies = [(directory.canonical(a) or a, p) for a, ps in self.agency_phrasings.items() for p in ps]
        texts = [f"{t.name}. {t.agency}. {t.description}. {t.requirements}" for t in rows]
        texts += [p for _, p in phrased] + [p for _, p in about_bodies]
        texts += [f"{r.subject or ''}. {r.text}" for r in train]
        y_t = [t.key for t in rows] + [t.key for t, _ in phrased] + [NONE] * len(about_bodies)
        y_t += [r.tramite or NONE for r in train]
        y_a = [t.agency for t in rows] + [t.agency for t, _ in phrased] + [a for a, _ in about_bodies]
        y_a += [r.agency or NONE for r in train]
        x = self._x(texts, fit=True)
        xt = self._x([f"{r.subject or ''}. {r.text}" for r in test])
        out: dict[str, list[Outcome]] = {"tramite": [], "agency": [], "organismo": []}
        for name, y in (("tramite", y_t), ("agency", y_a)):
            svm = LinearSVC(C=1.0).fit(x, y)
            scores = svm.decision_function(xt)
            for rec, row in zip(test, scores, strict=True):
                top = [str(svm.classes_[j]) for j in np.argsort(-row)[:3]]
                ranked: list[str | None] = [None if c == NONE else c for c in top]
                gold = rec.tramite if name == "tramite" else rec.agency
                out[name].append(Outcome(gold, ranked, float(row.max()), False))
                if name == "agency":
                    orgs: list[str | None] = []
                    for a in ranked:
                        o = directory.organismo_of(a)
                        if o not in orgs:
                            orgs.append(o)
                    out["organismo"].append(Outcome(directory.organismo_of(rec.agency), orgs, float(row.max()), False))
        return out


def merge(acc: dict[str, list[Outcome]], part: dict[str, list[Outcome]]) -> None:
    for k, v in part.items():
        acc.setdefault(k, []).extend(v)


def summarize(outcomes: dict[str, list[Outcome]]) -> dict[str, Any]:
    result: dict[str, Any] = {name: output_metrics(outs) for name, outs in outcomes.items()}
    keyed = [o for o in outcomes["tramite"] if o.gold is not None]
    result["tramite_keyed"] = output_metrics(keyed)
    return result


def cross_validate(
    records: list[MessageRecord], k: int, catalog: Catalog, seed: int = 0, baseline: bool = True
) -> dict[str, Any]:
    fold = folds_of(len(records), k, seed)
    acc_ours: dict[str, list[Outcome]] = {}
    acc_base: dict[str, list[Outcome]] = {}
    acc_base_phrasings: dict[str, list[Outcome]] = {}
    started = time.perf_counter()
    for f in range(k):
        train = [r for r, g in zip(records, fold, strict=True) if g != f]
        test = [r for r, g in zip(records, fold, strict=True) if g == f]
        merge(acc_ours, ours(catalog, train, test))
        if baseline:
            merge(acc_base, Baseline().run(catalog, train, test))
            merge(acc_base_phrasings, Baseline(phrasings=True).run(catalog, train, test))
    cv_seconds = time.perf_counter() - started
    cold = ours(catalog, [], records)
    result: dict[str, Any] = {
        "n": len(records),
        "folds": k,
        "seed": seed,
        "ours": summarize(acc_ours),
        "cold_start": summarize(cold),
        "cv_seconds": round(cv_seconds, 1),
    }
    if baseline:
        result["baseline"] = summarize(acc_base)
        result["baseline_phrasings"] = summarize(acc_base_phrasings)
        result["cold_start_baseline"] = summarize(Baseline().run(catalog, [], records))
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['n']} messages, {result['folds']}-fold CV, seed {result['seed']} ({result['cv_seconds']} s)")
    header = f"{'':22s}{'trámite t1':>11s}{'t3':>7s}{'keyed t1':>10s}{'t3':>7s}{'agency t1':>10s}{'t3':>7s}"
    header += f"{'body t1':>9s}{'t3':>7s}{'auto@95 T':>11s}{'A':>6s}"
    print(header)
    for name in ("ours", "baseline", "baseline_phrasings", "cold_start", "cold_start_baseline"):
        if name not in result:
            continue
        m = result[name]
        print(
            f"{name:22s}{m['tramite']['top1']:11.3f}{m['tramite']['top3']:7.3f}"
            f"{m['tramite_keyed']['top1']:10.3f}{m['tramite_keyed']['top3']:7.3f}"
            f"{m['agency']['top1']:10.3f}{m['agency']['top3']:7.3f}"
            f"{m['organismo']['top1']:9.3f}{m['organismo']['top3']:7.3f}"
            f"{m['tramite']['auto_share_at_95']:11.3f}{m['organismo']['auto_share_at_95']:6.3f}"
        )
    print("(baselines have no calibrated confidence: their auto@95 uses the raw SVM margin)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="shuffle of the folds (0: the reference split)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline rows")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not Path(args.file).exists():
        print(f"no labelled messages at {args.file} (give a file in the format of shared/data/messages/dev.jsonl)")
        return 2
    records = [r for r in read_jsonl(args.file) if r.has_labels]
    result = cross_validate(records, args.folds, load_sample(), args.seed, not args.no_baseline)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
