"""A real Dovecot (IMAP + LMTP) for tests, started as a child process (see shared/testing-notes.md).

Any user name logs in with ``PASSWORD`` (static passdb), so each test can take a fresh mailbox. Mail can be
delivered by LMTP, by IMAP APPEND, or written straight into the Maildir (as an MTA would while Dovecot is down).

Plain text by default. ``Dovecot(tls=(cert_pem, key_pem))`` turns TLS on: implicit TLS (IMAPS) on ``imaps_port``
and STARTTLS offered on the plain ``imap_port`` (plain-text login stays allowed there, for the test helpers).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

PASSWORD = "secret"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%n/Maildir
mail_fsync = never
auth_failure_delay = 0
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}{imaps_ssl}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> bool:
    return Path(DOVECOT).exists()


class Dovecot:
    """One Dovecot instance in a short /tmp directory (unix socket paths must stay under 108 bytes)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: the server's certificate (PEM, chain included) and private key (PEM) to serve TLS with."""
        self.dir = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        nobody = pwd.getpwnam("nobody")
        self.uid, self.gid = nobody.pw_uid, nobody.pw_gid
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.tls = tls is not None
        self.imaps_port = free_port() if tls is not None else 0  # 0: no IMAPS listener
        ssl = "ssl = no" if tls is None else f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}"
        self.proc: subprocess.Popen[bytes] | None = None
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", self.uid, self.gid)
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(CONFIG.format(dir=self.dir, uid=self.uid, gid=self.gid, password=PASSWORD,
                                           imap_port=self.imap_port, lmtp_port=self.lmtp_port,
                                           imaps_port=self.imaps_port, ssl=ssl,
                                           imaps_ssl="\n    ssl = yes" if tls is not None else ""))

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        # Its own process group, so that stop() takes the imap/lmtp children (and their open sessions) down too.
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.5) as s:
                    if s.recv(64).startswith(b"* OK"):
                        if self.imaps_port:
                            socket.create_connection(("127.0.0.1", self.imaps_port), timeout=0.5).close()
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer: {self.log()[-2000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the master (open IMAP sessions)
        # Children (imap, lmtp, auth) leave with the master; wait for the listener to be free again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- mailboxes -------------------------------------------------------------------------------------------------
    @staticmethod
    def new_user(prefix: str = "u") -> str:
        return f"{prefix}{uuid.uuid4().hex[:10]}"

    def maildir(self, user: str) -> Path:
        return self.dir / "mail" / user / "Maildir"

    def ensure_maildir(self, user: str) -> Path:
        md = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        for path in [self.dir / "mail" / user, md, md / "cur", md / "new", md / "tmp"]:
            os.chown(path, self.uid, self.gid)
        return md

    def write_maildir(self, user: str, messages: list[bytes]) -> None:
        """Deliver like an MTA: write into tmp/, chown, rename into new/ (works while Dovecot is down)."""
        md = self.ensure_maildir(user)
        stamp = int(time.time())
        for i, data in enumerate(messages):
            name = f"{stamp}.M{i}P{os.getpid()}R{uuid.uuid4().hex[:8]}.test"
            tmp = md / "tmp" / name
            tmp.write_bytes(data)
            os.chown(tmp, self.uid, self.gid)
            os.rename(tmp, md / "new" / name)

    def lmtp_deliver(self, user: str, data: bytes, sender: str = "citizen@example.com") -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail(sender, [f"{user}@example.gub.uy"], data)

    def imap(self, user: str) -> IMAPClient:
        """An IMAPClient logged in as ``user`` (plain text, loopback)."""
        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=10)
        client.login(user, PASSWORD)
        return client


@contextlib.contextmanager
def started(tls: tuple[Path, Path] | None = None) -> Iterator[Dovecot]:
    """A running Dovecot for the duration of the block (with TLS: ``(certificate file, key file)``); its directory is
    removed afterwards. Fails the test run when Dovecot is not installed: CI installs it, a skip would hide that."""
    if not available():
        pytest.fail("dovecot is not installed: apt-get install -y dovecot-imapd dovecot-lmtpd")
    dc = Dovecot(tls=tls)
    dc.start()
    try:
        yield dc
    finally:
        dc.cleanup()
