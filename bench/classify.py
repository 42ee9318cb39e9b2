"""Classifier benchmark: batched throughput, single-message latency, training on a full-size catalogue.

    .venv/bin/python bench/classify.py [--messages FILE.jsonl] [--rows 3500] [--json]

1. Batched classification (``Classifier.predict_batch``, vectorizing included), messages/s. Target ≥ 2,000.
2. Single-message latency (``Classifier.predict`` with the explanation terms, as the triage worker calls it), p50/p99.
   Target p99 ≤ 5 ms.
3. Training on a generated catalogue in the full published layout (31 columns, HTML, embedded newlines, duplicate
   ids; built from the sample): import + train in a fresh process; wall time and peak RSS from getrusage.
   Target < 2 minutes and < 4 GB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier import api  # noqa: E402
from classifier.catalog import import_catalog, load_sample  # noqa: E402
from classifier.corpus import unknown_texts  # noqa: E402
from classifier.evaluate import read_jsonl  # noqa: E402
from classifier.synthetic import full_layout_csv  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "messages" / "dev.jsonl"


def load_messages(path: Path | None) -> list[tuple[str | None, str]]:
    if path and path.exists():
        return [(r.subject, r.text) for r in read_jsonl(path)]
    # No dev file (fresh clone without shared/): catalogue names and unknown texts as messages.
    names = [t.name.lower() for t in load_sample().active()]
    msgs: list[tuple[str | None, str]] = [(None, f"hola, consulta sobre {name}") for name in names]
    return msgs + [(None, t) for t in unknown_texts()]


def bench_batch(clf: api.Classifier, msgs: list[tuple[str | None, str]], total: int = 5000) -> float:
    items = (msgs * (total // len(msgs) + 1))[:total]
    clf.predict_batch(items[:256])  # warm-up
    started = time.perf_counter()
    for i in range(0, total, 512):
        clf.predict_batch(items[i : i + 512], k=3)
    return total / (time.perf_counter() - started)


def bench_single(clf: api.Classifier, msgs: list[tuple[str | None, str]], n: int = 1000) -> dict[str, float]:
    for s, t in msgs[:20]:
        clf.predict(s, t)
    times = []
    for i in range(n):
        s, t = msgs[i % len(msgs)]
        started = time.perf_counter()
        clf.predict(s, t, k=3)
        times.append((time.perf_counter() - started) * 1000)
    arr = np.array(times)
    p50, p99 = (float(np.percentile(arr, q)) for q in (50, 99))
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": float(arr.max())}


def _train_full(rows: int, out: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "catalogo_full.csv"
        csv_path.write_text(full_layout_csv(rows), encoding="utf-8")
        started = time.perf_counter()
        report = import_catalog(Path(tmp) / "data", csv_path)
        imported = time.perf_counter() - started
        info = api.train(Path(tmp) / "data", (), evaluate_holdout=False)
        total = time.perf_counter() - started
        clf = api.load_active(Path(tmp) / "data", cold_start=False)
        single = bench_single(clf, [(None, "quiero renovar la libreta de conducir en San José")], 200)
        out.put(
            {
                "rows": rows,
                "trámites": report.total,
                "duplicates": report.duplicates,
                "import_s": round(imported, 2),
                "import_and_train_s": round(total, 2),
                "fit_s": info.training["fit_seconds"],
                "documents": info.training["documents"],
                "single_p99_ms_full_catalogue": round(single["p99_ms"], 2),
            }
        )


def bench_training(rows: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_full, args=(rows, queue))
    proc.start()
    result = queue.get()
    proc.join()
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = round(peak_kb / 1024, 1)
    return dict(result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=Path, default=DEV)
    ap.add_argument("--rows", type=int, default=3500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    msgs = load_messages(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        clf = api.load_active(tmp)  # cold start from the packaged sample
        result: dict[str, Any] = {
            "messages": len(msgs),
            "batch_msgs_per_s": round(bench_batch(clf, msgs)),
            **{k: round(v, 2) for k, v in bench_single(clf, msgs).items()},
        }
    result["training"] = bench_training(args.rows)
    if args.json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return 0
    t = result["training"]
    print(f"batched classification: {result['batch_msgs_per_s']} messages/s (target ≥ 2000)")
    print(f"single message: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (target p99 ≤ 5 ms)")
    print(
        f"training on {t['rows']} rows ({t['trámites']} trámites, {t['duplicates']} duplicate ids, full layout): "
        f"import {t['import_s']} s, import+train {t['import_and_train_s']} s, peak RSS {t['peak_rss_mb']} MB "
        f"(targets < 120 s, < 4096 MB); single p99 with that model {t['single_p99_ms_full_catalogue']} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
