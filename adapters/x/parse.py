"""X API v2 objects (a mention with its expansions, a DM event) → InboundMessage. Pure functions, no I/O."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from inbox.domain import Identity, IdentityKind, InboundMessage, ThreadHints

CHANNEL = "x"


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def snowflake(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def user_identity(user_id: str, users: dict[str, dict[str, Any]]) -> Identity:
    user = users.get(user_id) or {}
    username = user.get("username")
    return Identity(IdentityKind.X, user_id, display_name=user.get("name") or None,
                    handle=f"@{username}" if username else None)


def expand_urls(text: str, entities: dict[str, Any] | None) -> str:
    """Show the real link instead of t.co (the raw tweet stays archived)."""
    for url in (entities or {}).get("urls") or []:
        short, expanded = url.get("url"), url.get("expanded_url")
        if short and expanded and not expanded.startswith(("https://twitter.com/", "https://x.com/")):
            text = text.replace(short, expanded)
    return text


def _raw(obj: dict[str, Any]) -> bytes:
    # Deterministic bytes: a re-polled tweet archives to the same reference.
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def mention_to_inbound(tweet: dict[str, Any], users: dict[str, dict[str, Any]],
                       tweets: dict[str, dict[str, Any]], account: str) -> InboundMessage:
    tweet_id = str(tweet["id"])
    author_id = str(tweet.get("author_id") or "")
    sender = user_identity(author_id, users)
    refs = {r.get("type"): str(r.get("id")) for r in tweet.get("referenced_tweets") or [] if r.get("id")}
    replied_to = refs.get("replied_to")
    conversation_id = str(tweet.get("conversation_id") or tweet_id)
    meta: dict[str, Any] = {
        "x_kind": "mention",
        "tweet_id": tweet_id,
        "conversation_id": conversation_id,
        "author_id": author_id,
        "lang": tweet.get("lang"),
        "in_reply_to_user_id": tweet.get("in_reply_to_user_id"),
    }
    if sender.handle:
        meta["username"] = sender.handle[1:]
        meta["url"] = f"https://x.com/{sender.handle[1:]}/status/{tweet_id}"
    if replied_to:
        meta["replied_to"] = replied_to
        if replied_to in tweets:
            meta["replied_to_text"] = html.unescape(tweets[replied_to].get("text") or "")
    if "quoted" in refs:
        meta["quoted"] = refs["quoted"]
    text = expand_urls(html.unescape(tweet.get("text") or ""), tweet.get("entities"))  # unescape before links
    referenced = [tweets[i] for i in refs.values() if i in tweets]
    raw = _raw({"tweet": tweet, "author": users.get(author_id), "referenced_tweets": referenced})
    references = [conversation_id] if conversation_id != tweet_id else []
    return InboundMessage(
        channel=CHANNEL,
        account=account,
        external_id=tweet_id,
        sender=sender,
        text=text,
        raw=raw,
        sent_at=parse_time(tweet.get("created_at")),
        hints=ThreadHints(in_reply_to=replied_to, references=references, conversation_id=conversation_id),
        meta=meta,
    )


def dm_to_inbound(event: dict[str, Any], users: dict[str, dict[str, Any]], account: str) -> InboundMessage:
    event_id = str(event["id"])
    sender_id = str(event.get("sender_id") or "")
    conversation_id = str(event.get("dm_conversation_id") or "")
    meta: dict[str, Any] = {
        "x_kind": "dm",
        "dm_event_id": event_id,
        "dm_conversation_id": conversation_id,
        "sender_id": sender_id,
    }
    media = (event.get("attachments") or {}).get("media_keys") or []
    if media:
        meta["x_media_keys"] = list(media)
    return InboundMessage(
        channel=CHANNEL,
        account=account,
        external_id=event_id,
        sender=user_identity(sender_id, users),
        text=event.get("text") or "",
        raw=_raw({"dm_event": event, "sender": users.get(sender_id)}),
        sent_at=parse_time(event.get("created_at")),
        hints=ThreadHints(conversation_id=conversation_id or None),
        meta=meta,
    )


def is_retweet(tweet: dict[str, Any]) -> bool:
    return any(r.get("type") == "retweeted" for r in tweet.get("referenced_tweets") or [])


def index_users(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(u["id"]): u for u in (body.get("includes") or {}).get("users") or [] if u.get("id")}


def index_tweets(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(t["id"]): t for t in (body.get("includes") or {}).get("tweets") or [] if t.get("id")}
