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
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    DEFAULT_SERVER,
    closed_loop,
    fresh_database,
    percentile,
    prepare,
    serve,
    system_token,
)

PATH = "/fhir/Organization/hgcj"


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
        p50 = percentile(self.latencies_ms, 0.50)
        p99 = percentile(self.latencies_ms, 0.99)
        return (
            f"{self.mode:<21} {self.requests:>5} req  {self.errors:>3} errors  "
            f"{self.requests / self.seconds:>8.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"audit rows +{self.audit_rows} (sealed +{self.sealed_rows})"
        )


@dataclass(frozen=True)
class Mode:
    name: str
    audit_reads: bool
    broker_url: str | None = None

    def settings(self) -> dict[str, str]:
        chosen = {"PUENTE_AUDIT_READS": "true" if self.audit_reads else "false"}
        if self.broker_url:
            chosen["PUENTE_BROKER_URL"] = self.broker_url
        return chosen


MODES = (
    Mode("audit_reads=true", audit_reads=True),
    Mode("audit_reads=false", audit_reads=False),
    Mode("audit, seal deferred", audit_reads=True, broker_url="memory://"),
)


def read(http: httpx.Client, _number: int) -> int:
    return http.get(PATH).status_code


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
    with serve(database_url, secret_key, settings=mode.settings()) as url:
        closed_loop(url, token, read, total=args.warmup, clients=args.concurrency, max_seconds=5)
        entries_before, sealed_before = counts(database_url)
        started = time.perf_counter()
        latencies, errors = closed_loop(
            url, token, read, total=args.requests, clients=args.concurrency,
            max_seconds=args.max_seconds,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    entries_after, sealed_after = counts(database_url)
    return Result(
        mode.name, len(latencies), errors, seconds, latencies,
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
    server_url = None if args.sqlite else args.database_url
    with fresh_database(server_url, "read") as database_url:
        backend = "SQLite" if args.sqlite else "PostgreSQL"
        prepare(database_url, secret_key)
        token = system_token("hgcj", "MX", "system/Organization.rs")
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
