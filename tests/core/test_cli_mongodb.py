"""The command line on the MongoDB store (nx-27017 here): ingest, dedupe on re-feed, list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.helpers import write_emails
from tests.core.test_cli import inbox
from tests.support.mongo import NxServer, unique_db_name


@pytest.fixture(scope="module")
def nx() -> Iterator[NxServer]:
    server = NxServer.start()
    try:
        yield server
    finally:
        server.stop()


def test_ingest_and_list_on_mongodb(tmp_path: Path, nx: NxServer) -> None:
    files = write_emails(tmp_path / "mail", 12)
    env = {"INBOX_CORE__MONGODB_DATABASE": unique_db_name("cli")}
    opts = ["--data-dir", str(tmp_path / "d"), "--store", "mongodb", "--mongodb-url", nx.url]
    first = inbox("ingest", "email", *opts, "--json", *map(str, files), env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"ingested": 12, "duplicates": 0, "quarantined": 0}
    again = inbox("ingest", "email", *opts, "--json", *map(str, files), env=env)
    assert json.loads(again.stdout) == {"ingested": 0, "duplicates": 12, "quarantined": 0}
    rows = json.loads(inbox("tickets", *opts, "--json", env=env).stdout)
    assert len(rows) == 9  # 3 of the 12 reply to earlier mails
    assert sum(r["messages"] for r in rows) == 12
    assert len({r["number"] for r in rows}) == 9
    # the sqlite file was never created: the data went to MongoDB
    assert not (tmp_path / "d" / "inbox.sqlite3").exists()
