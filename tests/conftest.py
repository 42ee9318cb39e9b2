"""Fixtures every area's tests share: a real SQLite runtime in a temporary data directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workers.runtime import Runtime, close_runtime, open_runtime, settings_from

FIXTURES = Path(__file__).parent / "fixtures"


def make_settings(data_dir: Path, **overrides: object):
    return settings_from(None, **{"core.data_dir": str(data_dir), **overrides})


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(make_settings(tmp_path / "data"))
    try:
        yield runtime
    finally:
        await close_runtime(runtime)
