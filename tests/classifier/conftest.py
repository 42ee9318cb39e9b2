"""Shared fixtures: one cold-start model trained once per session (from the packaged catalogue sample)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier import api
from classifier.api import Classifier


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("classifier-data")
    api.train(data_dir, (), evaluate_holdout=False)
    return data_dir


@pytest.fixture(scope="session")
def clf(trained_dir: Path) -> Classifier:
    return api.load_active(trained_dir, cold_start=False)


@pytest.fixture
def data_dir(trained_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A private data dir holding a copy of the session's trained model (no retraining)."""
    target = tmp_path / "data"
    shutil.copytree(trained_dir, target)
    yield target
