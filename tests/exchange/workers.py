"""Real `puente worker` processes for the tests that kill one mid-task (`celery_worker`
tests; they run only with `PUENTE_TEST_BROKER_URL`)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.live import start_worker, stop

BROKER_URL = os.environ.get("PUENTE_TEST_BROKER_URL")
VISIBILITY_TIMEOUT = 5
WAIT_SECONDS = 90


class Workers:
    """`puente worker` processes on the test database; all stopped at the end."""

    def __init__(self, database_url: str, logs: Path) -> None:
        assert BROKER_URL is not None
        self.env = os.environ | {
            "PUENTE_BROKER_URL": BROKER_URL,
            "PUENTE_DATABASE_URL": database_url,
            "PUENTE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        }
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = start_worker(self.env, self.logs / f"worker-{len(self.started)}.log")
        self.started.append(process)
        return process

    def kill_once(
        self, process: subprocess.Popen[bytes], progressed: Callable[[], bool], deadline: float
    ) -> None:
        """SIGKILL `process` as soon as `progressed()` says it committed some work (and
        before it finished: it must still be running), by `deadline` (monotonic)."""
        while not progressed():
            assert time.monotonic() < deadline, self.tail()
            assert process.poll() is None, self.tail()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def tail(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in sorted(self.logs.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.started:
            stop(process)
