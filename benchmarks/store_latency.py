"""Read-by-id and Patient name+birthdate search latency with 100,000 patients stored.

Generates the patients (demo/generator.py, both hospitals' conventions), loads them with
`puente import` (the real import path, all cores), serves with `puente serve` (one worker,
no broker, read auditing off so that the figures are the store's own) and sends a bounded
closed loop of requests from a few clients on loopback. Prints p50 and p95 of each.

    python benchmarks/store_latency.py [--database-url URL] [--patients 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    DEFAULT_SERVER,
    PUENTE,
    closed_loop,
    environment,
    fresh_database,
    percentile,
    prepare,
    serve,
    system_token,
)


def write_patients(folder: Path, patients: int) -> list[dict[str, object]]:
    """`patients` Patient resources (half each hospital's style) as one hgcj NDJSON file."""
    from demo.generator import generate

    scenario = generate(patients_per_hospital=patients // 2, seed=7)
    chosen: list[dict[str, object]] = []
    for system, records in scenario.records.items():
        for record in records:
            if record["resourceType"] == "Patient":
                # one owner, so that every read and search sees them
                owner_id = str(record["id"]).replace(system, f"hgcj-{system}", 1)
                chosen.append({**record, "id": owner_id})
    lines = "\n".join(json.dumps(p, ensure_ascii=False) for p in chosen)
    (folder / "Patient.ndjson").write_text(lines + "\n", "utf-8")
    return chosen


def load(folder: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        [str(PUENTE), "import", str(folder), "--system", "hgcj", "--quiet"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def _search_terms(patient: dict[str, object]) -> dict[str, str]:
    names = patient["name"]
    assert isinstance(names, list)
    family = str(names[0]["family"]).split()[0].split("-")[0]
    return {"name": family, "birthdate": str(patient["birthDate"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(11)
    secret_key = secrets.token_urlsafe(48)
    with (
        tempfile.TemporaryDirectory(prefix="puente-bench-") as scratch,
        fresh_database(args.database_url, "latency") as database_url,
    ):
        folder = Path(scratch)
        patients = write_patients(folder, args.patients)
        prepare(database_url, secret_key)
        seconds = load(folder, os.environ | environment(database_url, secret_key))
        token = system_token("hgcj", "MX", "system/*.rs")
        ids = [str(p["id"]) for p in patients]
        terms = [_search_terms(p) for p in rng.sample(patients, 500)]

        def read(http: httpx.Client, _n: int) -> int:
            return http.get(f"/fhir/Patient/{rng.choice(ids)}").status_code

        def search(http: httpx.Client, n: int) -> int:
            return http.get("/fhir/Patient", params=terms[n % len(terms)]).status_code

        results = {}
        with serve(database_url, secret_key) as url:
            for name, call in (("read by id", read), ("name+birthdate", search)):
                closed_loop(url, token, call, total=100, clients=args.clients, max_seconds=30)
                latencies, errors = closed_loop(
                    url, token, call, total=args.requests, clients=args.clients, max_seconds=120
                )
                results[name] = (latencies, errors)
    print(
        f"store latency: {len(patients)} patients (loaded by puente import in {seconds:.0f} s), "
        f"PostgreSQL, one uvicorn worker, {args.clients} clients"
    )
    for name, (latencies, errors) in results.items():
        print(
            f"{name:16} {len(latencies):5d} req  {errors} errors  "
            f"p50 {percentile(latencies, 0.50):6.2f} ms  p95 {percentile(latencies, 0.95):6.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
