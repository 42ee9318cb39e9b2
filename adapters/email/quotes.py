"""Separate the new text a person wrote from the quoted history and the signature below it.

An ordered list of small named rules, each finding where the quoted history starts; the earliest match wins.
Covers Spanish and English clients: Gmail/Apple/Thunderbird attribution lines ("El lun, 3 nov 2025 a las 10:02, …
escribió:", "On … wrote:"), Outlook header blocks ("De: … Enviado: …", "From: … Sent: …") with or without the
underscore separator, "-----Mensaje original-----", and trailing "> " blocks. Forwarded messages are not history:
their content stays visible. Nothing is thrown away: the caller keeps the full text too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_VERBS = r"(?:escribi[óo]|wrote|a\s+[ée]crit|schrieb|escreveu|scrisse|skrev|schreef)"
# An attribution line, possibly wrapped over up to three lines by the client.
ATTRIBUTION = re.compile(
    r"^[ \t]*(?:El|On|Le|Am|Em|Il|Op|Den)\b[^\n]{0,300}?(?:\n(?![ \t]*>)[^\n]{0,200}?){0,2}?" + _VERBS + r"\s*:[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# "Someone wrote:" without a date (old clients, mailing lists).
SHORT_ATTRIBUTION = re.compile(r"^[^\n>]{1,80}\s" + _VERBS + r"\s*:[ \t]*$", re.IGNORECASE | re.MULTILINE)
ORIGINAL_MESSAGE = re.compile(
    r"^[ \t]*-{2,}\s*(?:Original Message|Mensaje original|Message d'origine|Ursprüngliche Nachricht|"
    r"Mensagem original)\s*-{2,}[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
FORWARD_MARKER = re.compile(
    r"^[ \t]*(?:-{2,}\s*(?:Forwarded message|Mensaje reenviado|Message transféré|Mensagem encaminhada|"
    r"Weitergeleitete Nachricht|Mensaje adjunto)\s*-{2,}|Begin forwarded message:|Inicio del mensaje reenviado:|"
    r"Comienzo del mensaje reenviado:)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FROM = r"(?:De|From|Von|Da|Van)"
_SENT = r"(?:Enviado(?:\s+el)?|Sent|Fecha|Date|Gesendet|Inviato|Envoy[ée])"
# Outlook's header block: "De: …" followed within a few lines by "Enviado: …" (or the reverse order of some locales).
OUTLOOK_BLOCK = re.compile(
    r"^[ \t]*\*?" + _FROM + r"\*?\s*:[^\n]*\n(?:[^\n]*\n){0,3}?[ \t]*\*?" + _SENT + r"\*?\s*:",
    re.IGNORECASE | re.MULTILINE,
)
SEPARATOR_LINE = re.compile(r"^[ \t]*(?:_{10,}|-{10,})[ \t]*$", re.MULTILINE)

SIGNATURE_DELIMITER = re.compile(r"^-- ?$", re.MULTILINE)
MOBILE_SIGNATURE = re.compile(
    r"^[ \t]*(?:Enviado desde (?:mi|Outlook|Correo|Yahoo)|Sent from (?:my|Outlook|Mail|Yahoo)|Obtener Outlook para|"
    r"Get Outlook for|Enviado con|Enviado desde Proton|Sent with)\b[^\n]*$",
    re.IGNORECASE | re.MULTILINE,
)
FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|rv|reenv(?:iado)?|tr|wg|enc|i)\s*:", re.IGNORECASE)


@dataclass
class SplitText:
    visible: str  # what the person wrote now
    quoted: str  # history below (attribution line included); "" when none
    signature: str  # the signature cut from the visible part; "" when none
    rule: str | None  # the rule that found the quote, or None

    @property
    def full(self) -> str:
        return "\n\n".join(p for p in (self.visible, self.signature, self.quoted) if p)


QuoteRule = Callable[[str], int | None]


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _interleaved_after(text: str, start: int) -> bool:
    """True when unquoted writing follows "> " lines after ``start``: an inline (bottom-posted) answer."""
    lines = text[start:].splitlines()[1:]
    seen_quote = False
    for line in lines:
        if _is_quoted(line):
            seen_quote = True
        elif line.strip() and seen_quote and not SIGNATURE_DELIMITER.match(line):
            return True
    return False


def attribution(text: str) -> int | None:
    m = ATTRIBUTION.search(text)
    if m is None or _interleaved_after(text, m.start()):
        return None
    return m.start()


def short_attribution(text: str) -> int | None:
    for m in SHORT_ATTRIBUTION.finditer(text):
        rest = text[m.end():].lstrip("\n")
        if rest.startswith(">") and not _interleaved_after(text, m.start()):
            return m.start()
    return None


def original_message(text: str) -> int | None:
    m = ORIGINAL_MESSAGE.search(text)
    return m.start() if m else None


def outlook_block(text: str) -> int | None:
    m = OUTLOOK_BLOCK.search(text)
    if m is None:
        return None
    start = m.start()
    before = text[:start].rstrip("\n")
    last_line_start = before.rfind("\n") + 1
    if SEPARATOR_LINE.fullmatch(before[last_line_start:]):
        return last_line_start
    return start


def trailing_quote_block(text: str) -> int | None:
    """A block of "> " lines that runs to the end (only blank lines or more quotes after it)."""
    lines = text.splitlines(keepends=True)
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line)
    start: int | None = None
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if _is_quoted(line):
            start = i
        elif line.strip():
            break
    if start is None:
        return None
    prev = start - 1
    while prev >= 0 and not lines[prev].strip():
        prev -= 1
    if prev >= 0 and lines[prev].rstrip().endswith(":") and len(lines[prev]) < 300:
        start = prev  # an attribution line in a style no rule knows
    return offsets[start]


QUOTE_RULES: list[tuple[str, QuoteRule]] = [
    ("attribution", attribution),
    ("original_message", original_message),
    ("outlook_block", outlook_block),
    ("short_attribution", short_attribution),
    ("trailing_quote_block", trailing_quote_block),
]


def find_quote_start(text: str) -> tuple[int, str] | None:
    """The earliest start of quoted history, with the rule that found it."""
    found: tuple[int, str] | None = None
    for name, rule in QUOTE_RULES:
        pos = rule(text)
        if pos is not None and (found is None or pos < found[0]):
            found = (pos, name)
    return found


def split_signature(visible: str) -> tuple[str, str]:
    """Cut an RFC 3676 "-- " signature or a "Sent from my phone" line from the end of the visible text."""
    delimiters = list(SIGNATURE_DELIMITER.finditer(visible))
    if delimiters and len(visible) - delimiters[-1].start() < 1500:
        start = delimiters[-1].start()
        return visible[:start].rstrip(), visible[start:].strip()
    mobile = list(MOBILE_SIGNATURE.finditer(visible))
    if mobile and not visible[mobile[-1].end():].strip():
        start = mobile[-1].start()
        return visible[:start].rstrip(), visible[start:].strip()
    return visible, ""


def split_quotes(text: str, subject: str | None = None) -> SplitText:
    """Split ``text`` into the new writing, the quoted history and the signature."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    forward = FORWARD_MARKER.search(text)
    is_forward = bool(subject and FORWARD_SUBJECT.match(subject))
    found = find_quote_start(text)
    if found is not None and forward is not None and forward.start() <= found[0]:
        found = None  # a forwarded message is content, not history
    if found is not None and is_forward and found[1] in ("outlook_block", "original_message"):
        found = None  # Outlook forwards use the same header block as replies
    if found is None:
        visible, quoted, rule = text.strip(), "", None
    else:
        visible, quoted, rule = text[: found[0]].strip(), text[found[0]:].strip(), found[1]
    visible, signature = split_signature(visible)
    if not visible.strip():  # everything was quoted or signature: show it all rather than nothing
        return SplitText(text.strip(), "", "", None)
    return SplitText(visible.strip(), quoted, signature, rule)
