"""CLI: ``inbox catalog import``, ``inbox classify``, ``inbox classifier train|eval|rollback|list``.

``register(subparsers, runtime_factory)`` adds the commands to the ``inbox`` argparse CLI. Each handler is a plain
function ``handler(args, out) -> int`` reading ``args.data_dir``; ``args.func`` is set to it. Labelled tickets for
``train`` (and for ``eval`` and ``classify --batch``, which never score a message with a model trained on it) come
from the handler's ``examples`` argument or from ``runtime_factory(args)``: any object with a
``labelled_examples()`` method returning an iterable of LabelledExample (or a coroutine of one), or None for none.

``python -m classifier --data-dir DIR ...`` runs the same commands stand-alone.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from classifier import api, registry
from classifier.catalog import CatalogError, import_catalog
from classifier.evaluate import MessageRecord, evaluate, format_report, read_jsonl
from classifier.types import LabelledExample, Prediction

RuntimeFactory = Callable[[argparse.Namespace], Any]


def _dump(obj: Any, out: TextIO | None) -> None:
    (out or sys.stdout).write(json.dumps(obj, ensure_ascii=False) + "\n")


def batch_line(record_id: str, pred: Prediction) -> dict[str, Any]:
    """One line of ``inbox classify --batch`` output."""
    return {
        "id": record_id,
        "tramite": [{"key": c.key, "p": c.p} for c in pred.tramite[:3]],
        "agency": [{"name": c.name, "organismo": c.organismo, "p": c.p} for c in pred.agency[:3]],
        "abstain": {"tramite": pred.abstain_tramite, "agency": pred.abstain_agency},
    }


# -- handlers ------------------------------------------------------------------------------------------------------


def cmd_catalog_import(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        report = import_catalog(args.data_dir, args.file)
    except (CatalogError, OSError) as exc:
        print(f"catalog import failed: {exc}", file=sys.stderr)
        return 1
    _dump(report.to_dict(), out)
    return 0


def _labelled(args: argparse.Namespace, examples: Iterable[LabelledExample] | None) -> list[LabelledExample]:
    """The agents' labels: ``examples`` when the caller read them, else from ``args.runtime_factory``."""
    if examples is not None:
        return list(examples)
    factory: RuntimeFactory | None = getattr(args, "runtime_factory", None)
    return labelled_from_runtime(factory(args) if factory else None)


def _scoring_model(
    args: argparse.Namespace, records: list[MessageRecord], examples: Iterable[LabelledExample] | None, command: str
) -> api.Classifier:
    """The model to score a file's messages with: one never trained on them (see api.scoring_model)."""
    labelled = _labelled(args, examples)
    clf, left_out = api.scoring_model(args.data_dir, [(r.subject, r.text) for r in records], labelled)
    if left_out:
        print(
            f"{command}: {left_out} of these messages are among the model's training messages (seed messages or "
            f"labelled tickets); they are scored by a model trained without them ({clf.version})",
            file=sys.stderr,
        )
    return clf


def cmd_classify(
    args: argparse.Namespace, out: TextIO | None = None, examples: Iterable[LabelledExample] | None = None
) -> int:
    if args.batch:
        records = list(read_jsonl(args.batch))
        clf = _scoring_model(args, records, examples, "classify")
        size = 512
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            preds = clf.predict_batch([(r.subject, r.text) for r in chunk], k=3)
            for rec, pred in zip(chunk, preds, strict=True):
                _dump(batch_line(rec.id, pred), out)
        return 0
    if not args.text:
        print("classify: give a text or --batch FILE.jsonl", file=sys.stderr)
        return 2
    pred = api.load_active(args.data_dir).predict(args.subject, args.text, k=args.k)
    _dump(pred.to_dict(), out)
    return 0


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def labelled_from_runtime(runtime: Any) -> list[LabelledExample]:
    if runtime is None:
        return []
    source = getattr(runtime, "labelled_examples", None)
    if source is None:
        return []
    result = source() if callable(source) else source
    if inspect.isawaitable(result):
        result = asyncio.run(_resolve(result))
    return list(result or [])


def cmd_train(
    args: argparse.Namespace,
    out: TextIO | None = None,
    examples: Iterable[LabelledExample] | None = None,
) -> int:
    info = api.train(args.data_dir, _labelled(args, examples))
    _dump(info.to_dict(), out)
    return 0


def cmd_eval(
    args: argparse.Namespace, out: TextIO | None = None, examples: Iterable[LabelledExample] | None = None
) -> int:
    records = [r for r in read_jsonl(args.file) if r.has_labels]
    if not records:
        print(f"eval: no labelled message in {args.file}", file=sys.stderr)
        return 1
    clf = _scoring_model(args, records, examples, "eval")
    preds = clf.predict_batch([(r.subject, r.text) for r in records], k=3)
    result = evaluate(records, preds, clf.organismo_of)
    result["model_version"] = clf.version
    if args.json:
        _dump({k: v for k, v in result.items() if k != "confusions"}, out)
    else:
        (out or sys.stdout).write(f"model {clf.version}\n{format_report(result)}\n")
    return 0


def cmd_rollback(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        version = api.rollback(args.data_dir)
    except registry.RegistryError as exc:
        print(f"rollback: {exc}", file=sys.stderr)
        return 1
    _dump({"active": version}, out)
    return 0


def cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    for info in api.list_models(args.data_dir):
        _dump(
            {
                "version": info.version,
                "created": info.created,
                "active": info.active,
                "labelled_tickets": info.training.get("labelled_tickets"),
                "catalog_active": info.training.get("catalog_active"),
                "metrics": {k: info.metrics.get(k) for k in ("n", "tramite", "agency") if k in info.metrics},
            },
            out,
        )
    return 0


# -- wiring --------------------------------------------------------------------------------------------------------


Handler = Callable[..., int]


def register(
    sub: argparse._SubParsersAction,
    runtime_factory: RuntimeFactory | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
    wrap: Callable[[Handler], Callable[[argparse.Namespace], int]] | None = None,
) -> None:
    """Add ``catalog``, ``classify`` and ``classifier`` commands to an argparse sub-parser set.

    ``parents`` are added to every command (e.g. the ``inbox`` CLI's common options); ``wrap(handler)`` may replace
    each handler (e.g. to open the runtime and set ``args.data_dir`` first)."""
    parents = list(parents)

    def func(handler: Handler) -> Callable[..., int]:
        return wrap(handler) if wrap else handler

    catalog = sub.add_parser("catalog", help="the trámites catalogue", parents=parents)
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    imp = catalog_sub.add_parser("import", help="import (or re-import) the catalogue CSV", parents=parents)
    imp.add_argument("file")
    imp.set_defaults(func=func(cmd_catalog_import))

    classify = sub.add_parser("classify", help="classify a text, or a JSONL file with --batch", parents=parents)
    classify.add_argument("text", nargs="?")
    classify.add_argument("--subject")
    classify.add_argument("--batch", metavar="FILE.jsonl")
    classify.add_argument("-k", type=int, default=3)
    classify.set_defaults(func=func(cmd_classify), runtime_factory=runtime_factory)

    clf = sub.add_parser("classifier", help="train, evaluate and manage classifier models", parents=parents)
    clf_sub = clf.add_subparsers(dest="classifier_command", required=True)
    train_help = "train a new model from the catalogue and labelled tickets"
    train = clf_sub.add_parser("train", help=train_help, parents=parents)
    train.set_defaults(func=func(cmd_train), runtime_factory=runtime_factory)
    ev = clf_sub.add_parser(
        "eval", help="evaluate the active model on labelled messages (never trains on them)", parents=parents
    )
    ev.add_argument("file")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=func(cmd_eval), runtime_factory=runtime_factory)
    rollback = clf_sub.add_parser("rollback", help="re-activate the previous model", parents=parents)
    rollback.set_defaults(func=func(cmd_rollback))
    clf_sub.add_parser("list", help="list the saved models", parents=parents).set_defaults(func=func(cmd_list))


def build_parser(runtime_factory: RuntimeFactory | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m classifier")
    parser.add_argument("--data-dir", default="data", help="data directory (default: ./data)")
    register(parser.add_subparsers(dest="command", required=True), runtime_factory)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
