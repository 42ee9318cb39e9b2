"""Accounts, sessions, CSRF and role checks for every page of the web app.

The API other packages use (see docs/web.md):

- ``current_user(request) -> dict | None``: the signed-in user's ``users`` document (without ``password_hash``).
- ``@require_role("agent")`` on ``async def handler(request)``: anonymous HTML requests are redirected to
  ``/login?next=...``, anonymous JSON/API requests get 401, a signed-in user without the role gets 403.
  Roles are ordered agent < supervisor < admin: a supervisor passes an agent check, an admin passes every check.
- ``csrf_token(request) -> str`` and ``check_csrf(request, form)``; every unsafe request (POST, PUT, PATCH, DELETE)
  is also checked by the middleware, so a form only has to carry ``{{ csrf_field() }}`` (or a fetch the
  ``X-CSRF-Token`` header).
- ``@public`` marks a handler reachable without signing in (e.g. a public transparency page). Everything else is
  refused to anonymous users by the middleware (default deny), whether or not it uses ``require_role``.
  Always public: ``/healthz``, ``/login``, ``/contacto``, ``/static/``; ``/api/`` checks its bearer token and
  ``/webhooks/`` its channel's signature instead of a session (and neither needs a CSRF token).

Users live in the ``users`` documents (key: lower-case email), sessions in ``sessions`` (key: sha256 of the cookie's
random id, so a leaked database does not leak usable cookies), presence in ``presence``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from inbox.domain import utcnow
from inbox.store.base import Store
from web.keys import ANON_ID, ANON_NEW, AUTH, RUNTIME, SESSION_KEY, USER

log = logging.getLogger(__name__)

ROLES = ("agent", "supervisor", "admin")
ROLE_RANK = {role: i for i, role in enumerate(ROLES, start=1)}
SESSION_COOKIE = "inbox_session"
ANON_COOKIE = "inbox_anon"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/contacto", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
TOKEN_PREFIXES = ("/api/", "/webhooks/")  # own authentication (bearer token / channel signature), no session, no CSRF
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
CACHE_TTL_S = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (64 MiB, t=3, p=4)
_dummy_hash: str | None = None


def configure_hasher(hasher: PasswordHasher) -> None:
    """Replace the argon2 parameters (tests use cheap ones; existing hashes are upgraded at the next sign-in)."""
    global _hasher, _dummy_hash
    _hasher, _dummy_hash = hasher, None


def _dummy() -> str:
    """A hash to verify against when the account does not exist, so both cases take the same time."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not a real password: equalizes the time of unknown accounts")
    return _dummy_hash


# -- roles ---------------------------------------------------------------------------------------------------------
def has_role(user: dict[str, Any] | None, *roles: str) -> bool:
    """True when ``user`` holds one of ``roles`` or a higher one (agent < supervisor < admin)."""
    if not user or not user.get("active", True):
        return False
    rank = ROLE_RANK.get(user.get("role", ""), 0)
    needed = min((ROLE_RANK[r] for r in roles), default=ROLE_RANK["agent"])
    return rank >= needed


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without signing in."""
    handler.__inbox_public__ = True  # type: ignore[attr-defined]
    return handler


def csrf_exempt(handler: Handler) -> Handler:
    """Mark a handler whose unsafe requests authenticate another way (a signed webhook)."""
    handler.__inbox_csrf_exempt__ = True  # type: ignore[attr-defined]
    return handler


def wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    if "text/event-stream" in accept:
        return True
    if request.headers.get("X-Requested-With"):
        return True
    return "application/json" in accept and "text/html" not in accept


def login_url(request: web.Request) -> str:
    target = request.path_qs if request.method == "GET" else "/"
    return "/login?next=" + quote(target, safe="")


def _unauthenticated(request: web.Request) -> web.HTTPException:
    if wants_json(request):
        return web.HTTPUnauthorized(text='{"error": "sign in required"}', content_type="application/json")
    return web.HTTPSeeOther(login_url(request))


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator for ``async def handler(request)``: signed in and holding one of ``roles`` (or a higher one)."""
    for r in roles:
        if r not in ROLE_RANK:
            raise ValueError(f"unknown role {r!r}")

    def deco(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            user = current_user(request)
            if user is None:
                raise _unauthenticated(request)
            if not has_role(user, *roles):
                if wants_json(request):
                    raise web.HTTPForbidden(text='{"error": "forbidden"}', content_type="application/json")
                raise web.HTTPForbidden(text="403: forbidden")
            return await handler(request)

        wrapper.__inbox_roles__ = roles  # type: ignore[attr-defined]
        return wrapper

    return deco


def current_user(request: web.Request) -> dict[str, Any] | None:
    """The signed-in user's ``users`` document (no password hash), or None."""
    return request.get(USER)


# -- secret key ----------------------------------------------------------------------------------------------------
def load_secret_key(configured: str, data_dir: Path) -> bytes:
    """``web.secret_key`` from the environment, else a key generated once per data directory (file mode 0600)."""
    if configured:
        return configured.encode()
    path = Path(data_dir) / "web_secret_key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


# -- users ---------------------------------------------------------------------------------------------------------
def normalize_email(email: str) -> str:
    return email.strip().lower()


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "password_hash"}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def create_user(
    store: Store,
    email: str,
    role: str,
    password: str,
    *,
    name: str | None = None,
    queues: list[str] | None = None,
    capacity: int = 10,
    active: bool = True,
) -> dict[str, Any]:
    """Create or replace a user (a new password hash each time). Returns the document without the hash."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise ValueError(f"not an email address: {email!r}")
    if role not in ROLE_RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    existing = await store.get_doc("users", email) or {}
    doc = {
        "email": email,
        "name": name or existing.get("name") or email.split("@")[0],
        "role": role,
        "password_hash": await asyncio.to_thread(hash_password, password),
        "queues": list(queues if queues is not None else existing.get("queues", [])),
        "capacity": int(capacity),
        "active": active,
        "created_at": existing.get("created_at") or utcnow().isoformat(),
    }
    await store.put_doc("users", email, doc)
    return public_user(doc)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# -- throttling ----------------------------------------------------------------------------------------------------
class RateLimiter:
    """Sliding-window counter per key (in process memory)."""

    def __init__(self, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._hits[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        q = self._trim(key, time.monotonic())
        if not q:
            self._hits.pop(key, None)
            return False
        return len(q) >= self.limit

    def hit(self, key: str) -> None:
        now = time.monotonic()
        self._trim(key, now).append(now)
        if len(self._hits) > 100_000:  # bound memory under a spray of keys
            for k in list(self._hits)[:50_000]:
                self._hits.pop(k, None)

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)


# -- state ---------------------------------------------------------------------------------------------------------
@dataclass
class AuthState:
    secret: bytes
    secure_cookies: bool
    login_limiter: RateLimiter
    sessions: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)
    users: dict[str, tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    def sign(self, *parts: str) -> str:
        return hmac.new(self.secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def _state(request: web.Request) -> AuthState:
    return request.app[AUTH]


def _sid_key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def get_user(request: web.Request, email: str) -> dict[str, Any] | None:
    """A user's document (with hash), cached a few seconds per process."""
    state = _state(request)
    now = time.monotonic()
    hit = state.users.get(email)
    if hit and now - hit[0] < CACHE_TTL_S:
        return hit[1]
    doc = await request.app[RUNTIME].store.get_doc("users", email)
    state.users[email] = (now, doc)
    return doc


async def _load_session(request: web.Request) -> None:
    request[USER] = None
    request[SESSION_KEY] = None
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 100:
        return
    state = _state(request)
    key = _sid_key(sid)
    now = time.monotonic()
    hit = state.sessions.get(key)
    store = request.app[RUNTIME].store
    if hit and now - hit[0] < CACHE_TTL_S:
        session = hit[1]
    else:
        session = await store.get_doc("sessions", key)
        state.sessions[key] = (now, session)
        if len(state.sessions) > 50_000:
            state.sessions.clear()
    if not session:
        return
    at = utcnow()
    try:
        from datetime import datetime

        seen = datetime.fromisoformat(session["seen_at"])
        created = datetime.fromisoformat(session["created_at"])
    except (KeyError, ValueError):
        return
    if at - seen > SESSION_IDLE or at - created > SESSION_MAX:
        await store.delete_doc("sessions", key)
        state.sessions.pop(key, None)
        return
    user = await get_user(request, session["email"])
    if not user or not user.get("active", True):
        return
    if at - seen > timedelta(minutes=5):  # keep the idle clock fresh without a write per request
        session = {**session, "seen_at": at.isoformat()}
        await store.put_doc("sessions", key, session)
        state.sessions[key] = (now, session)
    request[USER] = public_user(user)
    request[SESSION_KEY] = key


async def start_session(request: web.Request, response: web.StreamResponse, email: str) -> None:
    """A fresh session id at every sign-in (no fixation)."""
    state = _state(request)
    old = request.cookies.get(SESSION_COOKIE)
    store = request.app[RUNTIME].store
    if old and len(old) <= 100:
        await store.delete_doc("sessions", _sid_key(old))
        state.sessions.pop(_sid_key(old), None)
    sid = secrets.token_urlsafe(32)
    now = utcnow().isoformat()
    await store.put_doc("sessions", _sid_key(sid), {"email": email, "created_at": now, "seen_at": now,
                                                     "ip": client_ip(request)})
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", secure=state.secure_cookies, path="/",
                        max_age=int(SESSION_MAX.total_seconds()))


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid and len(sid) <= 100:
        key = _sid_key(sid)
        await request.app[RUNTIME].store.delete_doc("sessions", key)
        _state(request).sessions.pop(key, None)
    response.del_cookie(SESSION_COOKIE, path="/")


# -- CSRF ----------------------------------------------------------------------------------------------------------
def csrf_token(request: web.Request) -> str:
    """The CSRF token of this browser: bound to the session, or to an anonymous cookie before signing in."""
    state = _state(request)
    key = request.get(SESSION_KEY)
    if key:
        return state.sign("csrf", key)
    anon = request.get(ANON_ID) or request.cookies.get(ANON_COOKIE)
    if not anon or len(anon) > 100:
        anon = secrets.token_urlsafe(24)
        request[ANON_NEW] = anon
    request[ANON_ID] = anon
    return state.sign("anon", anon)


def _expected_tokens(request: web.Request) -> list[str]:
    state = _state(request)
    out = []
    session_key = request.get(SESSION_KEY)
    if session_key:
        out.append(state.sign("csrf", session_key))
    anon = request.cookies.get(ANON_COOKIE)
    if anon and len(anon) <= 100:
        out.append(state.sign("anon", anon))
    return out


def check_csrf(request: web.Request, form: Any = None) -> None:
    """Raise 403 unless ``form`` (or the ``X-CSRF-Token`` header) carries this browser's CSRF token."""
    given = ""
    if form is not None:
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    if not given:
        given = request.headers.get(CSRF_HEADER, "")
    if not given or not any(hmac.compare_digest(given.encode(), exp.encode()) for exp in _expected_tokens(request)):
        raise web.HTTPForbidden(text="403: invalid or missing CSRF token; reload the page and try again")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


# -- middleware ----------------------------------------------------------------------------------------------------
def _is_public(request: web.Request) -> bool:
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path.startswith(TOKEN_PREFIXES):
        return True
    return bool(getattr(request.match_info.handler, "__inbox_public__", False))


def _csrf_required(request: web.Request) -> bool:
    if request.method in SAFE_METHODS or request.path.startswith(TOKEN_PREFIXES):
        return False
    return not getattr(request.match_info.handler, "__inbox_csrf_exempt__", False)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Default deny: every route needs a signed-in, active user unless it is public; unsafe requests need CSRF."""
    await _load_session(request)
    matched = request.match_info.http_exception is None
    if matched and not _is_public(request) and request[USER] is None:
        raise _unauthenticated(request)
    if matched and _csrf_required(request):
        if not _same_origin(request):
            raise web.HTTPForbidden(text="403: cross-origin request refused")
        form = None
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
        check_csrf(request, form)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _set_anon_cookie(request, exc)
        raise
    _set_anon_cookie(request, response)
    return response


def _set_anon_cookie(request: web.Request, response: web.StreamResponse) -> None:
    anon = request.get(ANON_NEW)
    if anon and not response.prepared:
        response.set_cookie(ANON_COOKIE, anon, httponly=True, samesite="Strict", path="/",
                            secure=_state(request).secure_cookies)


def setup_auth(app: web.Application, secret: bytes, secure_cookies: bool, login_attempts_per_minute: int) -> None:
    app[AUTH] = AuthState(secret, secure_cookies, RateLimiter(max(1, login_attempts_per_minute), 60.0))
    app.middlewares.append(auth_middleware)


# -- sign in / out -------------------------------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """Only local paths: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/inbox"
    return value


async def authenticate(request: web.Request, email: str, password: str) -> tuple[dict[str, Any] | None, str | None]:
    """(user, None) on success, (None, reason) otherwise; counts failures per IP and per account."""
    state = _state(request)
    email = normalize_email(email)
    ip_key, user_key = f"ip:{client_ip(request)}", f"user:{email}"
    if state.login_limiter.blocked(ip_key) or state.login_limiter.blocked(user_key):
        return None, "throttled"
    doc = await request.app[RUNTIME].store.get_doc("users", email) if email else None
    ok = await asyncio.to_thread(lambda: _verify(doc["password_hash"] if doc else _dummy(), password))
    if not doc or not ok or not doc.get("active", True):
        state.login_limiter.hit(ip_key)
        state.login_limiter.hit(user_key)
        return None, "invalid"
    state.login_limiter.reset(user_key)
    if _hasher.check_needs_rehash(doc["password_hash"]):
        doc = {**doc, "password_hash": await asyncio.to_thread(hash_password, password)}
        await request.app[RUNTIME].store.put_doc("users", email, doc)
    state.users.pop(email, None)
    return public_user(doc), None
