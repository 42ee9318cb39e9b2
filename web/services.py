"""Defensive adapters to the services other packages register in ``rt.services`` (classifier, catalogue).

Assumed interfaces (everything is optional; the pages work without either):

- ``rt.services["catalog"]``: an object with ``get(key) -> Tramite | dict | None`` and ``active() -> list`` (the shape
  of ``classifier.catalog.Catalog``). A trámite exposes ``key, name, agency, organismo, url, description`` (qué es),
  ``requirements``, ``has_cost``, ``cost``, ``channels`` as attributes or dict keys (the published CSV column names
  ``nombre_tramite, ques_es, requisitos_generales, valor, canales_de_atencion`` are accepted too). Without the
  service, the catalogue imported in the data directory (or the packaged sample) is loaded through
  ``classifier.catalog.load_catalog`` when that module is importable.
- ``rt.services["classifier"]``: an object with ``predict(text, subject=None, k=3)`` (sync or async) returning a
  ``classifier.types.Prediction`` (``tramite``/``agency`` candidate lists with ``key, name, organismo, agency, p``,
  ``terms``, ``model_version``) or its ``to_dict()``.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from web.i18n import gettext
from workers.runtime import Runtime

log = logging.getLogger(__name__)

_ALIASES = {
    "key": ("key", "id"),
    "name": ("name", "nombre_tramite", "nombre"),
    "description": ("description", "ques_es", "que_es", "qué_es"),
    "requirements": ("requirements", "requisitos_generales", "requisitos"),
    "has_cost": ("has_cost", "tiene_costo"),
    "cost": ("cost", "valor", "costo"),
    "channels": ("channels", "canales_de_atencion", "canales"),
    "url": ("url", "link"),
    "agency": ("agency", "institucion_nombre"),
    "organismo": ("organismo",),
    "email": ("email", "email_de_consulta"),
}


def _field(obj: Any, name: str) -> str:
    for alias in _ALIASES.get(name, (name,)):
        value = obj.get(alias) if isinstance(obj, dict) else getattr(obj, alias, None)
        if value not in (None, ""):
            return str(value)
    return ""


_YES = {"1", "si", "sí", "s", "yes", "true", "y"}
_NO = {"0", "no", "n", "false"}


def tramite_dict(obj: Any, key: str | None = None) -> dict[str, str]:
    out = {name: _field(obj, name) for name in _ALIASES}
    if key and not out["key"]:
        out["key"] = key
    flag = out["has_cost"].strip().lower()
    if not out["cost"]:  # the catalogue's "tiene_costo" is 1/0 (or sí/no): say it in words
        if flag in _YES:
            out["cost"] = gettext("Tiene costo (consulte el monto en el enlace).")
        elif flag in _NO:
            out["cost"] = gettext("Sin costo.")
    return out


@dataclass
class _Cached:
    at: float
    value: Any


_fallback: dict[str, _Cached] = {}


def catalog(rt: Runtime) -> Any | None:
    service = rt.services.get("catalog")
    if service is not None:
        return service
    key = str(rt.data_dir)
    hit = _fallback.get(key)
    if hit is not None and time.monotonic() - hit.at < 300:
        return hit.value
    value = None
    try:
        from classifier.catalog import load_catalog

        value = load_catalog(rt.data_dir)
    except Exception:  # noqa: BLE001 - the catalogue is optional for the web
        log.warning("no catalogue available", exc_info=True)
    _fallback[key] = _Cached(time.monotonic(), value)
    return value


def lookup_tramite(rt: Runtime, key: str | None) -> dict[str, str] | None:
    if not key:
        return None
    cat = catalog(rt)
    if cat is None:
        return None
    try:
        getter = getattr(cat, "get", None)
        obj = getter(key) if getter else cat[key]
    except Exception:  # noqa: BLE001
        return None
    return tramite_dict(obj, key) if obj is not None else None


_lists: dict[int, _Cached] = {}


def list_tramites(rt: Runtime, limit: int = 5000) -> list[dict[str, str]]:
    """The active trámites sorted by name (cached a minute per catalogue object)."""
    cat = catalog(rt)
    if cat is None:
        return []
    hit = _lists.get(id(cat))
    if hit is not None and time.monotonic() - hit.at < 60 and hit.value[0] is cat:
        return hit.value[1]
    try:
        items = cat.active() if hasattr(cat, "active") else list(cat)
    except Exception:  # noqa: BLE001
        return []
    out = [tramite_dict(t) for t in list(items)[:limit]]
    result = sorted((t for t in out if t["key"]), key=lambda t: t["name"].lower())
    if len(_lists) > 16:
        _lists.clear()
    _lists[id(cat)] = _Cached(time.monotonic(), (cat, result))
    return result


def tramite_options(rt: Runtime) -> Markup:
    """``<option>`` elements of every active trámite, rendered once per catalogue (for the pages' datalists)."""
    items = list_tramites(rt)
    key = ("options", id(items))
    hit = _options.get(key)
    if hit is None:
        hit = Markup("").join(Markup('<option value="{}">{} — {}</option>').format(t["key"], t["name"], t["agency"])
                              for t in items)
        _options.clear()
        _options[key] = hit
    return hit


_options: dict[tuple[str, int], Markup] = {}


async def predict(rt: Runtime, subject: str | None, text: str, k: int = 3) -> dict[str, Any] | None:
    """Top-k trámites/agencies with probabilities and the terms behind them, or None without a classifier."""
    clf = rt.services.get("classifier")
    if clf is None or not hasattr(clf, "predict"):
        return None
    try:
        try:
            result = clf.predict(text, subject=subject, k=k)
        except TypeError:
            result = clf.predict(text)
        if inspect.isawaitable(result):
            result = await result
    except Exception:  # noqa: BLE001 - a model failure must not break the ticket page
        log.warning("classifier failed", exc_info=True)
        return None
    if result is None:
        return None
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(data, dict):
        return None

    def cands(items: Any) -> list[dict[str, Any]]:
        out = []
        for c in list(items or [])[:k]:
            c = c.to_dict() if hasattr(c, "to_dict") else c
            if isinstance(c, dict):
                p = c.get("p", c.get("confidence", c.get("score")))
                out.append({"key": c.get("key") or c.get("value"), "name": c.get("name") or c.get("label"),
                            "agency": c.get("agency"), "organismo": c.get("organismo"),
                            "p": float(p) if p is not None else None})
        return out

    return {"tramite": cands(data.get("tramite")), "agency": cands(data.get("agency")),
            "terms": list(data.get("terms") or data.get("why") or [])[:12],
            "model_version": data.get("model_version")}
