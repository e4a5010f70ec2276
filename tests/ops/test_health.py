"""Liveness and readiness (§9): what an orchestrator's probes see."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from puente.settings import get_settings

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Lets a test name a broker; the settings are re-read, and restored after."""
    # The Celery app reads the broker once, at import: make sure that happened already,
    # so that the broker named here cannot stick to it for the tests that follow.
    import puente.tasks  # noqa: F401

    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def _use_broker(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PUENTE_BROKER_URL", url)
    get_settings.cache_clear()


def _redis_is_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


def test_healthz_answers_without_a_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readyz_names_an_unreachable_broker(client: TestClient, broker: pytest.MonkeyPatch) -> None:
    _use_broker(broker, "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not-ready",
        "checks": {"database": "ok", "broker": "unreachable"},
    }


def test_readyz_is_ready_with_a_reachable_broker(
    client: TestClient, broker: pytest.MonkeyPatch
) -> None:
    if not _redis_is_up():
        pytest.skip(f"no Redis on {REDIS_HOST}:{REDIS_PORT}")
    _use_broker(broker, f"redis://{REDIS_HOST}:{REDIS_PORT}/15")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_probes_carry_a_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "probe-00000001"})
    assert response.headers["X-Request-ID"] == "probe-00000001"
