"""Conversions shared by the store backends: times as sortable UTC text, identities and JSON fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from inbox.domain import Attachment, Identity, Tag


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def tags_to_json(tags: dict[str, Tag]) -> dict[str, Any]:
    return {k: t.to_dict() for k, t in tags.items()}


def tags_from_json(raw: dict[str, Any]) -> dict[str, Tag]:
    return {k: Tag.from_dict(v) for k, v in raw.items()}


def attachments_to_json(items: list[Attachment]) -> list[dict[str, Any]]:
    return [a.to_dict() for a in items]


def attachments_from_json(items: list[dict[str, Any]]) -> list[Attachment]:
    return [Attachment.from_dict(a) for a in items]


def identity_or_none(kind: str | None, value: str | None, name: str | None) -> Identity | None:
    if kind is None or value is None:
        return None
    return Identity(kind, value, name)
