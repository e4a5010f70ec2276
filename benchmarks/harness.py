"""What the benchmarks share: a scratch database, the demo hospitals, a token, a running
`puente serve` on a loopback port, a bounded closed loop of clients, percentiles."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BASE_URL = "http://127.0.0.1:8000"  # the token audience; the server's real port differs
HOSPITALS = (
    ("hgcj", "Hospital General de Ciudad Juárez", "MX"),
    ("umcep", "University Medical Center of El Paso", "US"),
)
PUENTE = Path(sys.executable).with_name("puente")


@contextmanager
def kept_database(server_url: str, name: str) -> Iterator[tuple[str, bool]]:
    """A named PostgreSQL database that outlives the run, so that a large load is done
    once and measured again later (on a quieter machine): its URL, and whether it was
    there already. `DROP DATABASE` it when done."""
    server = make_url(server_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        existed = bool(
            conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        )
        if not existed:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield server.set(database=name).render_as_string(hide_password=False), existed


@contextmanager
def fresh_database(server_url: str | None, label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on `server_url`'s server, or with no server a
    SQLite file in a temporary folder; dropped (or deleted) afterwards."""
    if server_url is None:
        folder = tempfile.mkdtemp(prefix="puente-bench-")
        try:
            yield f"sqlite:///{folder}/{label}.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    server = make_url(server_url)
    name = f"puente_bench_{label}_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def environment(database_url: str, secret_key: str) -> dict[str, str]:
    return {
        "PUENTE_DATABASE_URL": database_url,
        "PUENTE_SECRET_KEY": secret_key,
        "PUENTE_BASE_URL": BASE_URL,
        "PUENTE_ENV": "development",
        "PUENTE_LOG_LEVEL": "WARNING",
    }


def use(database_url: str, secret_key: str) -> None:
    """This process's settings for `database_url` (no broker: tasks run in-process)."""
    from puente.settings import get_settings

    os.environ.update(environment(database_url, secret_key))
    os.environ.pop("PUENTE_BROKER_URL", None)
    get_settings.cache_clear()


def prepare(database_url: str, secret_key: str) -> None:
    """Migrate, and register the two hospitals as systems and as organizations."""
    from exchange.service import register_hospital_organization
    from puente.auth import service as auth
    from puente.migrate import upgrade

    use(database_url, secret_key)
    upgrade(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        for code, name, country in HOSPITALS:
            auth.add_system(session, code=code, name=name, country=country)
            register_hospital_organization(session, code=code, name=name, country=country)
        session.commit()
    engine.dispose()


def system_token(code: str, country: str, scopes: str) -> str:
    from puente.auth import tokens
    from puente.auth.scopes import Role, grant
    from puente.settings import get_settings

    issued = tokens.issue(
        get_settings(),
        subject=f"{code}-client",
        role=Role.SYSTEM,
        scopes=grant(Role.SYSTEM, scopes),
        org_code=code,
        country=country,
        ttl=3600,
    )
    return issued.access_token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    database_url: str, secret_key: str, *, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`puente serve` (one worker; by default no broker and reads not audited, which
    `settings`, more PUENTE_* variables, may change) on a free loopback port."""
    port = free_port()
    env = os.environ | environment(database_url, secret_key) | {"PUENTE_AUDIT_READS": "false"}
    env.pop("PUENTE_BROKER_URL", None)
    env.update(settings or {})
    process = subprocess.Popen(
        [str(PUENTE), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("puente serve exited during start-up")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("puente serve did not answer within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


Call = Callable[[httpx.Client, int], int]  # (client, request number) -> HTTP status


def closed_loop(
    url: str, token: str, call: Call, *, total: int, clients: int, max_seconds: float
) -> tuple[list[float], int]:
    """Each client sends its next request when the previous one answered; returns the
    latencies (ms) and how many answers were not 2xx."""
    counter = [0]
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    deadline = time.perf_counter() + max_seconds

    def client() -> None:
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while time.perf_counter() < deadline:
                with lock:
                    number = counter[0]
                    if number >= total:
                        break
                    counter[0] += 1
                begin = time.perf_counter()
                status = call(http, number)
                mine.append((time.perf_counter() - begin) * 1000)
                failed += not 200 <= status < 300
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]
