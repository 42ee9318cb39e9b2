"""The job queue on the store: exactly-once completion under concurrent claimers, lease expiry, dead letters."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from inbox.store.base import JobSpec
from inbox.store.sqlite import SQLiteStore
from workers.jobs import RetryLater, run_one
from workers.runtime import Runtime


async def test_twenty_claimers_five_hundred_jobs_each_once(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    setup = SQLiteStore(db)
    await setup.open()
    for i in range(500):
        await setup.enqueue(JobSpec("work", {"i": i}))
    completed: list[int] = []

    async def claimer(name: str) -> None:
        store = SQLiteStore(db, readers=1)  # its own connections, like another process
        await store.open()
        try:
            while True:
                job = await store.claim(name, ["work"], lease_s=30)
                if job is None:
                    return
                completed.append(job.payload["i"])
                assert await store.complete(job.id, name)
        finally:
            await store.close()

    await asyncio.gather(*(claimer(f"c{n}") for n in range(20)))
    assert sorted(completed) == list(range(500))
    assert (await setup.job_counts())["work"] == {"done": 500}
    await setup.close()


CLAIM_AND_HANG = textwrap.dedent("""
    import asyncio, sys
    from inbox.store.sqlite import SQLiteStore
    async def main():
        store = SQLiteStore(sys.argv[1])
        await store.open()
        job = await store.claim("doomed", ["work"], lease_s=1.0)
        print(job.id, flush=True)
        await asyncio.sleep(3600)
    asyncio.run(main())
""")


async def test_killed_claimer_job_is_redelivered_after_the_lease(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    store = SQLiteStore(db)
    await store.open()
    job_id = await store.enqueue(JobSpec("work", {"x": 1}))
    proc = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HANG, str(db)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    claimed = proc.stdout.readline().decode().strip()
    assert claimed == job_id
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert await store.claim("survivor", ["work"]) is None  # still leased
    deadline = time.monotonic() + 10
    job = None
    while job is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        job = await store.claim("survivor", ["work"])
    assert job is not None and job.id == job_id and job.attempts == 2
    assert await store.complete(job_id, "survivor")
    assert not await store.complete(job_id, "doomed")  # the dead claimer can no longer touch it
    await store.close()


async def test_failures_back_off_then_dead_letter(rt: Runtime) -> None:
    calls: list[int] = []

    async def flaky(rt: Runtime, job) -> None:
        calls.append(job.attempts)
        raise RetryLater("server busy", delay_s=0)

    rt.job_handlers["flaky"] = flaky
    job_id = await rt.store.enqueue(JobSpec("flaky", {}, max_attempts=3))
    for _ in range(3):
        job = await rt.store.claim("w", ["flaky"])
        assert job is not None
        await run_one(rt, job, "w")
    final = await rt.store.get_job(job_id)
    assert final is not None and final.status == "dead" and final.last_error == "server busy"
    assert calls == [1, 2, 3]
    assert await rt.store.claim("w", ["flaky"]) is None


async def test_unexpected_error_retries_later_with_backoff(rt: Runtime) -> None:
    async def broken(rt: Runtime, job) -> None:
        raise ValueError("bug")

    rt.job_handlers["broken"] = broken
    job_id = await rt.store.enqueue(JobSpec("broken", {}))
    job = await rt.store.claim("w", ["broken"])
    assert job is not None
    assert await run_one(rt, job, "w") == "ready"
    again = await rt.store.get_job(job_id)
    assert again is not None and again.not_before > job.not_before and "ValueError: bug" in (again.last_error or "")
    assert await rt.store.claim("w", ["broken"]) is None  # not before the backoff


async def test_dedupe_key_enqueues_once(rt: Runtime) -> None:
    a = await rt.store.enqueue(JobSpec("x", {"n": 1}, dedupe_key="same"))
    b = await rt.store.enqueue(JobSpec("x", {"n": 2}, dedupe_key="same"))
    assert a == b
    assert len(await rt.store.list_jobs(kind="x")) == 1
