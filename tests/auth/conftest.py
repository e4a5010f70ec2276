"""Fixtures of the authentication tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import truncate_all


@pytest.fixture
def committed(engine: Engine) -> Iterator[None]:
    """For tests that commit outside the HTTP client (CLI, tasks): removed afterwards."""
    yield
    truncate_all(engine)
