"""The official catalogue of trámites ("Guía de trámites"): CSV loading, persistence, re-import with history.

The CSV is read in its published layout with the ``csv`` module (quoted fields with embedded newlines, a BOM, extra or
missing columns, HTML inside text fields). A trámite's key is its ``id``, or its ``url`` where the id is empty.

The imported catalogue lives in ``<data_dir>/catalog/catalog.json``. Re-importing updates rows in place, marks the
trámites that disappeared as removed (``removed_at``; they are never deleted, so old tickets and labels keep their
meaning) and appends a summary to the import history. With nothing imported, the sample shipped in
``classifier/data/tramites_sample.csv`` is used, so a fresh install works without any download.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from classifier.agencies import AgencyDirectory, default_directory

CATALOG_FILE = "catalog.json"
TEXT_COLUMNS = ("nombre_tramite", "ques_es", "requisitos_generales", "canales_de_atencion")

# Published column name → field. Unknown columns are kept in ``extra``; missing ones are empty.
COLUMN_FIELDS = {
    "id": "id",
    "nombre_tramite": "name",
    "institucion_nombre": "agency",
    "url": "url",
    "ques_es": "description",
    "requisitos_generales": "requirements",
    "tiene_costo": "has_cost",
    "valor": "cost",
    "canales_de_atencion": "channels",
    "email_de_consulta": "email",
}


class CatalogError(ValueError):
    pass


@dataclass
class Tramite:
    key: str
    name: str
    agency: str  # institucion_nombre as published (the unit)
    organismo: str  # its top-level body
    id: str = ""
    url: str = ""
    description: str = ""
    requirements: str = ""
    has_cost: str = ""
    cost: str = ""
    channels: str = ""
    email: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    first_seen: str | None = None
    updated_at: str | None = None
    removed_at: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    def content(self) -> dict[str, Any]:
        """The catalogue's own data (no bookkeeping timestamps): what an update compares."""
        d = asdict(self)
        for name in ("first_seen", "updated_at", "removed_at"):
            d.pop(name)
        return d

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tramite:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class ParseReport:
    rows: int = 0
    loaded: int = 0
    skipped: int = 0  # rows with neither id nor url, or no name
    duplicates: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    source: str
    at: str
    total: int
    added: int
    updated: int
    unchanged: int
    removed: int
    restored: int
    skipped: int
    duplicates: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- HTML → text ---------------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    _BLOCK = {"p", "br", "li", "div", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"}
    _SKIP = {"script", "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_TAG_HINT = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[#a-zA-Z0-9]+;")
_WS = re.compile(r"\s+")


def html_to_text(value: str) -> str:
    """Plain text of a field that may hold HTML; whitespace (embedded newlines included) collapsed."""
    if not value:
        return ""
    if _TAG_HINT.search(value):
        parser = _TextExtractor()
        parser.feed(value)
        parser.close()
        value = html.unescape("".join(parser.parts))
    return _WS.sub(" ", value).strip()


# -- CSV parsing ---------------------------------------------------------------------------------------------------


def _open_text(path: Path) -> io.TextIOBase:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return io.StringIO(raw.decode(encoding), newline="")
        except UnicodeDecodeError:
            continue
    return io.StringIO(raw.decode("latin-1"), newline="")


def _sniff_delimiter(sample: str) -> str:
    first_line = sample.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d])


def _row_to_tramite(row: dict[str, str], directory: AgencyDirectory) -> Tramite | None:
    values: dict[str, str] = {}
    extra: dict[str, str] = {}
    for column, raw in row.items():
        if column is None:  # surplus cells of a ragged row
            continue
        name = column.strip().lower()
        text = html_to_text(raw if isinstance(raw, str) else "")
        if name in COLUMN_FIELDS:
            values[COLUMN_FIELDS[name]] = text
        elif text:
            extra[name] = text
    ident = values.get("id", "").strip()
    url = values.get("url", "").strip()
    name = values.get("name", "").strip()
    if not (ident or url) or not name:
        return None
    agency = values.get("agency", "").strip()
    return Tramite(
        key=ident or url,
        name=name,
        agency=agency,
        organismo=(directory.organismo_of(agency) or agency) if agency else "",
        id=ident,
        url=url,
        description=values.get("description", ""),
        requirements=values.get("requirements", ""),
        has_cost=values.get("has_cost", ""),
        cost=values.get("cost", ""),
        channels=values.get("channels", ""),
        email=values.get("email", ""),
        extra=extra,
    )


def _merge_duplicate(first: Tramite, later: Tramite) -> None:
    """Keep the first row of a duplicated key; fill its empty fields from the later one."""
    for name in ("name", "agency", "organismo", "url", "description", "requirements", "has_cost", "cost", "channels"):
        if not getattr(first, name) and getattr(later, name):
            setattr(first, name, getattr(later, name))


def parse_catalog(path: Path | str, directory: AgencyDirectory | None = None) -> tuple[list[Tramite], ParseReport]:
    """Read a catalogue CSV in the published layout. Raises CatalogError when it is not one."""
    directory = directory or default_directory()
    stream = _open_text(Path(path))
    sample = stream.read(65536)
    stream.seek(0)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(stream, delimiter=_sniff_delimiter(sample))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "nombre_tramite" not in columns or not ({"id", "url"} & set(columns)):
        raise CatalogError(f"not a trámites catalogue: columns {columns[:12]}")
    report = ParseReport(
        missing_columns=[c for c in COLUMN_FIELDS if c not in columns],
        extra_columns=[c for c in columns if c not in COLUMN_FIELDS],
    )
    by_key: dict[str, Tramite] = {}
    for row in reader:
        report.rows += 1
        tramite = _row_to_tramite(row, directory)
        if tramite is None:
            report.skipped += 1
        elif tramite.key in by_key:
            report.duplicates.append(tramite.key)
            _merge_duplicate(by_key[tramite.key], tramite)
        else:
            by_key[tramite.key] = tramite
    report.loaded = len(by_key)
    return list(by_key.values()), report


# -- the persisted catalogue ---------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Catalog:
    tramites: dict[str, Tramite]  # every trámite ever imported, removed ones included
    source: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def active(self) -> list[Tramite]:
        return [t for t in self.tramites.values() if t.active]

    def get(self, key: str | None) -> Tramite | None:
        return self.tramites.get(key) if key else None

    def fingerprint(self) -> str:
        """Short hash of the active content, recorded with each model."""
        digest = hashlib.sha256()
        for key in sorted(t.key for t in self.active()):
            digest.update(json.dumps(self.tramites[key].content(), sort_keys=True).encode())
        return digest.hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "history": self.history,
            "tramites": [t.to_dict() for t in self.tramites.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Catalog:
        tramites = [Tramite.from_dict(x) for x in d.get("tramites", [])]
        return cls({t.key: t for t in tramites}, d.get("source", ""), list(d.get("history", [])))


def catalog_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "catalog" / CATALOG_FILE


def sample_csv_path() -> Path:
    return Path(str(resources.files("classifier").joinpath("data/tramites_sample.csv")))


def load_sample(directory: AgencyDirectory | None = None) -> Catalog:
    tramites, _ = parse_catalog(sample_csv_path(), directory)
    stamp = "packaged-sample"
    for t in tramites:
        t.first_seen = t.updated_at = stamp
    return Catalog({t.key: t for t in tramites}, "packaged:tramites_sample.csv")


def load_catalog(data_dir: Path | str | None) -> Catalog:
    """The imported catalogue of ``data_dir``, or the packaged sample when nothing was imported."""
    if data_dir is not None:
        path = catalog_path(data_dir)
        if path.exists():
            return Catalog.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return load_sample()


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge_import(existing: dict[str, Tramite], incoming: Iterable[Tramite], at: str) -> dict[str, int]:
    """Apply an import to ``existing`` in place; return the counts of what changed."""
    counts = {"added": 0, "updated": 0, "unchanged": 0, "removed": 0, "restored": 0}
    seen: set[str] = set()
    for new in incoming:
        seen.add(new.key)
        old = existing.get(new.key)
        if old is None:
            new.first_seen = new.updated_at = at
            existing[new.key] = new
            counts["added"] += 1
            continue
        restored = old.removed_at is not None
        changed = old.content() != new.content()
        new.first_seen = old.first_seen or at
        new.updated_at = at if changed or restored else old.updated_at
        existing[new.key] = new
        counts["restored" if restored else "updated" if changed else "unchanged"] += 1
    for key, old in existing.items():
        if key not in seen and old.removed_at is None:
            old.removed_at = at
            counts["removed"] += 1
    return counts


def import_catalog(data_dir: Path | str, csv_path: Path | str) -> ImportReport:
    """Import (or re-import) a catalogue CSV into ``data_dir``; returns what changed."""
    incoming, parse_report = parse_catalog(csv_path)
    if not incoming:
        raise CatalogError(f"{csv_path}: no trámite found")
    path = catalog_path(data_dir)
    current = load_catalog(data_dir) if path.exists() else Catalog({}, "")
    at = _now()
    counts = merge_import(current.tramites, incoming, at)
    report = ImportReport(
        source=str(csv_path),
        at=at,
        total=len(incoming),
        skipped=parse_report.skipped,
        duplicates=len(parse_report.duplicates),
        **counts,
    )
    current.source = str(csv_path)
    current.history.append(report.to_dict())
    _write_json_atomic(path, current.to_dict())
    return report
