"""The Jinja2 environment (through aiohttp_jinja2) shared by every page.

Templates ``{% extends "base.html" %}`` and fill the blocks ``title``, ``head``, ``content`` and ``scripts``
(scripts are files under /static/: the Content-Security-Policy forbids inline scripts and styles). Globals available
in every template: ``_()`` / ``ngettext()`` (translations, web.i18n), ``user`` (current user or None),
``csrf_token()``, ``csrf_field()``, ``static(path)``, ``has_role(role)``, ``request``, ``nav`` (header links).
Another package adds its own template folder with ``add_template_dir(app, path)`` and renders with
``aiohttp_jinja2.render_template(name, request, context)`` or ``render(request, name, context)`` below.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import nh3
from aiohttp import web
from markupsafe import Markup

from inbox.channels import CHANNEL_LABELS
from web import auth
from web.i18n import DEFAULT_LOCALE, gettext, translator
from web.keys import NAV

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
TZ = ZoneInfo("America/Montevideo")

STATUS_LABELS = {
    "new": "Nuevo",
    "open": "Abierto",
    "pending": "Pendiente",
    "resolved": "Resuelto",
    "closed": "Cerrado",
}
PRIORITY_LABELS = {"low": "Baja", "normal": "Normal", "high": "Alta", "urgent": "Urgente"}
ROLE_LABELS = {"agent": "Agente", "supervisor": "Supervisor/a", "admin": "Administrador/a"}

# Tags and attributes kept in displayed message HTML (defence in depth: adapters already sanitized it).
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "*": {"lang", "dir"},
}


def _drop_remote_images(tag: str, attr: str, value: str) -> str | None:
    """Remote images are tracking pixels or worse: never fetched while an agent reads (the CSP blocks them too)."""
    if tag == "img" and attr == "src" and not value.startswith("data:image/"):
        return None
    if attr == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def sanitize_html(html: str | None) -> Markup:
    """Clean HTML once more on output (defence in depth: adapters already sanitized it)."""
    if not html:
        return Markup("")
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=_drop_remote_images,
    )
    return Markup(cleaned)


def local_time(value: datetime | str | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(TZ).strftime(fmt)


def _static_version(path: str) -> str:
    try:
        data = (STATIC / path).read_bytes()
    except OSError:
        return "0"
    return hashlib.sha256(data).hexdigest()[:10]


_versions: dict[str, str] = {}


def static_url(path: str) -> str:
    if path not in _versions:
        _versions[path] = _static_version(path)
    return f"/static/{path}?v={_versions[path]}"


async def _context(request: web.Request) -> dict[str, Any]:
    user = auth.current_user(request)
    nav = [item for item in request.app.get(NAV, []) if user and auth.has_role(user, item[2])]
    return {
        "user": user,
        "nav": nav,
        "csrf_token": lambda: auth.csrf_token(request),
        "csrf_field": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">').format(
            auth.csrf_token(request)),
        "has_role": lambda *roles: auth.has_role(user, *roles),
        "lang": "es-UY",
    }


def add_template_dir(app: web.Application, directory: str | Path) -> None:
    """Let another package's templates be found (searched before the built-in ones)."""
    env = aiohttp_jinja2.get_env(app)
    loader = env.loader
    assert isinstance(loader, jinja2.ChoiceLoader)
    loader.loaders = [jinja2.FileSystemLoader(str(directory)), *loader.loaders]


def add_nav(app: web.Application, path: str, label: str, role: str = "agent") -> None:
    """A header link shown to users holding ``role`` (label is a msgid, translated when shown)."""
    app.setdefault(NAV, []).append((path, label, role))


def setup_templates(app: web.Application, locale: str = DEFAULT_LOCALE) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES))]),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        context_processors=[aiohttp_jinja2.request_processor, _context],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are files of the installed package: no stat() per render
    )
    g, n = translator(locale)
    env.install_gettext_callables(g, n, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        static=static_url,
        channel_label=lambda c: gettext(CHANNEL_LABELS.get(c, c or ""), locale),
        status_label=lambda s: gettext(STATUS_LABELS.get(s, s or ""), locale),
        priority_label=lambda p: gettext(PRIORITY_LABELS.get(p, p or ""), locale),
        role_label=lambda r: gettext(ROLE_LABELS.get(r, r or ""), locale),
        CHANNEL_LABELS=CHANNEL_LABELS,
        STATUS_LABELS=STATUS_LABELS,
        PRIORITY_LABELS=PRIORITY_LABELS,
    )
    env.filters.update(safe_html=sanitize_html, local_time=local_time)
    app.setdefault(NAV, [])
    return env


def render(request: web.Request, name: str, context: dict[str, Any] | None = None, *, status: int = 200,
           headers: dict[str, str] | None = None) -> web.Response:
    response = aiohttp_jinja2.render_template(name, request, context or {}, status=status)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response
