"""Wall time of a 100-entry transaction Bundle: 50 patients and 50 ER visits that
reference them by urn:uuid, posted repeatedly to `puente serve` on loopback.

    python benchmarks/transaction_latency.py [--database-url URL] [--bundles 30]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

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

EMER = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"}


def bundle(pairs: int = 50) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for n in range(pairs):
        full_url = f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:bench:mrn", "value": uuid.uuid4().hex}],
                    "name": [{"family": "Hernández López", "given": ["José", f"N{n}"]}],
                    "birthDate": "1980-05-17",
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": EMER,
                    "subject": {"reference": full_url},
                },
                "request": {"method": "POST", "url": "Encounter"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--bundles", type=int, default=30)
    args = parser.parse_args()
    secret_key = secrets.token_urlsafe(48)
    with fresh_database(args.database_url, "transaction") as database_url:
        prepare(database_url, secret_key)
        token = system_token("hgcj", "MX", "system/*.cruds")

        def post(http: httpx.Client, _n: int) -> int:
            headers = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
            return http.post("/fhir", json=bundle(), headers=headers).status_code

        with serve(database_url, secret_key) as url:
            closed_loop(url, token, post, total=3, clients=1, max_seconds=60)
            latencies, errors = closed_loop(
                url, token, post, total=args.bundles, clients=1, max_seconds=300
            )
    print(
        f"transaction latency: Bundles of 100 entries (50 Patient + 50 Encounter by urn:uuid), "
        f"PostgreSQL, one client, {len(latencies)} Bundles, {errors} errors"
    )
    print(
        f"p50 {percentile(latencies, 0.50):7.1f} ms   p95 {percentile(latencies, 0.95):7.1f} ms   "
        f"max {max(latencies):7.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
