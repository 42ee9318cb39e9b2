"""Accounts, sign-in, sessions, throttling and roles."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.web.conftest import csrf_of, sign_in
from web import auth
from web.app import create_app
from workers.runtime import Runtime, close_runtime, open_runtime, settings_from


async def test_login_logout_and_cookie_flags(client: TestClient) -> None:
    token = await csrf_of(client, "/login")
    r = await client.post("/login", data={"email": "ANA@example.uy ", "password": "contraseña-segura-1",
                                          "csrf_token": token, "next": "/contacts"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/contacts"
    cookie = next(v for v in r.headers.getall("Set-Cookie") if v.startswith(auth.SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    r = await client.get("/inbox")
    assert r.status == 200 and "Ana Pérez" in await r.text()
    token = await csrf_of(client, "/inbox")
    r = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 303
    r = await client.get("/inbox", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/login")


async def test_session_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    rt = await open_runtime(settings_from(None, **{"core.data_dir": str(tmp_path), "web.secure_cookies": True}))
    try:
        await auth.create_user(rt.store, "x@example.uy", "agent", "una-clave-larga")
        async with TestClient(TestServer(create_app(rt))) as c:
            r = await c.get("/login")
            token = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
            # the anonymous cookie is Secure too, so the test client (plain http) keeps it only if we pass it on
            anon = r.cookies[auth.ANON_COOKIE].value
            r = await c.post("/login", data={"email": "x@example.uy", "password": "una-clave-larga",
                                             "csrf_token": token}, cookies={auth.ANON_COOKIE: anon},
                             allow_redirects=False)
            assert r.status == 303
            cookie = next(v for v in r.headers.getall("Set-Cookie") if v.startswith(auth.SESSION_COOKIE))
            assert "Secure" in cookie and "HttpOnly" in cookie
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await close_runtime(rt)


async def test_wrong_password_and_throttling(client: TestClient) -> None:
    for _ in range(5):
        token = await csrf_of(client, "/login")
        r = await client.post("/login", data={"email": "ana@example.uy", "password": "mal", "csrf_token": token})
        assert r.status == 401
        assert "incorrectos" in await r.text()
    token = await csrf_of(client, "/login")
    r = await client.post("/login", data={"email": "ana@example.uy", "password": "contraseña-segura-1",
                                          "csrf_token": token}, allow_redirects=False)
    assert r.status == 429 and r.headers["Retry-After"] == "60"


async def test_disabled_user_loses_access(client: TestClient, app_rt: Runtime) -> None:
    await sign_in(client, "beto@example.uy")
    assert (await client.get("/inbox")).status == 200
    doc = await app_rt.store.get_doc("users", "beto@example.uy")
    await app_rt.store.put_doc("users", "beto@example.uy", {**doc, "active": False})
    client.app[auth.AUTH].users.clear()
    r = await client.get("/inbox", allow_redirects=False)
    assert r.status == 303


async def test_passwords_are_argon2_hashes(app_rt: Runtime) -> None:
    doc = await app_rt.store.get_doc("users", "ana@example.uy")
    assert doc["password_hash"].startswith("$argon2id$")
    assert doc["role"] == "agent" and doc["queues"] == ["Ministerio del Interior"] and doc["active"] is True


@pytest.mark.parametrize(("role", "needed", "allowed"), [
    ("agent", "agent", True), ("agent", "supervisor", False), ("supervisor", "agent", True),
    ("supervisor", "admin", False), ("admin", "supervisor", True), ("admin", "agent", True),
])
def test_role_order(role: str, needed: str, allowed: bool) -> None:
    assert auth.has_role({"role": role, "active": True}, needed) is allowed


async def test_require_role_answers(app_rt: Runtime) -> None:
    @auth.require_role("supervisor")
    async def supervisors(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def make_app() -> web.Application:  # a route added by a plugin, as web.quality does
        app = create_app(app_rt)
        app.router.add_get("/only-supervisors", supervisors)
        return app

    async with TestClient(TestServer(make_app())) as c:
        r = await c.get("/only-supervisors", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login?next=")
        r = await c.get("/only-supervisors", headers={"Accept": "application/json"}, allow_redirects=False)
        assert r.status == 401
        await sign_in(c, "ana@example.uy")
        assert (await c.get("/only-supervisors")).status == 403
    for email in ("sofia@example.uy", "admin@example.uy"):
        async with TestClient(TestServer(make_app())) as c:
            await sign_in(c, email)
            r = await c.get("/only-supervisors")
            assert r.status == 200 and await r.text() == "ok"


def test_secret_key_is_generated_once_with_0600(tmp_path: Path) -> None:
    key = auth.load_secret_key("", tmp_path)
    path = tmp_path / "web_secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.load_secret_key("", tmp_path) == key and len(key) >= 48
    assert auth.load_secret_key("from-env", tmp_path) == b"from-env"


def test_cli_user_add_reads_the_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from workers.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("una-clave-muy-larga\n"))
    rc = main(["user", "add", "Nuevo@Example.uy", "--role", "supervisor", "--name", "Nuevo Usuario",
               "--queues", "MEF, MI", "--password-stdin", "--data-dir", str(tmp_path)])
    assert rc == 0, capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("corta\n"))
    assert main(["user", "add", "otro@example.uy", "--role", "agent", "--password-stdin",
                 "--data-dir", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["user", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nuevo@example.uy" in out and "supervisor" in out and "MEF, MI" in out and "otro@" not in out
