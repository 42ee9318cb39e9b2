"""AppKeys and RequestKeys shared by the web modules (``web.app.RUNTIME`` is re-exported from here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any  # noqa: F401 - Any is used in a string annotation below

from aiohttp import web

from workers.runtime import Runtime

if TYPE_CHECKING:
    from web.auth import AuthState  # noqa: F401 - the AppKeys below name these types in strings
    from web.live import Hub  # noqa: F401
    from web.views import UIState  # noqa: F401

RUNTIME = web.AppKey("runtime", Runtime)
AUTH = web.AppKey["AuthState"]("auth")
NAV = web.AppKey("nav", list)  # [(path, label msgid, minimum role)] shown in the header
HUB = web.AppKey["Hub"]("hub")
UI = web.AppKey["UIState"]("ui")  # small caches of the UI

# Per-request values set by web.auth's middleware.
USER = web.RequestKey["dict[str, Any] | None"]("inbox_user")  # the users document (no hash) or None
SESSION_KEY = web.RequestKey["str | None"]("inbox_session_key")  # sha256 of the session id, or None
ANON_ID = web.RequestKey("inbox_anon_id", str)
ANON_NEW = web.RequestKey("inbox_anon_new", str)
