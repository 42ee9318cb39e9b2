"""The ``[x]`` settings section (documented in settings.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from inbox.settings import SettingsError, secret


@dataclass
class XSettings:
    user_id: str = ""  # numeric id of our account: the account key of messages, cursors and channel health
    username: str = ""  # our handle without "@", for logs and the agent UI
    api_base_url: str = "https://api.twitter.com"  # tweepy hard-codes api.twitter.com; requests are re-routed here
    # Credentials (environment only). OAuth 1.0a user context when all four of consumer_key, consumer_secret,
    # access_token and access_token_secret are set; otherwise bearer_token is sent as an OAuth 2.0 bearer token.
    bearer_token: str = secret()
    consumer_key: str = secret()
    consumer_secret: str = secret()
    access_token: str = secret()
    access_token_secret: str = secret()
    poll_mentions: bool = True
    poll_dms: bool = True
    poll_interval_s: float = 60.0
    page_size: int = 100  # max_results per request (mentions 5..100, DM events 1..100)
    max_pages: int = 20  # pages per poll and timeline (the mentions timeline itself stops at 800 posts)
    request_timeout_s: float = 30.0
    rate_limit_margin_s: float = 1.0  # extra wait after x-rate-limit-reset (clock skew)
    tweet_max_chars: int = 280  # longer public replies are refused before calling X

    def validate(self) -> None:
        if not 5 <= self.page_size <= 100:
            raise SettingsError(f"x.page_size: must be between 5 and 100, got {self.page_size}")
        if self.max_pages < 1:
            raise SettingsError("x.max_pages: must be at least 1")
        if not self.api_base_url.startswith(("http://", "https://")):
            raise SettingsError(f"x.api_base_url: must start with http:// or https://, got {self.api_base_url!r}")
        if self.user_id and not self.user_id.isdigit():
            raise SettingsError(f"x.user_id: must be the numeric account id, got {self.user_id!r}")

    @property
    def oauth1(self) -> bool:
        return all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))

    @property
    def has_credentials(self) -> bool:
        return self.oauth1 or bool(self.bearer_token)
