"""Settings of the email channel: the `[email]` section and its `[[email.accounts]]` tables.

Passwords never appear in the file: an account reads the environment variable named by its ``password_env``
(default ``INBOX_EMAIL__PASSWORD``, the section's own secret, convenient for a single mailbox).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from inbox.settings import SettingsError, secret

AFTER_COMMIT_ACTIONS = ("seen", "move", "leave")
INITIAL_SYNC = ("all", "unseen", "none")
DEFAULT_PASSWORD_ENV = "INBOX_EMAIL__PASSWORD"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class EmailAccount:
    """One mailbox: where its mail is read (IMAP) and how replies leave (SMTP)."""

    name: str = ""  # the account name stored on messages and tickets, e.g. "atencion"
    address: str = ""  # the public address: From of our replies, recognised as "us" in incoming mail
    display_name: str = ""  # From display name of our replies (empty: no display name)
    password_env: str = ""  # environment variable holding the password (empty: INBOX_EMAIL__PASSWORD)
    # IMAP (inbound)
    imap_host: str = "localhost"
    imap_port: int = 993
    imap_tls: bool = True  # implicit TLS (port 993)
    imap_starttls: bool = False  # STARTTLS on a plain connection (when imap_tls is false)
    imap_user: str = ""  # empty: the address
    folder: str = "INBOX"
    idle: bool = True  # use IMAP IDLE when the server offers it; otherwise poll
    poll_interval_s: float = 30.0  # polling period without IDLE (and the IDLE safety re-check)
    after_commit: str = "seen"  # seen | move | leave: what happens to a mail once it is stored
    move_folder: str = "Procesados"  # target of after_commit = "move" (created when missing)
    initial_sync: str = "all"  # first start without a cursor: all | unseen | none (only new mail)
    # SMTP (outbound)
    smtp_host: str = ""  # empty: imap_host
    smtp_port: int = 587
    smtp_tls: bool = False  # implicit TLS (port 465)
    smtp_starttls: bool = True  # STARTTLS (port 587)
    smtp_user: str = ""  # empty: imap_user; "-" sends without authentication
    smtp_password_env: str = ""  # empty: the account's password
    sent_folder: str = ""  # IMAP folder to APPEND sent replies to (empty: none)
    tls_verify: bool = True  # verify server certificates (false only for test servers)
    tls_ca_file: str = ""  # PEM CA bundle the IMAP/SMTP certificates must chain to (empty: the system's CAs)
    auto_acknowledge: bool = False  # answer a citizen's first mail with the ticket number

    def validate(self) -> None:
        where = f"email.accounts[{self.name or '?'}]"
        if not _NAME.match(self.name):
            raise SettingsError(f"{where}.name: required, letters, digits, '.', '_' or '-'")
        if "@" not in self.address:
            raise SettingsError(f"{where}.address: required, an email address")
        if self.after_commit not in AFTER_COMMIT_ACTIONS:
            raise SettingsError(f"{where}.after_commit: one of {', '.join(AFTER_COMMIT_ACTIONS)}")
        if self.initial_sync not in INITIAL_SYNC:
            raise SettingsError(f"{where}.initial_sync: one of {', '.join(INITIAL_SYNC)}")
        if self.after_commit == "move" and not self.move_folder:
            raise SettingsError(f"{where}.move_folder: required when after_commit = 'move'")
        if self.poll_interval_s <= 0:
            raise SettingsError(f"{where}.poll_interval_s: must be positive")
        if self.tls_ca_file and not os.path.isfile(self.tls_ca_file):
            raise SettingsError(f"{where}.tls_ca_file: no such file: {self.tls_ca_file}")

    @property
    def login(self) -> str:
        return self.imap_user or self.address

    @property
    def smtp_server(self) -> str:
        return self.smtp_host or self.imap_host

    @property
    def smtp_login(self) -> str | None:
        user = self.smtp_user or self.login
        return None if user == "-" else user

    def password(self, default: str = "", env: Mapping[str, str] | None = None) -> str:
        """The IMAP password: the variable named by ``password_env``, else ``default`` (INBOX_EMAIL__PASSWORD)."""
        env = os.environ if env is None else env
        if self.password_env:
            return env.get(self.password_env, "")
        return default or env.get(DEFAULT_PASSWORD_ENV, "")

    def smtp_password(self, default: str = "", env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        if self.smtp_password_env:
            return env.get(self.smtp_password_env, "")
        return self.password(default, env)


@dataclass
class EmailSettings:
    accounts: list[EmailAccount] = field(default_factory=list)
    password: str = secret()  # INBOX_EMAIL__PASSWORD: the password of accounts without password_env
    # Domain of our Message-IDs (<message-id@domain>); mail whose Message-ID has it is ours coming back.
    # Empty: the domain of the first account's address.
    message_id_domain: str = ""
    max_attachment_mb: float = 25.0  # bigger attachments are recorded as skipped (the raw mail stays archived)
    allow_remote_images: bool = False  # keep http(s) images in sanitized HTML (tracking pixels are always removed)
    max_subject_chars: int = 1000  # longer subjects are cut (the raw mail keeps the full one)
    max_text_chars: int = 200_000  # longer bodies are cut in the stored text (the raw mail keeps everything)
    fetch_batch: int = 50  # messages fetched per IMAP FETCH
    reconnect_min_s: float = 1.0  # first reconnect delay after an IMAP failure (doubles up to the max)
    reconnect_max_s: float = 300.0
    idle_renew_s: float = 1500.0  # re-issue IDLE before servers drop it (RFC 2177: 29 minutes)
    timeout_s: float = 60.0  # IMAP/SMTP socket timeout
    subject_thread_days: int = 14  # a "Re:" with the same subject from the same contact threads this long
    ack_subject: str = "Recibimos su consulta"
    ack_text: str = (
        "Recibimos su mensaje y lo registramos con el número {number}.\n"
        "Le responderemos a la brevedad. Si nos vuelve a escribir, conserve [#{number}] en el asunto.\n\n"
        "Atención a la Ciudadanía"
    )

    def validate(self) -> None:
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise SettingsError("email.accounts: account names must be unique")
        if self.max_attachment_mb <= 0:
            raise SettingsError("email.max_attachment_mb: must be positive")
        if self.fetch_batch < 1:
            raise SettingsError("email.fetch_batch: must be at least 1")
        if "{number}" not in self.ack_text:
            raise SettingsError("email.ack_text: must contain {number}")

    @property
    def domain(self) -> str:
        if self.message_id_domain:
            return self.message_id_domain.lower()
        if self.accounts:
            return self.accounts[0].address.rpartition("@")[2].lower()
        return "localhost"

    @property
    def max_attachment_bytes(self) -> int:
        return int(self.max_attachment_mb * 1024 * 1024)

    def account(self, name: str) -> EmailAccount | None:
        return next((a for a in self.accounts if a.name == name), None)
