"""tweepy's AsyncClient behind a small facade: configurable base URL, typed errors, no secrets in messages.

tweepy hard-codes ``https://api.twitter.com``; every request goes through the client's aiohttp ``session``, so a
client middleware rewrites scheme/host/port (and prefixes a base path) when ``x.api_base_url`` points elsewhere
(a test fake, an egress proxy). OAuth 1.0a signatures are computed by tweepy over the api.twitter.com URL before the
rewrite, so a proxy must forward to api.twitter.com unchanged; bearer tokens are unaffected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import tweepy.errors
from tweepy.asynchronous import AsyncClient
from yarl import URL

from adapters.x.settings import XSettings

log = logging.getLogger(__name__)

TWEEPY_HOST = URL("https://api.twitter.com")


class XError(Exception):
    """A failed X API call. ``detail`` is what X said (never a token)."""

    def __init__(self, detail: str, *, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status


class XRateLimited(XError):
    def __init__(self, detail: str, reset_at: float | None):
        super().__init__(detail, status=429)
        self.reset_at = reset_at  # unix seconds, from x-rate-limit-reset

    def wait_s(self, margin: float, default: float = 60.0) -> float:
        if self.reset_at is None:
            return default
        return max(0.0, self.reset_at - time.time()) + margin


class XAuthError(XError):
    """401: the token is invalid, expired or revoked."""


class XForbidden(XError):
    """403: not allowed (missing scope, a reply restriction, a citizen who does not accept DMs, duplicate post)."""


class XRequestError(XError):
    """Other 4xx: retrying the same request cannot help."""


class XTransientError(XError):
    """5xx, a timeout or a network error: worth retrying later."""


def rewrite_middleware(base: URL) -> Callable[..., Any]:
    prefix = base.raw_path.rstrip("/")
    host_header = base.host_port_subcomponent or base.host

    async def middleware(req: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        url = req.url
        if url.host == TWEEPY_HOST.host:
            req.url = URL.build(scheme=base.scheme, host=base.raw_host or "", port=base.explicit_port,
                                path=prefix + url.raw_path, query_string=url.raw_query_string, encoded=True)
            if host_header:
                req.headers["Host"] = host_header
        return await handler(req)

    return middleware


def _problem(exc: tweepy.errors.HTTPException) -> str:
    messages = [str(m) for m in exc.api_messages if m]
    status = getattr(exc.response, "status", None)
    reason = getattr(exc.response, "reason", "") or ""
    return f"{status} {reason}".strip() + (f": {'; '.join(messages)}" if messages else "")


class XApi:
    """Lazily opened: settings may change until the first call (tests point ``api_base_url`` at a fake)."""

    def __init__(self, settings_getter: Callable[[], XSettings]):
        self._settings = settings_getter
        self._client: AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> XSettings:
        return self._settings()

    async def client(self) -> AsyncClient:
        async with self._lock:
            if self._client is None:
                # tweepy logs request headers (the bearer token) at DEBUG: keep its client logger above that
                tweepy_log = logging.getLogger("tweepy.asynchronous.client")
                tweepy_log.setLevel(max(logging.INFO, tweepy_log.level))
                cfg = self.settings
                base = URL(cfg.api_base_url)
                middlewares = () if base.origin() == TWEEPY_HOST and base.raw_path in ("", "/") else (
                    rewrite_middleware(base),)
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=cfg.request_timeout_s), middlewares=middlewares)
                if cfg.oauth1:
                    client = AsyncClient(consumer_key=cfg.consumer_key, consumer_secret=cfg.consumer_secret,
                                         access_token=cfg.access_token, access_token_secret=cfg.access_token_secret,
                                         return_type=dict)
                else:
                    client = AsyncClient(bearer_token=cfg.bearer_token or None, return_type=dict)
                client.session = self._session
                self._client = client
            return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._client = None

    async def call(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call an AsyncClient method by name with the right auth mode; map every failure to an XError."""
        if not self.settings.has_credentials:
            raise XAuthError("no X credentials configured (INBOX_X__BEARER_TOKEN or the four OAuth 1.0a values)")
        client = await self.client()
        kwargs.setdefault("user_auth", self.settings.oauth1)
        try:
            result = await getattr(client, method)(*args, **kwargs)
        except tweepy.errors.TooManyRequests as exc:
            raise XRateLimited(_problem(exc), exc.reset_time) from None
        except tweepy.errors.Unauthorized as exc:
            raise XAuthError(_problem(exc), status=401) from None
        except tweepy.errors.Forbidden as exc:
            raise XForbidden(_problem(exc), status=403) from None
        except tweepy.errors.TwitterServerError as exc:
            raise XTransientError(_problem(exc), status=getattr(exc.response, "status", None)) from None
        except tweepy.errors.HTTPException as exc:
            raise XRequestError(_problem(exc), status=getattr(exc.response, "status", None)) from None
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            # aiohttp's messages may carry the URL (never a token: tokens travel in headers)
            raise XTransientError(f"{type(exc).__name__}: {exc}") from None
        return result if isinstance(result, dict) else {}
