"""A minimal Graph API client over aiohttp (the PyPI SDK is unmaintained), with typed errors and health reporting.

The Page token travels as the ``access_token`` parameter (plus ``appsecret_proof`` when the app secret is known).
URLs therefore carry the token: nothing here logs or raises a URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from adapters.facebook.settings import FacebookSettings

log = logging.getLogger(__name__)

AUTH_CODES = frozenset({102, 190})  # invalid / expired / revoked token
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80006})  # app, user, page, custom, BUC pages / Messenger
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278})  # Send API: outside the allowed window


class GraphError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 subcode: int | None = None, transient: bool = False, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.subcode = subcode
        self.transient = transient
        self.retry_after_s = retry_after_s

    @property
    def auth_failed(self) -> bool:
        return self.code in AUTH_CODES

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES

    @property
    def retryable(self) -> bool:
        return self.throttled or self.transient

    def describe(self) -> str:
        code = f" (código {self.code}{f'/{self.subcode}' if self.subcode else ''})" if self.code else ""
        return f"{self.message}{code}"


def usage_retry_after(headers: Any) -> float | None:
    """Seconds until access comes back, from X-Business-Use-Case-Usage (estimated_time_to_regain_access, minutes)."""
    raw = headers.get("x-business-use-case-usage") if headers else None
    if not raw:
        return None
    try:
        usage = json.loads(raw)
        minutes = max(int(u.get("estimated_time_to_regain_access") or 0)
                      for items in usage.values() for u in items)
    except (ValueError, TypeError, AttributeError):
        return None
    return float(minutes * 60) if minutes > 0 else None


class GraphClient:
    def __init__(self, settings_getter: Callable[[], FacebookSettings]):
        self._settings = settings_getter
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> FacebookSettings:
        return self._settings()

    async def session(self) -> aiohttp.ClientSession:
        async with self._lock:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s))
            return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    def url(self, path: str) -> str:
        cfg = self.settings
        return f"{cfg.graph_base_url.rstrip('/')}/{cfg.graph_version}/{path.lstrip('/')}"

    def auth_params(self) -> dict[str, str]:
        cfg = self.settings
        params = {"access_token": cfg.page_token}
        if cfg.appsecret_proof and cfg.app_secret:
            params["appsecret_proof"] = hmac.new(cfg.app_secret.encode(), cfg.page_token.encode(),
                                                 hashlib.sha256).hexdigest()
        return params

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = self.settings
        if not cfg.page_token:
            raise GraphError("falta el token de la Página (INBOX_FACEBOOK__PAGE_TOKEN)", code=190)
        query = {**{k: str(v) for k, v in (params or {}).items()}, **self.auth_params()}
        session = await self.session()
        try:
            async with session.request(method, self.url(path), params=query, json=json_body) as resp:
                text = await resp.text()
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            # never str(exc): aiohttp puts the URL (with the token) in its messages
            raise GraphError(f"Graph API inaccesible ({type(exc).__name__})", transient=True) from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = None
        if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
            return body
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            raise GraphError(f"Graph API respondió HTTP {status}", status=status, transient=status >= 500)
        try:
            code: int | None = int(err.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
        exc_ = GraphError(str(err.get("message") or f"HTTP {status}"), status=status, code=code,
                          subcode=err.get("error_subcode"),
                          transient=bool(err.get("is_transient")) or status >= 500 or code in (1, 2))
        if exc_.throttled:
            exc_.retry_after_s = usage_retry_after(headers) or cfg.throttle_retry_s
        raise exc_

    async def download(self, url: str, max_bytes: int, timeout_s: float) -> tuple[bytes, str | None]:
        """Fetch an attachment URL (public CDN link: no token is sent)."""
        session = await self.session()
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                raise GraphError(f"descarga HTTP {resp.status}", status=resp.status)
            if resp.content_length and resp.content_length > max_bytes:
                raise OverflowError("too_large")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
                if len(data) > max_bytes:
                    raise OverflowError("too_large")
            return bytes(data), resp.headers.get("Content-Type")
