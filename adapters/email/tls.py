"""TLS of a mailbox's connections: one SSL context for IMAP (implicit TLS or STARTTLS) and SMTP alike."""

from __future__ import annotations

import ssl

from adapters.email.settings import EmailAccount


def tls_context(account: EmailAccount) -> ssl.SSLContext:
    """The SSL context of every IMAP and SMTP connection of ``account``.

    One function for both, so that the two can never disagree on what is trusted: with ``tls_ca_file`` the servers'
    certificates must chain to that PEM bundle (mail servers under an internal/government CA); without it, to the
    system's CAs. The host name is checked too. Verification is off only when ``tls_verify`` is false (test servers):
    a certificate that fails is an error, never a reason to fall back to plain text.
    """
    ctx = ssl.create_default_context(cafile=account.tls_ca_file or None)
    if not account.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_tls_error(exc: BaseException) -> str:
    """A hint for an operator when ``exc`` (or its cause) is a certificate that could not be verified."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return " (the server's TLS certificate is not trusted: check tls_ca_file, the CA bundle it must chain to)"
        seen = seen.__cause__ or seen.__context__
    return ""
