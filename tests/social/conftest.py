"""Fixtures of the social channels: the fake X and Graph servers and runtimes pointed at them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.fake_graph import APP_SECRET, PAGE_ID, VERIFY_TOKEN, FakeGraph
from tests.support.fake_x import OUR_ID, FakeX
from workers.jobs import run_one
from workers.runtime import Runtime

JOB_KINDS = ["deliver", "facebook.webhook"]


@pytest.fixture
async def fake_x() -> AsyncIterator[FakeX]:
    fake = await FakeX().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def x_rt(rt: Runtime, fake_x: FakeX) -> Runtime:
    cfg = rt.settings.x
    cfg.api_base_url = fake_x.url
    cfg.user_id = OUR_ID
    cfg.username = "AtencionCiudUY"
    cfg.bearer_token = "bearer-de-prueba"
    cfg.rate_limit_margin_s = 0.05
    cfg.poll_interval_s = 0.2
    return rt


@pytest.fixture
async def fake_graph() -> AsyncIterator[FakeGraph]:
    fake = await FakeGraph().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fb_rt(rt: Runtime, fake_graph: FakeGraph) -> Runtime:
    cfg = rt.settings.facebook
    cfg.page_id = PAGE_ID
    cfg.graph_base_url = fake_graph.url
    cfg.graph_version = fake_graph.version
    cfg.app_secret = APP_SECRET
    cfg.verify_token = VERIFY_TOKEN
    cfg.page_token = fake_graph.token
    cfg.attachment_timeout_s = 3.0
    return rt


@pytest.fixture
async def web_client(fb_rt: Runtime) -> AsyncIterator[TestClient]:
    from web.app import create_app

    client = TestClient(TestServer(create_app(fb_rt)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def drain(rt: Runtime, kinds: list[str] | None = None) -> list[str]:
    """Run every ready job of ``kinds`` (default: deliveries and webhooks; triage has no handler here)."""
    outcomes = []
    while (job := await rt.store.claim("test-worker", kinds or JOB_KINDS, 30)) is not None:
        outcomes.append(await run_one(rt, job, "test-worker"))
    return outcomes
