"""Import throughput of `puente import` against parsing and validating the same lines.

Generates the synthetic scenario with enough patients that one hospital (hgcj) has about
100,000 resources, writes it as NDJSON, then prints (a) how fast one process merely parses
(`json.loads`) and validates (`exchange.validation.validate`) those lines, (b) the wall
clock throughput of `puente import FOLDER --system hgcj` as a separate process (start-up,
reading and planning included) on a fresh PostgreSQL database, and (c) the ratio (b)/(a).
A second import of the same folder (everything unchanged) is timed too. Loopback only;
drops its database and files.

    python benchmarks/import_throughput.py [--database-url URL] [--patients 19200]
        [--workers N]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import DEFAULT_SERVER, PUENTE, environment, fresh_database, prepare


def parse_and_validate_rate(folder: Path) -> tuple[int, float]:
    from exchange.validation import validate

    texts = [
        line
        for path in sorted(folder.glob("*.ndjson"))
        for line in path.read_text("utf-8").splitlines()
        if line.strip()
    ]
    started = time.perf_counter()
    for text in texts:
        validate(json.loads(text))
    return len(texts), len(texts) / (time.perf_counter() - started)


def timed_import(folder: Path, env: dict[str, str], workers: int | None) -> tuple[float, str]:
    command = [str(PUENTE), "import", str(folder), "--system", "hgcj", "--quiet"]
    if workers:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=1800
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"puente import failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--patients", type=int, default=19200, help="patients a hospital")
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    args = parser.parse_args()
    from demo.generator import generate, write_ndjson

    secret_key = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="puente-bench-") as scratch:
        folder = write_ndjson(generate(patients_per_hospital=args.patients), Path(scratch))["hgcj"]
        count, validate_rate = parse_and_validate_rate(folder)
        with fresh_database(args.database_url, "import") as database_url:
            prepare(database_url, secret_key)
            env = os.environ | environment(database_url, secret_key)
            first, summary = timed_import(folder, env, args.workers)
            again, summary_again = timed_import(folder, env, args.workers)
    rate = count / first
    workers = args.workers or os.cpu_count()
    print(f"import throughput: {count} hgcj resources ({args.patients} patients), PostgreSQL")
    print(f"(a) json.loads + validate, one process: {validate_rate:8.0f} resources/s")
    print(
        f"(b) puente import --workers {workers}:       {rate:8.0f} resources/s "
        f"({first:.1f} s wall clock; {summary})"
    )
    print(f"(c) ratio (b)/(a):                      {rate / validate_rate:8.2f}")
    print(
        f"    import again (all unchanged):       {count / again:8.0f} resources/s "
        f"({again:.1f} s; {summary_again})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
