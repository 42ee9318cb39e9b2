"""Sign-in and sign-out pages."""

from __future__ import annotations

from aiohttp import web

from inbox.domain import utcnow
from web import auth
from web.i18n import gettext as _
from web.keys import RUNTIME
from web.templating import render


@auth.public
async def login_page(request: web.Request) -> web.StreamResponse:
    if auth.current_user(request):
        raise web.HTTPSeeOther(auth.safe_next(request.query.get("next")))
    return render(request, "login.html", {"next": auth.safe_next(request.query.get("next")), "email": "",
                                          "error": None})


@auth.public
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    nxt = auth.safe_next(str(form.get("next", "")))
    user, reason = await auth.authenticate(request, email, password)
    if user is None:
        if reason == "throttled":
            error, status = _("Demasiados intentos fallidos. Espere un minuto e inténtelo de nuevo."), 429
        else:
            error, status = _("Correo o contraseña incorrectos."), 401
        response = render(request, "login.html", {"next": nxt, "email": email, "error": error}, status=status)
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response
    response = web.Response(status=303, headers={"Location": nxt})
    await auth.start_session(request, response, user["email"])
    store = request.app[RUNTIME].store
    presence = await store.get_doc("presence", user["email"]) or {}
    await store.put_doc("presence", user["email"], {**presence, "online": True, "last_seen": utcnow().isoformat()})
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "/login"})
    user = auth.current_user(request)
    await auth.end_session(request, response)
    if user:
        await request.app[RUNTIME].store.put_doc("presence", user["email"], {
            "online": False, "last_seen": utcnow().isoformat(), "viewing": None, "typing": None})
    return response


def setup_login(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
