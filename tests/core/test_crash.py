"""Crash safety: an ingest killed with SIGKILL at a random moment, restarted and fed the same input again,
ends with exactly one message per input and consistent tickets."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core.helpers import write_emails

N = 2000


def inbox_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", *args]


def run_ingest(data_dir: Path, files: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        inbox_cmd("ingest", "email", "--data-dir", str(data_dir), "--json", *map(str, files)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def message_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # schema not created yet


@pytest.mark.slow
def test_sigkill_mid_ingest_then_refeed_gives_exactly_n(tmp_path: Path) -> None:
    files = write_emails(tmp_path / "mail", N)
    data = tmp_path / "data"
    db = data / "inbox.sqlite3"
    proc = run_ingest(data, files)
    # kill at a random moment once some work is committed, well before the end
    target = random.randint(50, N // 2)
    deadline = time.monotonic() + 60
    while message_count(db) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = message_count(db)
    assert 0 < killed_at < N

    out = subprocess.run(inbox_cmd("ingest", "email", "--data-dir", str(data), "--json", *map(str, files)),
                         capture_output=True, timeout=300, check=True)
    summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert summary["quarantined"] == 0
    assert summary["ingested"] + summary["duplicates"] == N
    assert summary["duplicates"] >= killed_at

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == N
        assert conn.execute("SELECT count(DISTINCT external_id) FROM messages").fetchone()[0] == N
        # every ticket's counter matches its messages; no ticket without messages; numbers unique
        bad = conn.execute(
            "SELECT t.number, t.message_count, count(m.id) FROM tickets t LEFT JOIN messages m ON m.ticket_id = t.id "
            "GROUP BY t.id HAVING t.message_count != count(m.id) OR count(m.id) = 0"
        ).fetchall()
        assert bad == []
        assert conn.execute("SELECT count(*) FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id "
                            "WHERE t.id IS NULL").fetchone()[0] == 0
        tickets = conn.execute("SELECT count(*), count(DISTINCT number) FROM tickets").fetchone()
        assert tickets[0] == tickets[1]
        # replies (every fourth mail) joined their original's ticket
        assert tickets[0] == N - N // 4
        # each new ticket has exactly one triage job
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind='triage'").fetchone()[0] == tickets[0]
        # and the full-text index holds exactly one row per ticket
        assert conn.execute("SELECT count(*) FROM search_fts").fetchone()[0] == tickets[0]
