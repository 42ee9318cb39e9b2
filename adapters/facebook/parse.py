"""Facebook webhook bodies and Graph API objects → drafts of InboundMessage. Pure functions, no I/O.

Threading (ThreadHints):
- a visitor post is its own conversation (``conversation_id`` = post id);
- a comment threads by reference to its parent (``in_reply_to`` = parent id: the post, or the comment it answers) and
  by conversation = the top-level comment it belongs to. Comments of different citizens under one Page post are
  different tickets (one post of ours can gather hundreds of unrelated questions); a comment under a visitor post
  joins that post's ticket through the reference.
- Messenger: one conversation per PSID (``conversation_id`` = PSID).
Our own comments (``from.id`` = Page id) and Messenger echoes (``is_echo``) are dropped here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inbox.domain import Identity, IdentityKind, InboundMessage, ThreadHints

FEED = "facebook"
MESSENGER = "messenger"
ADD_VERBS = frozenset({"add"})
EDIT_VERBS = frozenset({"edited", "edit"})
REMOVE_VERBS = frozenset({"remove", "delete", "hide"})
POST_ITEMS = frozenset({"status", "post", "photo", "video"})


@dataclass
class Draft:
    inbound: InboundMessage
    attachment_urls: list[dict[str, str]] = field(default_factory=list)  # {"type", "url", "name"} to download
    needs_profile: bool = False  # a Messenger sender whose name the payload does not carry


@dataclass
class Removal:
    comment_id: str
    post_id: str | None
    page_id: str


@dataclass
class Parsed:
    drafts: list[Draft] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "reason:id", for logs and tests


def from_epoch(value: Any, *, millis: bool = False) -> datetime | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(number / 1000 if millis else number, UTC)


def from_graph_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
    except ValueError:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None


def _user(kind: str, who: dict[str, Any] | None, fallback: str) -> Identity:
    who = who or {}
    user_id = str(who.get("id") or "")
    if not user_id:  # Meta can omit "from" (privacy, app review level): one throwaway identity per item
        return Identity(kind, f"desconocido:{fallback}", display_name="Usuario de Facebook (sin datos)")
    return Identity(kind, user_id, display_name=who.get("name") or None)


def feed_comment(page_id: str, *, comment_id: str, post_id: str, parent_id: str | None, who: dict[str, Any] | None,
                 message: str, created: datetime | None, raw: bytes, verb: str = "add",
                 permalink: str | None = None, edit_key: str | None = None) -> InboundMessage:
    parent = parent_id or post_id
    top = comment_id if parent == post_id else parent  # Facebook nests replies one level deep
    meta: dict[str, Any] = {
        "fb_kind": "comment",
        "post_id": post_id,
        "comment_id": comment_id,
        "parent_id": parent,
        "fb_reply_to": top,
        "fb_verb": verb,
    }
    if permalink:
        meta["permalink_url"] = permalink
    external_id, flags, in_reply_to = comment_id, [], parent
    if edit_key is not None:
        external_id, flags, in_reply_to = f"{comment_id}#edit:{edit_key}", ["edited"], comment_id
        meta["edit_of"] = comment_id
    return InboundMessage(
        channel=FEED, account=page_id, external_id=external_id, sender=_user(IdentityKind.FACEBOOK, who, comment_id),
        text=message or "", raw=raw, sent_at=created, flags=flags, meta=meta,
        hints=ThreadHints(in_reply_to=in_reply_to, references=[post_id], conversation_id=top),
    )


def visitor_post(page_id: str, *, post_id: str, who: dict[str, Any] | None, message: str, created: datetime | None,
                 raw: bytes, verb: str = "add", permalink: str | None = None,
                 edit_key: str | None = None) -> InboundMessage:
    meta: dict[str, Any] = {"fb_kind": "post", "post_id": post_id, "fb_reply_to": post_id, "fb_verb": verb}
    if permalink:
        meta["permalink_url"] = permalink
    external_id, flags, in_reply_to = post_id, [], None
    if edit_key is not None:
        external_id, flags, in_reply_to = f"{post_id}#edit:{edit_key}", ["edited"], post_id
        meta["edit_of"] = post_id
    return InboundMessage(
        channel=FEED, account=page_id, external_id=external_id, sender=_user(IdentityKind.FACEBOOK, who, post_id),
        text=message or "", raw=raw, sent_at=created, flags=flags, meta=meta,
        hints=ThreadHints(in_reply_to=in_reply_to, conversation_id=post_id),
    )


def messenger_message(page_id: str, *, psid: str, mid: str, text: str, sent: datetime | None, raw: bytes,
                      name: str | None = None, attachments: list[dict[str, str]] | None = None,
                      reply_to_mid: str | None = None) -> Draft:
    meta: dict[str, Any] = {"fb_kind": "messenger", "psid": psid, "mid": mid}
    if attachments:
        meta["fb_attachments"] = [{"type": a.get("type"), "url": a.get("url")} for a in attachments]
    inbound = InboundMessage(
        channel=MESSENGER, account=page_id, external_id=mid,
        sender=Identity(IdentityKind.MESSENGER, psid, display_name=name or None),
        text=text or "", raw=raw, sent_at=sent, meta=meta,
        hints=ThreadHints(in_reply_to=reply_to_mid, conversation_id=psid),
    )
    return Draft(inbound, [a for a in attachments or [] if a.get("url")], needs_profile=not name)


# -- webhooks ------------------------------------------------------------------------------------------------------
def parse_webhook(body: Any, raw: bytes, page_id: str) -> Parsed:
    """Every entry / change / messaging item of a webhook body. ``page_id`` empty: accept any Page of the body."""
    out = Parsed()
    if not isinstance(body, dict) or body.get("object") != "page":
        out.ignored.append(f"object:{body.get('object') if isinstance(body, dict) else type(body).__name__}")
        return out
    for entry in body.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        entry_page = str(entry.get("id") or "")
        if page_id and entry_page != page_id:
            out.ignored.append(f"other_page:{entry_page}")
            continue
        page = page_id or entry_page
        for change in entry.get("changes") or []:
            if isinstance(change, dict) and change.get("field") == "feed" and isinstance(change.get("value"), dict):
                _feed_change(out, page, change["value"], raw)
        for event in entry.get("messaging") or []:
            if isinstance(event, dict):
                _messaging(out, page, event, raw)
    return out


def _feed_change(out: Parsed, page: str, v: dict[str, Any], raw: bytes) -> None:
    item, verb = v.get("item"), v.get("verb")
    who = v.get("from") if isinstance(v.get("from"), dict) else None
    post_id = str(v.get("post_id") or "")
    created = from_epoch(v.get("created_time"))
    permalink = (v.get("post") or {}).get("permalink_url") if isinstance(v.get("post"), dict) else None
    if who and str(who.get("id")) == page:
        out.ignored.append(f"own:{v.get('comment_id') or post_id}")
        return
    if item == "comment" and v.get("comment_id") and post_id:
        comment_id = str(v["comment_id"])
        if verb in REMOVE_VERBS:
            out.removals.append(Removal(comment_id, post_id, page))
        elif verb in ADD_VERBS or verb in EDIT_VERBS:
            edit_key = str(v.get("created_time") or "") if verb in EDIT_VERBS else None
            out.drafts.append(Draft(feed_comment(
                page, comment_id=comment_id, post_id=post_id, parent_id=str(v.get("parent_id") or post_id),
                who=who, message=str(v.get("message") or ""), created=created, raw=raw, verb=str(verb),
                permalink=permalink, edit_key=edit_key)))
        else:
            out.ignored.append(f"verb:{verb}:{comment_id}")
    elif item in POST_ITEMS and post_id and (verb in ADD_VERBS or verb in EDIT_VERBS):
        if v.get("published") in (0, "0", False):
            out.ignored.append(f"unpublished:{post_id}")
            return
        edit_key = str(v.get("created_time") or "") if verb in EDIT_VERBS else None
        out.drafts.append(Draft(visitor_post(page, post_id=post_id, who=who, message=str(v.get("message") or ""),
                                             created=created, raw=raw, verb=str(verb), permalink=permalink,
                                             edit_key=edit_key)))
    else:
        out.ignored.append(f"item:{item}:{verb}")


def _messaging(out: Parsed, page: str, event: dict[str, Any], raw: bytes) -> None:
    sender = str((event.get("sender") or {}).get("id") or "")
    message = event.get("message")
    if not isinstance(message, dict):
        out.ignored.append(f"event:{next((k for k in event if k not in ('sender', 'recipient', 'timestamp')), '?')}")
        return
    mid = str(message.get("mid") or "")
    if message.get("is_echo") or sender == page:
        out.ignored.append(f"echo:{mid}")
        return
    if not mid or not sender:
        out.ignored.append("incomplete_message")
        return
    attachments = []
    for a in message.get("attachments") or []:
        if isinstance(a, dict):
            payload = a.get("payload")
            payload = payload if isinstance(payload, dict) else {}
            attachments.append({"type": str(a.get("type") or "file"), "url": str(payload.get("url") or "")})
    reply_to = (message.get("reply_to") or {}).get("mid") if isinstance(message.get("reply_to"), dict) else None
    out.drafts.append(messenger_message(page, psid=sender, mid=mid, text=str(message.get("text") or ""),
                                        sent=from_epoch(event.get("timestamp"), millis=True), raw=raw,
                                        attachments=attachments, reply_to_mid=reply_to))


# -- Graph objects (backfill) --------------------------------------------------------------------------------------
def graph_raw(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def graph_feed_post(page: str, post: dict[str, Any], since: datetime) -> list[Draft]:
    """A post of ``/{page}/feed`` with its comments (``filter=stream``: replies included, with ``parent``)."""
    drafts = []
    post_id = str(post.get("id") or "")
    who = post.get("from") if isinstance(post.get("from"), dict) else None
    created = from_graph_time(post.get("created_time"))
    if post_id and who and str(who.get("id")) != page and created and created >= since:
        drafts.append(Draft(visitor_post(page, post_id=post_id, who=who, message=str(post.get("message") or ""),
                                         created=created, raw=graph_raw(post),
                                         permalink=post.get("permalink_url"))))
    for c in (post.get("comments") or {}).get("data") or []:
        c_who = c.get("from") if isinstance(c.get("from"), dict) else None
        c_created = from_graph_time(c.get("created_time"))
        if not c.get("id") or (c_who and str(c_who.get("id")) == page) or not c_created or c_created < since:
            continue
        parent = (c.get("parent") or {}).get("id") if isinstance(c.get("parent"), dict) else None
        drafts.append(Draft(feed_comment(page, comment_id=str(c["id"]), post_id=post_id, parent_id=parent or post_id,
                                         who=c_who, message=str(c.get("message") or ""), created=c_created,
                                         raw=graph_raw({"post_id": post_id, "comment": c}),
                                         permalink=post.get("permalink_url"))))
    return drafts


def graph_conversation(page: str, conversation: dict[str, Any], since: datetime) -> list[Draft]:
    """A conversation of ``/{page}/conversations`` with its ``messages``."""
    drafts = []
    for m in (conversation.get("messages") or {}).get("data") or []:
        who = m.get("from") if isinstance(m.get("from"), dict) else {}
        sent = from_graph_time(m.get("created_time"))
        psid = str(who.get("id") or "")
        if not m.get("id") or not psid or psid == page or not sent or sent < since:
            continue
        attachments = []
        for a in (m.get("attachments") or {}).get("data") or []:
            url = (a.get("image_data") or {}).get("url") or a.get("file_url") or (a.get("video_data") or {}).get("url")
            kind = (a.get("mime_type") or "file/").split("/")[0]
            attachments.append({"type": kind, "url": str(url or ""), "name": str(a.get("name") or "")})
        drafts.append(messenger_message(page, psid=psid, mid=str(m["id"]), text=str(m.get("message") or ""),
                                        sent=sent, raw=graph_raw({"conversation_id": conversation.get("id"),
                                                                  "message": m}),
                                        name=who.get("name"), attachments=attachments))
    return drafts
