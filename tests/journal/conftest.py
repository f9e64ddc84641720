"""The contract suite's fixtures: every test runs once per journal backend (`journal_backend`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.journal import Journal
from tests.journal.backends import BACKENDS, Backend


@pytest.fixture(params=sorted(BACKENDS))
def journal_backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def journal(journal_backend: Backend, data_dir: Path) -> Iterator[Journal]:
    opened = journal_backend.open(data_dir)
    try:
        yield opened
    finally:
        opened.close()
