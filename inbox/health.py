"""Channel health: each adapter reports whether its account works; the web shows it, metrics export it.

A status change is also an event, so a failing login is never a silent stop."""

from __future__ import annotations

from typing import Any

from inbox.domain import EventKind, utcnow
from inbox.store.base import Store

COLLECTION = "channel_health"


async def report_health(store: Store, channel: str, account: str, ok: bool, detail: str = "") -> None:
    key = f"{channel}:{account}"
    previous = await store.get_doc(COLLECTION, key)
    status = "ok" if ok else "error"
    doc = {"channel": channel, "account": account, "status": status, "detail": detail[:500],
           "at": utcnow().isoformat()}
    if previous is None or previous.get("status") != status or previous.get("detail") != doc["detail"]:
        await store.append_event(EventKind.CHANNEL_HEALTH, None, f"system:{channel}", doc)
    if ok and previous is not None and previous.get("status") == "ok":
        doc["since"] = previous.get("since", doc["at"])
    elif previous is not None and previous.get("status") == status:
        doc["since"] = previous.get("since", doc["at"])
    else:
        doc["since"] = doc["at"]
    await store.put_doc(COLLECTION, key, doc)


async def channel_health(store: Store) -> list[dict[str, Any]]:
    return [doc for _, doc in await store.list_docs(COLLECTION)]
