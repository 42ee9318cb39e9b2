"""Evaluation metrics on labelled messages (format of dev.jsonl): top-1/top-3, macro-F1, auto-tag share/precision."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import f1_score

from classifier.types import LabelledExample, Prediction

NONE_LABEL = "∅"


@dataclass(frozen=True)
class MessageRecord:
    id: str
    subject: str | None
    text: str
    tramite: str | None
    agency: str | None
    has_labels: bool

    def example(self) -> LabelledExample:
        return LabelledExample(self.text, self.tramite, self.agency, self.subject)


def read_jsonl(path: Path | str) -> Iterator[MessageRecord]:
    """Messages in the dev.jsonl format; labels are optional (``tramite``/``agency`` keys)."""
    with open(path, encoding="utf-8") as fh:
        yield from parse_jsonl(fh)


def parse_jsonl(lines: Iterable[str]) -> Iterator[MessageRecord]:
    """:func:`read_jsonl` of lines already read."""
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        obj = json.loads(line)
        yield MessageRecord(
            id=str(obj.get("id", n)),
            subject=obj.get("subject"),
            text=str(obj.get("text") or ""),
            tramite=obj.get("tramite") or None,
            agency=obj.get("agency") or None,
            has_labels="tramite" in obj or "agency" in obj,
        )


@dataclass(frozen=True)
class Outcome:
    """One output (trámite or agency) of one message: gold label, ranked labels, confidence, abstained."""

    gold: str | None
    ranked: list[str | None]
    p: float
    abstain: bool


def _label(x: str | None) -> str:
    return NONE_LABEL if x is None else x


def output_metrics(outcomes: list[Outcome]) -> dict[str, float]:
    n = len(outcomes)
    if n == 0:
        return {"top1": 0.0, "top3": 0.0, "macro_f1": 0.0, "auto_share": 0.0, "auto_precision": 0.0}
    top1 = sum(o.ranked[:1] == [o.gold] for o in outcomes) / n
    top3 = sum(o.gold in o.ranked[:3] for o in outcomes) / n
    gold = [_label(o.gold) for o in outcomes]
    pred = [_label(o.ranked[0] if o.ranked else None) for o in outcomes]
    macro = float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0))
    auto = [o for o in outcomes if not o.abstain]
    precision = sum(o.ranked[:1] == [o.gold] for o in auto) / len(auto) if auto else 0.0
    return {
        "top1": round(top1, 4),
        "top3": round(top3, 4),
        "macro_f1": round(macro, 4),
        "auto_share": round(len(auto) / n, 4),
        "auto_precision": round(precision, 4),
        "auto_share_at_95": round(share_at_precision(outcomes, 0.95), 4),
    }


def share_at_precision(outcomes: list[Outcome], target: float) -> float:
    """Largest share of messages that can be tagged automatically (most confident first) at ``target`` precision."""
    ranked = sorted(outcomes, key=lambda o: -o.p)
    best = correct = 0
    for i, o in enumerate(ranked, 1):
        correct += o.ranked[:1] == [o.gold]
        if correct / i >= target:
            best = i
    return best / len(outcomes) if outcomes else 0.0


def worst_confusions(outcomes: list[Outcome], n: int = 10) -> list[tuple[str, str, int]]:
    pairs = Counter((_label(o.gold), _label(o.ranked[0] if o.ranked else None)) for o in outcomes)
    errors = [(g, p, c) for (g, p), c in pairs.items() if g != p]
    return sorted(errors, key=lambda e: (-e[2], e[0], e[1]))[:n]


def outcomes_for(
    records: list[MessageRecord], predictions: list[Prediction], organismo_of: Callable[[str | None], str | None]
) -> dict[str, list[Outcome]]:
    tram, agency, org = [], [], []
    for rec, pred in zip(records, predictions, strict=True):
        tram.append(Outcome(rec.tramite, [c.key for c in pred.tramite], pred.tramite[0].p, pred.abstain_tramite))
        names = [c.name for c in pred.agency]
        agency.append(Outcome(rec.agency, names, pred.agency[0].p, pred.abstain_agency))
        orgs = _dedupe([c.organismo for c in pred.agency])
        org.append(Outcome(organismo_of(rec.agency), orgs, pred.agency[0].p, pred.abstain_agency))
    return {"tramite": tram, "agency": agency, "organismo": org}


def _dedupe(items: Iterable[str | None]) -> list[str | None]:
    out: list[str | None] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def evaluate(
    records: list[MessageRecord], predictions: list[Prediction], organismo_of: Callable[[str | None], str | None]
) -> dict[str, Any]:
    outcomes = outcomes_for(records, predictions, organismo_of)
    result: dict[str, Any] = {"n": len(records)}
    for name, outs in outcomes.items():
        result[name] = output_metrics(outs)
    result["confusions"] = {
        name: [{"gold": g, "pred": p, "count": c} for g, p, c in worst_confusions(outs)]
        for name, outs in outcomes.items()
    }
    return result


def format_report(result: dict[str, Any]) -> str:
    lines = [f"messages: {result['n']}"]
    for name in ("tramite", "agency", "organismo"):
        m = result[name]
        lines.append(
            f"{name:10s} top1 {m['top1']:.3f}  top3 {m['top3']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
            f"auto {m['auto_share']:.3f} @ precision {m['auto_precision']:.3f}  "
            f"(share at 95% precision {m['auto_share_at_95']:.3f})"
        )
    for name in ("tramite", "agency"):
        lines.append(f"worst confusions ({name}):")
        for c in result["confusions"][name]:
            lines.append(f"  {c['count']:3d}  {c['gold'][:70]}  →  {c['pred'][:70]}")
    return "\n".join(lines)
