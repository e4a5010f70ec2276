"""Fixtures of the exchange tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exchange.workers import Workers


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(database_url, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
