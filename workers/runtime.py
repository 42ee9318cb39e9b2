"""The composition root: settings, store, archive, pipeline, and what each plugin (channel, classifier, ...)
registers. ``inbox/`` never imports adapters or the web; this module wires them together at start-up."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar, cast

from inbox.archive import PackArchive, RawArchive
from inbox.channels import ChannelSender
from inbox.ingest import Pipeline
from inbox.settings import Settings, load_settings, register_section
from inbox.store.base import Store
from workers.jobs import JobHandler

log = logging.getLogger(__name__)

# Each plugin module may define: SETTINGS = {section: dataclass}, setup(rt), register_cli(subparsers).
PLUGINS: list[str] = [
    "workers.outbox",
    "adapters.email.plugin",
    "adapters.x.plugin",
    "adapters.facebook.plugin",
    "classifier.plugin",
    "web.plugin",
    "workers.quality",
]

Worker = Callable[["Runtime", Any], Awaitable[None]]  # (runtime, stop event)
S = TypeVar("S")
WebSetup = Callable[[Any, "Runtime"], None]  # (aiohttp app, runtime)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    archive: PackArchive
    attachments: RawArchive
    pipeline: Pipeline
    channels: dict[str, ChannelSender] = field(default_factory=dict)
    job_handlers: dict[str, JobHandler] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    web_setups: list[WebSetup] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)  # shared objects plugins expose to each other
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # awaited by close_runtime

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def service(self, key: str, make: Callable[[], S]) -> S:
        """The runtime's one ``key`` service, made on first use; its ``close()`` coroutine, if it has one, runs when
        the runtime closes."""
        existing = self.services.get(key)
        if existing is None:
            existing = self.services[key] = make()
            close = getattr(existing, "close", None)
            if close is not None:
                self.closers.append(close)
        return cast(S, existing)


def plugin_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in PLUGINS]


def register_plugin_settings() -> None:
    for module in plugin_modules():
        for name, cls in getattr(module, "SETTINGS", {}).items():
            register_section(name, cls)


def settings_from(path: str | None = None, **overrides: Any) -> Settings:
    register_plugin_settings()
    return load_settings(path, **overrides)


def make_store(settings: Settings) -> Store:
    if settings.core.store == "mongodb":
        from inbox.store.mongodb import MongoStore

        return MongoStore(settings.core.mongodb_url, settings.core.mongodb_database)
    from inbox.store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "inbox.sqlite3")


async def open_runtime(settings: Settings, store: Store | None = None) -> Runtime:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store = store or make_store(settings)
    await store.open()
    archive = PackArchive(data_dir / "raw", fsync=settings.core.fsync_raw)
    attachments = RawArchive(data_dir / "attachments", fsync=settings.core.fsync_raw)
    pipeline = Pipeline(store, archive, settings.ingest, attachments)
    rt = Runtime(settings, store, archive, attachments, pipeline)
    for module in plugin_modules():
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(rt)
    return rt


async def close_runtime(rt: Runtime) -> None:
    for closer in rt.closers:
        await closer()
    await rt.store.close()
    rt.archive.close()
