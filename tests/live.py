"""A real `puente serve` or `puente worker` for tests that need one: a port, an
environment, a wait, a stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from puente.settings import get_settings

STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def puente_command() -> list[str]:
    script = Path(sys.executable).with_name("puente")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from puente.cli import main; main()"]


def server_env(database_url: str, *, base_url: str | None = None) -> dict[str, str]:
    """The server's environment: the test's secret (tokens minted here must pass) and,
    unless given, the test's base URL."""
    settings = get_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
    env.update(
        PUENTE_ENV="development",
        PUENTE_DATABASE_URL=database_url,
        PUENTE_SECRET_KEY=settings.secret_key,
        PUENTE_BASE_URL=base_url or settings.base_url,
        PUENTE_LOG_LEVEL="INFO",
    )
    return env


def wait_until_up(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"puente serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"puente serve did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One `puente worker` process (solo pool) with `env`, its output appended to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [*puente_command(), "worker", "--pool", "solo", "--concurrency", "1"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (Celery's warm shutdown), then SIGKILL if it has not exited by `timeout`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
