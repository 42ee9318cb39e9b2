"""The command line, run as a user runs it (subprocesses on a real data directory)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.core.helpers import write_emails

ROOT = Path(__file__).resolve().parents[2]
EMAILS = ROOT / "tests" / "fixtures" / "email"


def inbox(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True, timeout=120,
                          env={**os.environ, **(env or {})}, input=stdin)


def test_ingest_reports_counts_and_tickets_lists_them(tmp_path: Path) -> None:
    files = write_emails(tmp_path / "mail", 8)
    bad = tmp_path / "mail" / "bad.eml"
    bad.write_bytes(b"")
    out = inbox("ingest", "email", "--data-dir", str(tmp_path / "d"), "--json", *map(str, files), str(bad))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"ingested": 8, "duplicates": 0, "quarantined": 1}
    again = inbox("ingest", "email", "--data-dir", str(tmp_path / "d"), *map(str, files[:3]))
    assert again.returncode == 0
    assert again.stdout.decode().strip() == "ingested 0, duplicates 3, quarantined 0"
    listed = inbox("tickets", "--data-dir", str(tmp_path / "d"), "--json")
    rows = json.loads(listed.stdout)
    assert len(rows) == 6  # mails 3 and 7 reply to 0 and 4
    assert {"number", "status", "channel", "subject", "contact", "messages", "tramite", "agency"} <= set(rows[0])
    assert sorted(r["messages"] for r in rows) == [1, 1, 1, 1, 2, 2]
    table = inbox("tickets", "--data-dir", str(tmp_path / "d"))
    assert "Consulta 0" in table.stdout.decode()


def test_every_fixture_email_ingests_without_a_crash(tmp_path: Path) -> None:
    files = sorted(EMAILS.glob("*.eml"))
    out = inbox("ingest", "email", "--data-dir", str(tmp_path / "d"), "--json", *map(str, files))
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert sum(counts.values()) == len(files)
    assert counts["ingested"] >= len(files) - 2


def test_bad_settings_stop_with_a_message(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[core]\nstroe = 'sqlite'\n")
    out = inbox("tickets", "--settings", str(f), "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 2
    assert "core.stroe: unknown setting" in out.stderr.decode()


def test_db_migrate_is_idempotent(tmp_path: Path) -> None:
    first = inbox("db", "migrate", "--data-dir", str(tmp_path / "d"))
    second = inbox("db", "migrate", "--data-dir", str(tmp_path / "d"))
    assert first.returncode == 0 and second.returncode == 0
    assert second.stdout.decode().strip() == "schema is up to date"


def test_serve_health_and_token_api(tmp_path: Path) -> None:
    data = tmp_path / "d"
    files = write_emails(tmp_path / "mail", 2)
    assert inbox("ingest", "email", "--data-dir", str(data), *map(str, files)).returncode == 0
    env = {**os.environ, "INBOX_WEB__API_TOKEN": "s3cret-token", "INBOX_WEB__SECRET_KEY": "k" * 32}
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "serve", "--data-dir", str(data), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 90
        while "http://" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
        url = re.search(r"http://\S+", line)
        assert url, (line, proc.poll(), proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "")
        base = url.group(0).rstrip("/")
        with urllib.request.urlopen(base + "/healthz") as r:
            assert json.loads(r.read()) == {"status": "ok"}
        try:
            urllib.request.urlopen(base + "/api/tickets")
            raise AssertionError("the API answered without a token")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        req = urllib.request.Request(base + "/api/tickets", headers={"Authorization": "Bearer s3cret-token"})
        with urllib.request.urlopen(req) as r:
            body = json.loads(r.read())
        assert len(body["items"]) == 2
        number = body["items"][0]["number"]
        req = urllib.request.Request(f"{base}/api/tickets/{number}", headers={"Authorization": "Bearer s3cret-token"})
        with urllib.request.urlopen(req) as r:
            one = json.loads(r.read())
        assert one["number"] == number and len(one["thread"]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"s3cret-token" not in err  # secrets never reach the logs
