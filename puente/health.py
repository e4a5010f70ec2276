"""Liveness and readiness for operators and orchestrators."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from puente.db import get_engine
from puente.settings import get_settings

router = APIRouter(tags=["Operations"])
log = logging.getLogger("puente.health")


@router.get("/healthz", summary="The process is up")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _broker_reachable(url: str) -> bool:
    from kombu import Connection

    try:
        # One attempt, no back-off: an orchestrator's probe must answer within its timeout.
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:  # noqa: BLE001 - kombu raises many transport-specific errors
        log.warning("broker_unreachable")
        return False
    return True


@router.get("/readyz", summary="The database (and the broker, when configured) answer")
def readyz() -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any driver error means not ready
        log.warning("database_unreachable")
        checks["database"] = "unreachable"
    broker = get_settings().broker_url
    if broker:
        checks["broker"] = "ok" if _broker_reachable(broker) else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status_code=200 if ready else 503,
    )
