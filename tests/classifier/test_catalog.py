import csv
import io
import json
from pathlib import Path

import pytest

from classifier.catalog import CatalogError, catalog_path, html_to_text, import_catalog, load_catalog, parse_catalog
from classifier.synthetic import FULL_COLUMNS, full_layout_csv, sample_rows


def test_packaged_sample_loads_with_keys_and_hierarchy() -> None:
    cat = load_catalog(None)
    active = cat.active()
    assert len(active) == 247
    assert cat.source.startswith("packaged")
    with_id = [t for t in active if t.id]
    assert len(with_id) == 94 and all(t.key == t.id for t in with_id)
    assert all(t.key == t.url for t in active if not t.id)
    assert cat.get("628").organismo == "Ministerio del Interior"


def test_fallback_to_sample_when_nothing_imported(tmp_path: Path) -> None:
    assert len(load_catalog(tmp_path).active()) == 247


def test_html_is_stripped_with_a_parser() -> None:
    assert html_to_text("<ul>\n<li>Cédula &amp; foto</li><li>Pago</li></ul>") == "Cédula & foto Pago"
    assert html_to_text("<p>a<script>alert(1)</script> b</p>") == "a b"
    assert html_to_text("3 < 4 y 5 > 2") == "3 < 4 y 5 > 2"


def test_full_layout_quirks(tmp_path: Path) -> None:
    path = tmp_path / "full.csv"
    path.write_text(full_layout_csv(300, duplicates=4), encoding="utf-8")
    assert len(FULL_COLUMNS) == 31
    tramites, report = parse_catalog(path)
    assert report.rows == 304 and len(report.duplicates) == 4 and report.loaded == 300
    assert len(report.extra_columns) == 21
    assert all("<" not in t.description and "\n" not in t.requirements for t in tramites)
    assert any("&" in t.requirements for t in tramites)  # entities decoded
    no_id = [t for t in tramites if not t.id]
    assert no_id and all(t.key == t.url for t in no_id)
    assert all(t.description for t in tramites if t.key in report.duplicates)  # first row kept, gaps filled
    assert tramites[0].extra["horarios"] == "Lunes a viernes de 9:00 a 17:00"


def test_missing_columns_are_tolerated_and_non_catalogue_rejected(tmp_path: Path) -> None:
    p = tmp_path / "min.csv"
    p.write_text("url;nombre_tramite\nhttps://x.uy/t1;Trámite uno\n;sin clave\n", encoding="utf-8")
    tramites, report = parse_catalog(p)
    assert [t.key for t in tramites] == ["https://x.uy/t1"] and report.skipped == 1
    assert "institucion_nombre" in report.missing_columns
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(CatalogError):
        parse_catalog(bad)


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def test_reimport_updates_in_place_and_keeps_removed_history(tmp_path: Path) -> None:
    rows = sample_rows()[:20]
    first = tmp_path / "v1.csv"
    _write(first, rows)
    r1 = import_catalog(tmp_path / "data", first)
    assert (r1.added, r1.removed) == (20, 0)

    changed = [dict(r) for r in rows[1:]]  # row 0 disappears
    changed[0]["nombre_tramite"] = "Nombre nuevo"
    second = tmp_path / "v2.csv"
    _write(second, changed)
    r2 = import_catalog(tmp_path / "data", second)
    assert (r2.added, r2.updated, r2.unchanged, r2.removed) == (0, 1, 18, 1)

    cat = load_catalog(tmp_path / "data")
    gone_key = rows[0]["id"] or rows[0]["url"]
    assert cat.tramites[gone_key].removed_at is not None  # kept, marked
    assert len(cat.active()) == 19 and len(cat.tramites) == 20
    kept_key = changed[0]["id"] or changed[0]["url"]
    assert cat.tramites[kept_key].name == "Nombre nuevo"
    assert len(cat.history) == 2

    r3 = import_catalog(tmp_path / "data", first)  # the removed one comes back
    assert r3.restored == 1 and load_catalog(tmp_path / "data").tramites[gone_key].removed_at is None
    assert json.loads(catalog_path(tmp_path / "data").read_text())["source"].endswith("v1.csv")
