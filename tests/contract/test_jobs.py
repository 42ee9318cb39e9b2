"""The job queue on the store: enqueue, idempotent dedupe keys, atomic claims with leases, retries, dead letters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from inbox.domain import utcnow
from inbox.store.base import JobSpec, Store


async def test_enqueue_and_dedupe_key(store: Store) -> None:
    a = await store.enqueue(JobSpec("triage", {"ticket_id": "t1"}, dedupe_key="triage:t1"))
    b = await store.enqueue(JobSpec("triage", {"ticket_id": "other"}, dedupe_key="triage:t1"))
    assert a == b == "triage:t1"
    c = await store.enqueue(JobSpec("triage", {"ticket_id": "t2"}))
    d = await store.enqueue(JobSpec("triage", {"ticket_id": "t2"}))
    assert len({a, c, d}) == 3
    jobs = await store.list_jobs(kind="triage")
    assert [j.id for j in jobs] == [a, c, d]
    job = await store.get_job(a)
    assert job is not None and job.payload == {"ticket_id": "t1"} and job.status == "ready"
    assert job.attempts == 0 and job.max_attempts == 8 and job.lease_until is None and job.worker is None
    assert await store.get_job("nope") is None
    assert await store.job_counts() == {"triage": {"ready": 3}}


async def test_claim_complete(store: Store) -> None:
    job_id = await store.enqueue(JobSpec("deliver", {"message_id": "m1"}, max_attempts=3))
    job = await store.claim("w1", lease_s=30)
    assert job is not None and job.id == job_id and job.status == "running" and job.worker == "w1"
    assert job.attempts == 1 and job.lease_until is not None and job.lease_until > utcnow()
    assert job.payload == {"message_id": "m1"} and job.max_attempts == 3
    assert await store.claim("w2") is None  # leased
    assert await store.heartbeat(job_id, "w1", lease_s=60)
    assert not await store.heartbeat(job_id, "w2", lease_s=60)
    assert not await store.complete(job_id, "w2")
    assert await store.complete(job_id, "w1")
    assert not await store.complete(job_id, "w1")
    assert (await store.get_job(job_id)).status == "done"
    assert await store.claim("w1") is None
    assert await store.job_counts() == {"deliver": {"done": 1}}


async def test_claim_order_not_before_and_kinds(store: Store) -> None:
    now = utcnow()
    later = await store.enqueue(JobSpec("a", {}, not_before=now + timedelta(hours=1)))
    old = await store.enqueue(JobSpec("b", {"n": 1}, not_before=now - timedelta(minutes=5)))
    newer = await store.enqueue(JobSpec("a", {"n": 2}, not_before=now - timedelta(minutes=1)))
    other = await store.enqueue(JobSpec("c", {"n": 3}, not_before=now - timedelta(minutes=10)))
    assert (await store.claim("w", kinds=["a"])).id == newer  # "later" is not due yet
    assert await store.claim("w", kinds=["a"]) is None
    assert (await store.claim("w", kinds=["a", "b"])).id == old
    assert await store.claim("w", kinds=["a", "b"]) is None
    assert (await store.claim("w")).id == other
    assert await store.claim("w") is None
    assert (await store.get_job(later)).status == "ready"
    counts = await store.job_counts()
    assert counts == {"a": {"ready": 1, "running": 1}, "b": {"running": 1}, "c": {"running": 1}}
    assert {j.id for j in await store.list_jobs(status="running")} == {old, newer, other}
    assert [j.id for j in await store.list_jobs(status="running", kind="a")] == [newer]
    assert len(await store.list_jobs(limit=2)) == 2


async def test_fail_backoff_then_dead_letter(store: Store) -> None:
    job_id = await store.enqueue(JobSpec("deliver", {}, max_attempts=5))
    await store.claim("w1")
    assert await store.fail(job_id, "w2", "not mine", 5) == "lost"
    assert await store.fail(job_id, "w1", "timeout", 3600) == "ready"
    waiting = await store.get_job(job_id)
    assert waiting.status == "ready" and waiting.last_error == "timeout" and waiting.lease_until is None
    assert waiting.not_before > utcnow() + timedelta(minutes=59)
    assert await store.claim("w1") is None  # backing off

    short = await store.enqueue(JobSpec("sms", {}, max_attempts=2))
    assert (await store.claim("w1", kinds=["sms"])).attempts == 1
    assert await store.fail(short, "w1", "busy", 0) == "ready"
    job = await store.claim("w1", kinds=["sms"])
    assert job is not None and job.id == short and job.attempts == 2
    assert await store.fail(short, "w1", "still failing", 1) == "dead"  # no attempts left
    dead = await store.get_job(short)
    assert dead.status == "dead" and dead.last_error == "still failing"
    assert await store.claim("w1", kinds=["sms"]) is None

    other = await store.enqueue(JobSpec("sms", {}, max_attempts=5))
    assert (await store.claim("w1", kinds=["sms"])).id == other
    assert await store.fail(other, "w1", "permanent", None) == "dead"  # no retry asked: dead at once
    assert await store.job_counts() == {"deliver": {"ready": 1}, "sms": {"dead": 2}}


async def test_expired_lease_is_claimed_again(store: Store) -> None:
    job_id = await store.enqueue(JobSpec("deliver", {}))
    first = await store.claim("w1", lease_s=0.05)
    assert first is not None
    assert await store.claim("w2", lease_s=30) is None
    await asyncio.sleep(0.2)
    again = await store.claim("w2", lease_s=30)
    assert again is not None and again.id == job_id and again.worker == "w2" and again.attempts == 2
    assert not await store.complete(job_id, "w1")  # the old holder lost it
    assert not await store.heartbeat(job_id, "w1")
    assert await store.fail(job_id, "w1", "late", 1) == "lost"
    assert await store.complete(job_id, "w2")


@pytest.mark.parametrize("kinds", [None, ["k"], ["k", "j"]])
async def test_concurrent_claimers_take_each_job_once(store: Store, kinds: list[str] | None) -> None:
    ids = {await store.enqueue(JobSpec("j" if i % 3 == 0 and kinds != ["k"] else "k", {"i": i})) for i in range(30)}
    taken: list[str] = []

    async def worker(name: str) -> None:
        while (job := await store.claim(name, kinds=kinds, lease_s=60)) is not None:
            taken.append(job.id)
            assert await store.complete(job.id, name)

    await asyncio.gather(*[worker(f"w{i}") for i in range(20)])
    assert sorted(taken) == sorted(ids)
    counts = await store.job_counts()
    assert sum(c.get("done", 0) for c in counts.values()) == 30 and all(set(c) == {"done"} for c in counts.values())
