"""The ``[facebook]`` settings section (documented in settings.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from inbox.settings import SettingsError, secret


@dataclass
class FacebookSettings:
    page_id: str = ""  # the Page's numeric id: the account key of messages, cursors and channel health
    graph_base_url: str = "https://graph.facebook.com"
    graph_version: str = "v24.0"
    app_secret: str = secret()  # verifies X-Hub-Signature-256 and signs appsecret_proof
    verify_token: str = secret()  # the webhook GET handshake's hub.verify_token
    page_token: str = secret()  # Page access token (pages_manage_engagement, pages_read_engagement, pages_messaging)
    appsecret_proof: bool = True  # send appsecret_proof with every Graph call when app_secret is set
    request_timeout_s: float = 30.0
    throttle_retry_s: float = 300.0  # retry delay after a throttling error without a usage header hint
    human_agent_tag: bool = False  # reply with the HUMAN_AGENT tag between 24 h and 7 days (needs Meta approval)
    download_attachments: bool = True  # fetch Messenger attachment URLs (CDN links expire) into the archive
    max_attachment_mb: int = 25
    attachment_timeout_s: float = 30.0
    messenger_profile_lookup: bool = True  # ask Graph for the name of a PSID seen for the first time
    backfill_interval_s: float = 300.0
    backfill_lookback_h: float = 24.0  # how far back the first backfill looks
    backfill_overlap_s: float = 600.0  # each backfill re-reads this much before its cursor (late-indexed items)
    backfill_max_pages: int = 10  # pages per edge (feed, conversations) and backfill

    def validate(self) -> None:
        if not self.graph_base_url.startswith(("http://", "https://")):
            raise SettingsError(f"facebook.graph_base_url: must start with http:// or https://, got "
                                f"{self.graph_base_url!r}")
        if not self.graph_version.startswith("v"):
            raise SettingsError(f"facebook.graph_version: expected e.g. 'v24.0', got {self.graph_version!r}")
        if self.page_id and not self.page_id.isdigit():
            raise SettingsError(f"facebook.page_id: must be the numeric Page id, got {self.page_id!r}")
        if self.backfill_max_pages < 1:
            raise SettingsError("facebook.backfill_max_pages: must be at least 1")
