"""Start and stop an nx-27017 server (a MongoDB wire-protocol server backed by SQLite) for tests.

Each server gets its own ``--data-dir`` (one SQLite file per logical database, so databases are isolated), a free
port on 127.0.0.1, and its log and pid files in a fresh temporary directory. ``start()`` returns once pymongo can
ping it; ``stop()`` terminates the process and removes the directory.

    server = NxServer.start()
    try:
        client = pymongo.MongoClient(server.url)
        ...
    finally:
        server.stop()

See shared/testing-notes.md (MongoDB) and docs/mongodb.md for what nx-27017 does not do like MongoDB.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

ENV_REAL_URL = "INBOX_TEST_MONGODB_URL"


def nx_binary() -> str | None:
    """The nx-27017 executable: next to the running interpreter (the venv) or on PATH."""
    here = Path(sys.executable).parent / "nx-27017"
    if here.exists():
        return str(here)
    return shutil.which("nx-27017")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_db_name(prefix: str = "t") -> str:
    """A fresh database name (MongoDB limits names to 63 bytes and forbids ``/\\. "$``)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass
class NxServer:
    url: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, timeout: float = 20.0) -> NxServer:
        binary = nx_binary()
        if binary is None:
            raise RuntimeError("nx-27017 is not installed (pip install nx-27017; it is in the 'test' extra)")
        root = Path(tempfile.mkdtemp(prefix="nx27017-"))
        data_dir = root / "data"
        data_dir.mkdir()
        last_error: Exception | None = None
        for _ in range(3):  # a free port can be taken between choosing it and binding it: try again
            port = free_port()
            log = root / f"nx-{port}.log"
            proc = subprocess.Popen(
                [binary, "--host", "127.0.0.1", "-p", str(port), "--data-dir", str(data_dir),
                 "--log-file", str(log), "--pid-file", str(root / f"nx-{port}.pid")],
                stdout=subprocess.DEVNULL,
                stderr=open(root / f"nx-{port}.stderr", "wb"),  # noqa: SIM115 - the child keeps it open
                cwd=root,
                start_new_session=True,
            )
            url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            server = cls(url, port, root, proc)
            try:
                server._wait_ready(timeout)
                return server
            except Exception as exc:  # noqa: BLE001 - retried, then raised with the log
                last_error = exc
                server._terminate()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"nx-27017 did not start: {last_error}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nx-27017 exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client: pymongo.MongoClient[dict[str, Any]]
                with pymongo.MongoClient(self.url, serverSelectionTimeoutMS=300, connectTimeoutMS=300) as client:
                    client.admin.command("ping")
                return
            except PyMongoError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nx-27017 not answering after {timeout}s: {exc}") from exc
                time.sleep(0.1)

    def log_tail(self, n: int = 2000) -> str:
        parts = []
        for f in sorted(self.root.glob("nx-*.*")):
            if f.suffix in (".log", ".stderr"):
                with contextlib.suppress(OSError):
                    parts.append(f.read_text(errors="replace")[-n:])
        return "\n".join(parts)

    def _terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def real_mongodb_url() -> str | None:
    """The real MongoDB server tests marked ``real_mongodb`` run against, or None."""
    return os.environ.get(ENV_REAL_URL) or None
