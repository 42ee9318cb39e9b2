"""Translations, gettext-style. Message ids are the Spanish (Uruguay) texts themselves; a catalogue for another
language is a JSON file ``web/locale/<lang>.json`` mapping each id to its translation (``{"Ingresar": "Sign in"}``;
plural forms as ``{"id": ["one", "other"]}``). Missing entries fall back to the Spanish id, so every string written
with ``_()`` / ``ngettext()`` in Python or templates is translatable.

In templates (Jinja2's i18n extension, new-style): ``{{ _("Hola, %(name)s", name=user.name) }}`` — arguments are
formatted after translation and autoescaped. In Python: ``from web.i18n import gettext as _``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

DEFAULT_LOCALE = "es-UY"


@lru_cache(maxsize=8)
def catalog(locale: str) -> dict[str, Any]:
    if locale == DEFAULT_LOCALE:
        return {}
    name = locale.replace("-", "_") + ".json"
    try:
        text = resources.files("web").joinpath("locale", name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {}
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


def gettext(message: str, locale: str = DEFAULT_LOCALE, **variables: Any) -> str:
    found = catalog(locale).get(message, message)
    text = found if isinstance(found, str) else message
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, locale: str = DEFAULT_LOCALE, **variables: Any) -> str:
    found = catalog(locale).get(singular)
    if isinstance(found, list) and len(found) >= 2:
        text = found[0] if n == 1 else found[1]
    else:
        text = singular if n == 1 else plural
    variables.setdefault("num", n)
    return text % variables


_ = gettext


def translator(locale: str = DEFAULT_LOCALE) -> tuple[Any, Any]:
    """(gettext, ngettext) bound to a locale, the shape Jinja2's ``install_gettext_callables`` expects."""

    def g(message: str, **variables: Any) -> str:
        return gettext(message, locale, **variables)

    def n(singular: str, plural: str, num: int, **variables: Any) -> str:
        return ngettext(singular, plural, num, locale, **variables)

    return g, n
