"""Fixtures of the replay tool's tests: one data dir written by the real engine per session
(`reference`), copied afresh for each test that reads or damages it (`data_dir`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.tools.scenario import Reference, build_reference


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return build_reference(tmp_path_factory.mktemp("reference") / "data")


@pytest.fixture
def data_dir(reference: Reference, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(reference.data_dir, copy)
    return copy
