"""Translations, CSP-compatible templates, services adapters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from web import i18n, services
from web.templating import sanitize_html

WEB = Path(__file__).parents[2] / "web"


def test_gettext_uses_a_catalogue_and_falls_back_to_spanish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "catalog", lambda locale: {"Bandeja": "Inbox", "%(num)s ticket": ["%(num)s ticket",
                                                                                                 "%(num)s tickets"]})
    assert i18n.gettext("Bandeja", "en") == "Inbox"
    assert i18n.gettext("Salir", "en") == "Salir"
    assert i18n.ngettext("%(num)s ticket", "%(num)s tickets", 3, "en") == "3 tickets"
    assert i18n.gettext("Hola %(name)s", name="Ana") == "Hola Ana"


def test_templates_have_no_inline_scripts_or_styles() -> None:
    for path in WEB.rglob("templates/*.html"):
        html = path.read_text(encoding="utf-8")
        for m in re.finditer(r"<script([^>]*)>(.*?)</script>", html, re.S):
            assert "src=" in m.group(1) and not m.group(2).strip(), path
        assert not re.search(r"\sstyle\s*=", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path


def test_every_visible_template_string_goes_through_gettext() -> None:
    """Text between tags is either an expression or whitespace/punctuation: no untranslated literals."""
    for path in (WEB / "templates").glob("*.html"):
        html = path.read_text(encoding="utf-8")
        html = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", "", html, flags=re.S)
        html = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
        for text in re.findall(r">([^<]+)<", html):
            letters = re.sub(r"[\s#·:*()/.,+»«?|—-]|&[a-z]+;", "", text)
            assert not re.search(r"[A-Za-zÁÉÍÓÚáéíóúñÑ]{2,}", letters), (path.name, text.strip())


def test_sanitize_html_strips_scripts_handlers_and_remote_images() -> None:
    out = str(sanitize_html('<p onclick="x()">hola<script>alert(1)</script><img src="https://t.example/p.gif" '
                            'alt="p"><a href="javascript:alert(1)">a</a><a href="data:text/html,x">b</a>'
                            '<iframe src="https://x"></iframe><style>p{}</style></p>'))
    assert out == '<p>hola<img alt="p"><a rel="noopener noreferrer nofollow">a</a>' \
                  '<a rel="noopener noreferrer nofollow">b</a></p>'


def test_catalogue_adapter_accepts_objects_dicts_and_csv_names() -> None:
    class T:
        key, name, description, requirements, has_cost, cost, channels, url = (
            "k1", "Pasaporte", "Documento de viaje", "Cédula", "1", "", "Presencial", "https://www.gub.uy/x")

    d = services.tramite_dict(T())
    assert d["name"] == "Pasaporte" and d["cost"].startswith("Tiene costo")
    d = services.tramite_dict({"nombre_tramite": "Partida", "ques_es": "Copia", "tiene_costo": "0"}, "k2")
    assert d == {**d, "key": "k2", "name": "Partida", "description": "Copia", "cost": "Sin costo."}
