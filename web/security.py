"""Response headers every page gets, and HTML error pages."""

from __future__ import annotations

from aiohttp import web

from web import auth
from web.i18n import gettext as _

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DOWNLOAD_CSP = "sandbox; default-src 'none'"


def make_security_headers(secure: bool):
    async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if secure:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if not request.path.startswith("/static/") and "Cache-Control" not in h:
            h["Cache-Control"] = "no-store"

    return security_headers


_TITLES = {
    400: "Solicitud inválida",
    401: "Es necesario ingresar",
    403: "Acceso denegado",
    404: "Página no encontrada",
    405: "Método no permitido",
    413: "El envío es demasiado grande",
    429: "Demasiadas solicitudes",
}
_MESSAGES = {
    400: "La solicitud no es válida.",
    401: "Ingrese con su cuenta para continuar.",
    403: "No tiene permiso para hacer esto, o el formulario venció. Recargue la página e inténtelo de nuevo.",
    404: "La página que busca no existe.",
    405: "Esta dirección no acepta ese método.",
    413: "Los archivos superan el tamaño máximo permitido.",
    429: "Hizo demasiados intentos. Espere un momento e inténtelo de nuevo.",
}


@web.middleware
async def error_pages(request: web.Request, handler) -> web.StreamResponse:
    """HTML error pages for browsers (JSON and API clients keep the plain answer)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status not in _TITLES or auth.wants_json(request) or \
                exc.content_type == "application/json" or request.method == "HEAD":
            raise
        from web.templating import _context, render

        try:
            ctx = await _context(request)
        except Exception:  # noqa: BLE001 - an error page must never fail
            ctx = {}
        ctx.update(title=_(_TITLES[exc.status]), message=_(_MESSAGES[exc.status]))
        response = render(request, "error.html", ctx, status=exc.status)
        for key in ("Set-Cookie", "Retry-After", "Allow"):
            for value in exc.headers.getall(key, []):
                response.headers.add(key, value)
        return response
