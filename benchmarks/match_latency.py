"""`Patient/$match` latency with 200,000 patients stored in PostgreSQL.

Generates the patients with the demo generator (half registered at Hospital General de
Ciudad Juárez, half at University Medical Center of El Paso, a quarter of the Mexican ones
on both sides), loads each hospital's with `puente import` (the real import path: every
batch's Patients get their features and blocking keys in the import's transaction, and
one matching task per batch links them across the border after commit), serves with
`puente serve` (one worker, no broker, read auditing off) and sends a bounded closed loop
of `$match` requests from one client, then from a few at once: each asks HGCJ's records
for a person as El Paso registered him or her (nicknames, hyphenated or single surnames,
month-first dates). Prints the load time, the links made, and p50/p95 of `$match`.

    python benchmarks/match_latency.py [--database-url URL] [--patients 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    DEFAULT_SERVER,
    PUENTE,
    closed_loop,
    environment,
    fresh_database,
    kept_database,
    percentile,
    prepare,
    serve,
    system_token,
    use,
)


def write_patients(folder: Path, patients: int) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Each hospital's Patients as NDJSON; and the El Paso records of shared people, which
    the benchmark asks HGCJ to match."""
    from demo.generator import generate

    scenario = generate(patients_per_hospital=patients // 2, seed=7)
    folders: dict[str, Path] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for system, records in scenario.records.items():
        target = folder / system
        target.mkdir()
        chosen = [r for r in records if r["resourceType"] == "Patient"]
        by_id.update((str(r["id"]), r) for r in chosen)
        lines = "\n".join(json.dumps(p, ensure_ascii=False) for p in chosen)
        (target / "Patient.ndjson").write_text(lines + "\n", "utf-8")
        folders[system] = target
    queries = [by_id[us] for _mx, us in scenario.shared]
    return folders, queries


def load(folder: Path, system: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        [str(PUENTE), "import", str(folder), "--system", system, "--quiet"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def analyze(database_url: str) -> None:
    """What autovacuum does after a bulk load in production: the test server runs with
    autovacuum off, and a key table without statistics is planned as seq scans."""
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def link_counts(database_url: str) -> dict[str, int]:
    from exchange.matching.models import MatchLink

    engine = create_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        statement = select(MatchLink.status, func.count()).group_by(MatchLink.status)
        counts = {str(s): int(n) for s, n in session.execute(statement).all()}
    engine.dispose()
    return counts


def parameters(patient: dict[str, Any]) -> dict[str, Any]:
    query = {k: v for k, v in patient.items() if k not in ("id", "meta")}
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": query},
            {"name": "count", "valueInteger": 5},
        ],
    }


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    if args.keep:
        with kept_database(args.database_url, args.keep) as found:
            yield found
    else:
        with fresh_database(args.database_url, "match") as url:
            yield url, False


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="load into database NAME and keep it; a later run with the same NAME only "
        "measures (drop it yourself when done)",
    )
    parser.add_argument("--load-only", action="store_true", help="with --keep: do not measure")
    args = parser.parse_args()
    # Tokens are signed with it: a kept database is measured with the same key.
    secret_key = os.environ.get("PUENTE_BENCH_SECRET_KEY") or secrets.token_urlsafe(48)
    with (
        tempfile.TemporaryDirectory(prefix="puente-bench-") as scratch,
        _database(args) as (database_url, loaded),
    ):
        folders, queries = write_patients(Path(scratch), args.patients)
        env = os.environ | environment(database_url, secret_key)
        seconds: dict[str, float] = {}
        if loaded:
            use(database_url, secret_key)
        else:
            prepare(database_url, secret_key)
            for system, path in folders.items():
                seconds[system] = load(path, system, env)
                analyze(database_url)
        if args.load_only:
            print(f"loaded into {database_url} in {sum(seconds.values()):.0f} s")
            return 0
        counts = link_counts(database_url)
        token = system_token("hgcj", "MX", "system/*.rs")
        bodies = [parameters(q) for q in queries]

        def match(http: httpx.Client, n: int) -> int:
            body = bodies[n % len(bodies)]
            headers = {"Content-Type": "application/fhir+json"}
            return http.post("/fhir/Patient/$match", json=body, headers=headers).status_code

        # One client: a request's own latency (the aim). Then `--clients` at once on the
        # one worker: each request also waits for the others' (queueing, not the store).
        results: dict[int, tuple[list[float], int]] = {}
        with serve(database_url, secret_key) as url:
            closed_loop(url, token, match, total=100, clients=args.clients, max_seconds=30)
            for clients in sorted({1, args.clients}):
                results[clients] = closed_loop(
                    url, token, match, total=args.requests, clients=clients, max_seconds=180
                )
    took = ", ".join(f"{system} {s:.0f} s" for system, s in seconds.items()) or "earlier"
    print(
        f"$match latency: {args.patients} patients stored (puente import with matching: "
        f"{took}), PostgreSQL, one uvicorn worker"
    )
    print(f"links after import: {json.dumps(counts, sort_keys=True)}")
    for clients, (latencies, errors) in results.items():
        p95 = percentile(latencies, 0.95)
        print(
            f"$match, {clients} client{'s' if clients > 1 else ' '} {len(latencies):5d} req  "
            f"{errors} errors  p50 {percentile(latencies, 0.50):6.2f} ms  p95 {p95:6.2f} ms"
            + (f"  aim p95 < 50 ms: {'met' if p95 < 50 else 'MISSED'}" if clients == 1 else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
