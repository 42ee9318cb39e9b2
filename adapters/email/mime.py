"""Low-level MIME helpers: charsets (declared, wrong or unknown), RFC 2047 words, addresses, broken boundaries.

The structure is parsed with the stdlib's fast compat32 parser; every header is decoded here from its raw form, so
raw 8-bit bytes, unknown charsets and huge headers are handled on our terms.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.message
import email.utils
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

# Labels that say nothing about the real encoding: decode by trying UTF-8, then detection.
_UNINFORMATIVE = {"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default", "none", "x-user-defined"}
# Detection results that mean "some Western European single-byte charset": cp1252 is the superset mail uses.
_WESTERN = {"latin_1", "iso8859_15", "cp1252", "iso8859_1", "cp1250", "iso8859_2", "iso8859_9", "cp1254",
            "mac_roman", "mac_latin2", "cp850", "cp437", "iso8859_3", "iso8859_4", "iso8859_10", "iso8859_14"}
_C1 = re.compile(rb"[\x80-\x9f]")
_DETECT_LIMIT = 64 * 1024
# Aliases Python does not know, as seen in the wild.
_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-sjis": "shift_jis",
    "x-gbk": "gbk",
    "gb2312": "gb18030",  # a superset; mislabelled GBK mail decodes too
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # the codec actually used
    how: str  # "declared" | "utf-8" | "detected" | "fallback"


def codec_for(label: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None when unknown or uninformative."""
    if not label:
        return None
    label = label.strip().strip('"').strip("'").lower()
    label = label.split("*", 1)[0]  # RFC 2231 language suffix
    if label in _UNINFORMATIVE:
        return None
    label = _ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):  # ValueError: NUL or other junk in the label
        return None


def decode_bytes(data: bytes, declared: str | None) -> Decoded:
    """Decode body or header bytes: the declared charset when it works, else UTF-8, else detection."""
    if not data:
        return Decoded("", "ascii", "declared")
    codec = codec_for(declared)
    if codec in ("latin-1", "iso8859-1", "iso8859-15", "ascii") and _C1.search(data):
        codec = "cp1252"  # C1 control bytes in "latin-1" text are almost always Windows-1252 punctuation
    if codec is not None:
        try:
            return Decoded(data.decode(codec), codec, "declared")
        except (UnicodeDecodeError, LookupError):
            pass
    if data.isascii():
        return Decoded(data.decode("ascii"), "ascii", "declared")
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError:
        pass
    return detect(data)


def _looks_western(text: str) -> bool:
    """Western European text has few accented letters among plain ones; Cyrillic or CJK bytes read as cp1252
    turn almost every letter into an accented one."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    accented = sum(1 for ch in letters if ord(ch) > 127)
    return accented / len(letters) <= 0.5


def detect(data: bytes) -> Decoded:
    """Our mail is mostly Spanish: cp1252 when it reads like Western text; otherwise charset-normalizer decides
    (its Western European guesses become cp1252 too)."""
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _looks_western(western):
        return Decoded(western, "cp1252", "detected")
    best = from_bytes(data[:_DETECT_LIMIT]).best()
    guess = best.encoding if best is not None else None
    if guess is None or guess in _WESTERN:
        return Decoded(data.decode("cp1252", errors="replace"), "cp1252", "fallback" if guess is None else "detected")
    try:
        return Decoded(data.decode(guess), guess, "detected")
    except (UnicodeDecodeError, LookupError):
        return Decoded(data.decode(guess, errors="replace"), guess, "detected")


# -- headers -------------------------------------------------------------------------------------------------------
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\udc80-\udcff]")  # raw 8-bit bytes kept by the parser as surrogate escapes


def _word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "qQ":
        return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                      payload.replace("_", " ").encode("ascii", "replace"))
    payload = payload.strip()
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return base64.b64decode(re.sub(r"[^A-Za-z0-9+/]", "", payload) + "==", validate=False)


def decode_encoded_words(text: str) -> str:
    """RFC 2047: decode encoded words; whitespace between adjacent ones disappears; consecutive words in the same
    charset are joined before decoding (clients split multibyte characters across words)."""
    if "=?" not in text:
        return text
    out: list[str] = []
    run: bytearray = bytearray()
    run_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal run, run_charset
        if run:
            out.append(decode_bytes(bytes(run), run_charset).text)
        run, run_charset = bytearray(), None

    for m in _ENCODED_WORD.finditer(text):
        between = text[pos:m.start()]
        charset = m.group(1).split("*", 1)[0].lower()
        if between and not (run and between.isspace()):
            flush()
            out.append(between)
        elif run and charset != run_charset:
            flush()
        try:
            data = _word_bytes(m.group(2), m.group(3))
        except (binascii.Error, ValueError):
            flush()
            out.append(m.group(0))
            pos = m.end()
            continue
        run_charset = charset
        run.extend(data)
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def raw_to_text(value: str) -> str:
    """A raw header value (str with surrogate escapes for 8-bit bytes) → text, before RFC 2047 decoding."""
    value = _FOLD.sub("", value)
    if _SURROGATE.search(value):
        data = value.encode("ascii", "surrogateescape")
        value = decode_bytes(data, None).text
    return value


def decode_header(value: str | None, limit: int | None = None) -> str:
    """Decode one raw header value to display text (unfolded, RFC 2047, raw 8-bit tolerated)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    text = raw_to_text(value)
    if limit is not None and len(text) > limit * 20:  # cut absurd headers before the regex work
        text = text[: limit * 20]
    text = decode_encoded_words(text)
    text = re.sub(r"[\r\n\t]+", " ", text).strip()
    text = re.sub(r"\s{2,}", " ", text)
    return text[:limit] if limit is not None else text


class RawHeaders:
    """Header access on raw values (compat32 keeps them unmodified)."""

    def __init__(self, msg: email.message.Message):
        self._values: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self._values.setdefault(name.lower(), []).append(value if isinstance(value, str) else str(value))

    def raw(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def text(self, name: str, limit: int | None = None) -> str:
        return decode_header(self.raw(name), limit)

    def has(self, name: str) -> bool:
        return name.lower() in self._values

    def names(self) -> list[str]:
        return list(self._values)


def parse_addresses(raw_values: list[str]) -> list[tuple[str, str]]:
    """[(display name, lower-case address)] from raw address headers; names RFC 2047-decoded."""
    out: list[tuple[str, str]] = []
    text = ", ".join(raw_to_text(v) for v in raw_values)
    for name, addr in email.utils.getaddresses([text]):
        addr = addr.strip().strip("<>").lower()
        if "@" not in addr:
            continue
        name = decode_header(name).strip().strip('"').strip()
        out.append((name, addr))
    return out


_MSGID = re.compile(r"<([^<>\s]+)>")


def message_ids(value: str | None) -> list[str]:
    """Message-IDs (without angle brackets) in header order; tolerates missing brackets."""
    if not value:
        return []
    value = raw_to_text(value)
    found = _MSGID.findall(value)
    if found:
        return found
    return [tok for tok in re.split(r"[\s,]+", value) if "@" in tok]


# -- structure repair ----------------------------------------------------------------------------------------------
_BOUNDARY_UNQUOTED = re.compile(rb'(boundary\s*=\s*)([^"\s;][^\s;]*)', re.IGNORECASE)


def needs_boundary_repair(msg: email.message.Message) -> bool:
    """A multipart whose boundary was not found (e.g. an unquoted boundary with '=' in it)."""
    for part in msg.walk():
        if part.is_multipart() and not part.get_payload():
            return True
        if any(type(d).__name__ == "StartBoundaryNotFoundDefect" for d in getattr(part, "defects", [])):
            return True
    return False


def quote_boundaries(raw: bytes) -> bytes:
    """Put quotes around unquoted boundary parameters so that tspecials like '=' survive parsing."""
    return _BOUNDARY_UNQUOTED.sub(lambda m: m.group(1) + b'"' + m.group(2) + b'"', raw)


def parse_bytes(raw: bytes) -> email.message.Message:
    """Parse with the stdlib, then retry once with repaired boundaries when the structure came out empty."""
    msg = email.message_from_bytes(raw)
    if msg.is_multipart() or msg.get_content_maintype() == "multipart":
        if needs_boundary_repair(msg):
            fixed = quote_boundaries(raw)
            if fixed != raw:
                repaired = email.message_from_bytes(fixed)
                if not needs_boundary_repair(repaired):
                    return repaired
    return msg


def part_bytes(part: email.message.Message) -> bytes:
    """Decoded payload bytes of a leaf part (transfer encoding undone; a broken encoding gives the raw bytes)."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("ascii", "surrogateescape")
    return b""


def charset_of(part: email.message.Message) -> str | None:
    value = part.get_param("charset")
    if isinstance(value, tuple):  # RFC 2231 form
        value = email.utils.collapse_rfc2231_value(value)
    return str(value) if value else None


def part_text(part: email.message.Message) -> Decoded:
    return decode_bytes(part_bytes(part), charset_of(part))


def filename_of(part: email.message.Message) -> str | None:
    """The decoded filename: RFC 2231 (filename*=, continuations) or RFC 2047 in name=/filename=."""
    value = part.get_filename(None)
    if value is None:
        param = part.get_param("name")
        value = email.utils.collapse_rfc2231_value(param) if isinstance(param, tuple) else param
    if not value:
        return None
    name = decode_header(str(value))
    name = name.replace("/", "_").replace("\\", "_").replace("\x00", "").strip()
    return name[:255] or None
