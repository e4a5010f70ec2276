"""Import throughput of `puente import` against parsing and validating the same lines.

Generates the synthetic scenario with enough patients that one hospital (hgcj) has about
100,000 resources, writes it as NDJSON, then prints (a) how fast one process merely parses
(`json.loads`) and validates (`exchange.validation.validate`) those lines, (b) the wall
clock throughput of `puente import FOLDER --system hgcj` as a separate process (start-up,
reading and planning included) on a fresh PostgreSQL database, and (c) the ratio (b)/(a).
A second import of the same folder (everything unchanged) is timed too. Loop (a) runs
before the first import and again after it, and the ratio takes the mean of the two rates:
this shared machine's speed drifts by tens of percent within minutes, and a single loop
run before the import made the ratio swing with it (0.37 and 0.48 on one commit). CPU seconds per
1,000 resources are printed beside the rates, less noisy than wall clock on a shared
machine: of the parse and validate loop, of `puente import` and its worker processes, and
(when the server runs on this machine and its processes can be read) of the PostgreSQL
backends serving the import. Loopback only; drops its database and files.

    python benchmarks/import_throughput.py [--database-url URL] [--patients 19200]
        [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import DEFAULT_SERVER, PUENTE, environment, fresh_database, prepare


@dataclass(frozen=True)
class Loop:
    lines: int
    rate: float  # lines per second, wall clock
    cpu: float  # CPU seconds of the loop


def parse_and_validate_rate(folder: Path) -> Loop:
    """How fast one process parses and validates the folder's lines: a fresh process each
    time, so that the second loop finds nothing the first one warmed or remembered."""
    done = subprocess.run(
        [sys.executable, __file__, "--loop", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return Loop(**json.loads(done.stdout))


def _loop(folder: Path) -> Loop:
    from exchange.validation import validate

    texts = [
        line
        for path in sorted(folder.glob("*.ndjson"))
        for line in path.read_text("utf-8").splitlines()
        if line.strip()
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        validate(json.loads(text))
    return Loop(len(texts), len(texts) / (time.perf_counter() - started), time.process_time() - cpu)


class BackendCpu:
    """CPU seconds of the PostgreSQL backends connected to one database, read from /proc
    every 0.1 s while they live (a backend's last tenth of a second may be missed); None
    when the server's processes cannot be read (another machine, another user)."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        url = make_url(database_url)
        self.name = url.database
        self.engine = create_engine(url.set(database="postgres"), poolclass=NullPool)
        self.seen: dict[int, float] = {}
        self.readable = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()

    def _poll(self) -> None:
        from sqlalchemy import text

        tick = os.sysconf("SC_CLK_TCK")
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                pids = conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                    {"name": self.name},
                ).scalars()
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except FileNotFoundError:
                        continue  # it ended between the query and the read (or runs elsewhere)
                    except OSError:
                        self.readable = False
                        continue
                    self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick
                conn.rollback()
                time.sleep(0.1)

    @property
    def seconds(self) -> float | None:
        return sum(self.seen.values()) if self.readable and self.seen else None


@dataclass(frozen=True)
class Timed:
    seconds: float  # wall clock
    cpu: float  # `puente import` and its worker processes
    database_cpu: float | None  # the PostgreSQL backends serving it
    summary: str


def timed_import(
    folder: Path, env: dict[str, str], database_url: str, workers: int | None
) -> Timed:
    command = [str(PUENTE), "import", str(folder), "--system", "hgcj", "--quiet"]
    if workers:
        command += ["--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with BackendCpu(database_url) as backends:
        started = time.perf_counter()
        done = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=1800
        )
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"puente import failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Timed(seconds, cpu, backends.seconds, done.stdout.strip().splitlines()[-1])


def per_thousand(seconds: float | None, count: int) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000 / count:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--patients", type=int, default=19200, help="patients a hospital")
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    parser.add_argument("--loop", type=Path, help=argparse.SUPPRESS)  # loop (a) alone
    args = parser.parse_args()
    if args.loop:
        print(json.dumps(asdict(_loop(args.loop))))
        return 0
    from demo.generator import generate, write_ndjson

    secret_key = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="puente-bench-") as scratch:
        folder = write_ndjson(generate(patients_per_hospital=args.patients), Path(scratch))["hgcj"]
        before = parse_and_validate_rate(folder)
        with fresh_database(args.database_url, "import") as database_url:
            prepare(database_url, secret_key)
            env = os.environ | environment(database_url, secret_key)
            first = timed_import(folder, env, database_url, args.workers)
            after = parse_and_validate_rate(folder)
            again = timed_import(folder, env, database_url, args.workers)
    count = before.lines
    rate = count / first.seconds
    validate_rate = (before.rate + after.rate) / 2
    workers = args.workers or os.cpu_count()
    print(f"import throughput: {count} hgcj resources ({args.patients} patients), PostgreSQL")
    print(
        f"(a) json.loads + validate, one process: {validate_rate:8.0f} resources/s "
        f"(before the import {before.rate:.0f}, after it {after.rate:.0f}; CPU s per 1,000: "
        f"{per_thousand(before.cpu, count)}, {per_thousand(after.cpu, count)})"
    )
    print(
        f"(b) puente import --workers {workers}:       {rate:8.0f} resources/s "
        f"({first.seconds:.1f} s wall clock; {first.summary})"
    )
    print(f"(c) ratio (b)/(a):                      {rate / validate_rate:8.2f}")
    print(
        f"    import again (all unchanged):       {count / again.seconds:8.0f} resources/s "
        f"({again.seconds:.1f} s; {again.summary})"
    )
    for label, timed in (("import", first), ("import again", again)):
        print(
            f"    CPU s per 1,000 resources, {label}: puente {per_thousand(timed.cpu, count)}, "
            f"PostgreSQL backends {per_thousand(timed.database_cpu, count)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
