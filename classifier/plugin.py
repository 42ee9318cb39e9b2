"""The classifier as an ``inbox`` plugin (list "classifier.plugin" in ``workers.runtime.PLUGINS``).

- ``setup(rt)``: the ``triage`` job handler (payload ``{"ticket_id"}``, enqueued by the ingest pipeline). The active
  model is loaded once and reloaded when ``inbox classifier train`` or ``rollback`` changes it; with no model yet, the
  first job trains one from the catalogue (cold start: ~13 s on the sample, off the event loop).
- ``register_cli(sub, common, with_runtime)``: ``inbox catalog import``, ``inbox classify``, ``inbox classifier
  train|eval|rollback|list``; ``train``, ``eval`` and ``classify`` read the agents' labels from the store (the
  last two to never score a message with a model trained on it: see api.scoring_model).

Thresholds and routing come from ``<data_dir>/classifier.toml`` (see classifier/settings.py).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from classifier import api, cli, registry
from classifier.api import Classifier
from classifier.triage import labelled_examples, triage_ticket

SERVICE = "classifier"


class ClassifierHolder:
    """The active model of a data directory, reloaded when the registry's active version changes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._clf: Classifier | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Classifier:
        active = registry.active_version(self.data_dir)
        if self._clf is not None and self._clf.version == active:
            return self._clf
        async with self._lock:
            active = registry.active_version(self.data_dir)
            if self._clf is None or self._clf.version != active:
                self._clf = await asyncio.to_thread(api.load_active, self.data_dir)
            return self._clf

    async def predict(self, text: str, subject: str | None = None, k: int = 3) -> Any:
        """What the web's tags panel shows (top-k and the terms behind them), off the event loop; None while there is
        no model yet: a page never waits for the cold-start training, which the first triage job does."""
        if self._clf is None and registry.active_version(self.data_dir) is None:
            return None
        clf = await self.get()
        return await asyncio.to_thread(clf.predict, subject, text, k)


def holder(rt: Any) -> ClassifierHolder:
    existing: ClassifierHolder = rt.service(SERVICE, lambda: ClassifierHolder(Path(rt.data_dir)))
    return existing


async def handle_triage(rt: Any, job: Any) -> None:
    clf = await holder(rt).get()
    await triage_ticket(rt.store, clf, str(job.payload["ticket_id"]), clf.settings)


def setup(rt: Any) -> None:
    rt.job_handlers["triage"] = handle_triage
    holder(rt)  # the web's tags panel asks rt.services["classifier"].predict(...)


def register_cli(sub: Any, common: argparse.ArgumentParser, with_runtime: Any) -> None:
    def wrap(handler: cli.Handler) -> Callable[[argparse.Namespace], int]:
        async def run(rt: Any, args: argparse.Namespace) -> int:
            args.data_dir = rt.data_dir
            if handler in (cli.cmd_train, cli.cmd_eval, cli.cmd_classify):
                examples = await labelled_examples(rt.store)
                return await asyncio.to_thread(handler, args, None, examples)
            return await asyncio.to_thread(handler, args)

        runner: Callable[[Any, argparse.Namespace], Awaitable[int]] = run
        return with_runtime(runner)

    cli.register(sub, None, parents=[common], wrap=wrap)
