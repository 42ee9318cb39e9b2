"""The store contract suite: every test here runs against each backend.

Backends: ``sqlite`` (a real file in tmp_path), ``mongodb-nx`` (MongoStore on an nx-27017 server started once per
session, a fresh database per test) and, when INBOX_TEST_MONGODB_URL is set, ``mongodb-real`` (a real MongoDB server,
a fresh database per test, dropped afterwards). Tests marked ``real_mongodb`` need real MongoDB semantics: without
INBOX_TEST_MONGODB_URL they are skipped with that reason (reported, never silent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from inbox.archive import RawArchive
from inbox.ingest import Pipeline
from inbox.store.base import Store
from inbox.store.mongodb import MongoStore
from inbox.store.sqlite import SQLiteStore
from tests.support.mongo import ENV_REAL_URL, NxServer, real_mongodb_url, unique_db_name

BACKENDS = ["sqlite", "mongodb-nx"] + (["mongodb-real"] if real_mongodb_url() else [])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``real_mongodb`` tests run only on the real server: skipped (with the reason) without one, and their
    other backend variants are skipped too."""
    no_server = pytest.mark.skip(reason=f"needs a real MongoDB server: set {ENV_REAL_URL}")
    other = pytest.mark.skip(reason="needs real MongoDB semantics: runs on the mongodb-real backend only")
    for item in items:
        if item.get_closest_marker("real_mongodb") is None:
            continue
        if not real_mongodb_url():
            item.add_marker(no_server)
            continue
        callspec = getattr(item, "callspec", None)
        backends = set(callspec.params.values()) & set(BACKENDS) if callspec else set()
        if backends and backends != {"mongodb-real"}:
            item.add_marker(other)


@pytest.fixture(scope="session")
def nx_server() -> Iterator[NxServer]:
    server = NxServer.start()
    try:
        yield server
    finally:
        server.stop()


async def _open_mongo(url: str) -> tuple[MongoStore, str]:
    name = unique_db_name("contract")
    store = MongoStore(url, name)
    await store.open()
    return store, name


async def _drop(url: str, name: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(url)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = request.param
    if backend == "sqlite":
        s = SQLiteStore(tmp_path / "inbox.sqlite3")
        await s.open()
        try:
            yield s
        finally:
            await s.close()
        return
    url = request.getfixturevalue("nx_server").url if backend == "mongodb-nx" else real_mongodb_url()
    assert url
    ms, name = await _open_mongo(url)
    try:
        yield ms
    finally:
        await ms.close()
        await _drop(url, name)


@pytest.fixture(params=[b for b in BACKENDS if b.startswith("mongodb")])
async def mongo_url(request: pytest.FixtureRequest) -> str:
    """The URL of each MongoDB backend (for MongoDB-only tests that open their own stores)."""
    if request.param == "mongodb-nx":
        return str(request.getfixturevalue("nx_server").url)
    url = real_mongodb_url()
    assert url
    return url


@pytest.fixture
async def mongo_store(mongo_url: str) -> AsyncIterator[MongoStore]:
    ms, name = await _open_mongo(mongo_url)
    try:
        yield ms
    finally:
        await ms.close()
        await _drop(mongo_url, name)


@pytest.fixture
def archive(tmp_path: Path) -> RawArchive:
    return RawArchive(tmp_path / "raw")


@pytest.fixture
def pipeline(store: Store, archive: RawArchive) -> Pipeline:
    return Pipeline(store, archive)
