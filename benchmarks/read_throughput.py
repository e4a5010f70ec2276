"""Read throughput with and without auditing every read (PUENTE_AUDIT_READS).

Builds a fresh database (PostgreSQL by default, or a SQLite file), migrates it, registers
the two demo hospitals, mints a system token, then for each mode starts `puente serve` on
a free loopback port, warms up, and runs a bounded closed loop of authenticated
`GET /fhir/Organization/hgcj` from N client threads. Prints requests/s, p50 and p99 latency,
and the audit rows each mode created (and how many the sealer had chained by the end).
A third mode audits reads but names a broker (Celery's in-memory one), so requests only
insert their rows and sealing is left to a worker that is not run here: the difference
from the first mode is what embedded (in-process, per-request) sealing costs.
Loopback only; stops by itself; drops its database.

    python benchmarks/read_throughput.py [--database-url URL | --sqlite]
        [--requests 3000] [--concurrency 8] [--max-seconds 15] [--warmup 200]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BASE_URL = "http://127.0.0.1:8000"  # the token audience; the server's real port differs
PATH = "/fhir/Organization/hgcj"
HOSPITALS = (
    ("hgcj", "Hospital General de Ciudad Juárez", "MX"),
    ("umcep", "University Medical Center of El Paso", "US"),
)
PUENTE = Path(sys.executable).with_name("puente")


@dataclass(frozen=True)
class Result:
    mode: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    audit_rows: int
    sealed_rows: int

    def line(self) -> str:
        ordered = sorted(self.latencies_ms)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{self.mode:<21} {self.requests:>5} req  {self.errors:>3} errors  "
            f"{self.requests / self.seconds:>8.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"audit rows +{self.audit_rows} (sealed +{self.sealed_rows})"
        )


@contextmanager
def fresh_database(server_url: str | None) -> Iterator[str]:
    """A new, empty database; dropped (or deleted) afterwards."""
    if server_url is None:
        folder = tempfile.mkdtemp(prefix="puente-bench-")
        try:
            yield f"sqlite:///{folder}/bench.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    server = make_url(server_url)
    name = f"puente_bench_{os.getpid()}"
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


def prepare(database_url: str, secret_key: str) -> str:
    """Migrate, register the hospitals, and return a system token for hgcj."""
    os.environ.update(
        {"PUENTE_DATABASE_URL": database_url, "PUENTE_SECRET_KEY": secret_key,
         "PUENTE_BASE_URL": BASE_URL, "PUENTE_ENV": "development"}
    )  # fmt: skip
    os.environ.pop("PUENTE_BROKER_URL", None)
    from exchange.service import register_hospital_organization
    from puente.auth import tokens
    from puente.auth.scopes import Role, grant
    from puente.migrate import upgrade
    from puente.settings import get_settings

    get_settings.cache_clear()
    upgrade(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        for code, name, country in HOSPITALS:
            register_hospital_organization(session, code=code, name=name, country=country)
        session.commit()
    engine.dispose()
    issued = tokens.issue(
        get_settings(),
        subject="hgcj-client",
        role=Role.SYSTEM,
        scopes=grant(Role.SYSTEM, "system/Organization.rs"),
        org_code="hgcj",
        country="MX",
        ttl=3600,
    )
    return issued.access_token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Mode:
    name: str
    audit_reads: bool
    broker_url: str | None = None


MODES = (
    Mode("audit_reads=true", audit_reads=True),
    Mode("audit_reads=false", audit_reads=False),
    Mode("audit, seal deferred", audit_reads=True, broker_url="memory://"),
)


@contextmanager
def server(database_url: str, secret_key: str, mode: Mode) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "PUENTE_DATABASE_URL": database_url,
        "PUENTE_SECRET_KEY": secret_key,
        "PUENTE_BASE_URL": BASE_URL,
        "PUENTE_ENV": "development",
        "PUENTE_AUDIT_READS": "true" if mode.audit_reads else "false",
        "PUENTE_LOG_LEVEL": "WARNING",
    }
    env.pop("PUENTE_BROKER_URL", None)
    if mode.broker_url:
        env["PUENTE_BROKER_URL"] = mode.broker_url
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


def load(
    url: str, token: str, *, total: int, concurrency: int, max_seconds: float
) -> tuple[int, int, float, list[float]]:
    """A closed loop: each client sends its next request when the previous one answered."""
    remaining = [total]
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    started = time.perf_counter()
    deadline = started + max_seconds

    def client() -> None:
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            while time.perf_counter() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        break
                    remaining[0] -= 1
                begin = time.perf_counter()
                response = http.get(PATH)
                mine.append((time.perf_counter() - begin) * 1000)
                failed += response.status_code != 200
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(latencies), errors[0], elapsed, latencies


def counts(database_url: str) -> tuple[int, int]:
    from puente.audit.models import AuditChain, AuditEntry

    engine = create_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        sealed = session.scalar(select(func.count()).select_from(AuditChain)) or 0
    engine.dispose()
    return int(entries), int(sealed)


def run_mode(
    database_url: str, secret_key: str, token: str, args: argparse.Namespace, mode: Mode
) -> Result:
    with server(database_url, secret_key, mode) as url:
        load(url, token, total=args.warmup, concurrency=args.concurrency, max_seconds=5)
        entries_before, sealed_before = counts(database_url)
        done, errors, seconds, latencies = load(
            url, token, total=args.requests, concurrency=args.concurrency,
            max_seconds=args.max_seconds,
        )  # fmt: skip
    entries_after, sealed_after = counts(database_url)
    return Result(
        mode.name, done, errors, seconds, latencies,
        entries_after - entries_before, sealed_after - sealed_before,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    target.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    secret_key = secrets.token_urlsafe(48)
    with fresh_database(None if args.sqlite else args.database_url) as database_url:
        backend = "SQLite" if args.sqlite else "PostgreSQL"
        token = prepare(database_url, secret_key)
        print(
            f"read throughput: GET {PATH}, {backend}, one uvicorn worker, no broker, "
            f"{args.concurrency} clients, up to {args.requests} requests or "
            f"{args.max_seconds:g} s per mode (after {args.warmup} warm-up requests)"
        )
        results = [run_mode(database_url, secret_key, token, args, mode) for mode in MODES]
        for result in results:
            print(result.line())
        on, off, deferred = (r.requests / r.seconds for r in results)
        print(
            f"auditing every read costs {1 - on / off:.0%} of read throughput here "
            f"({1 - deferred / off:.0%} with sealing left to a worker)"
        )
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
