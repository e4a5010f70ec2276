"""The matching task of an import, links written: time and statements.

Stores the synthetic scenario's Patients of both hospitals (a quarter of the people on
both sides) in a fresh database, then, twice, empties the link tables and runs the
matching task over every Patient, as an import's in-process matching does (200 records a
transaction). Prints the wall clock, records per second and SQL statements sent, and
the links made by grade. Loopback only; drops its database.

    python benchmarks/link_writes.py [--database-url URL] [--patients 5000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import DEFAULT_SERVER, environment, fresh_database, prepare


def load(patients: int) -> list[int]:
    from sqlalchemy import select

    from demo.generator import generate
    from exchange import store
    from exchange.matching.models import MatchRecord
    from puente.db import unit_of_work

    scenario = generate(patients_per_hospital=patients)
    for code, country in (("hgcj", "MX"), ("umcep", "US")):
        wanted = [r for r in scenario.records[code] if r.get("resourceType") == "Patient"]
        for start in range(0, len(wanted), 1000):
            with unit_of_work() as session:
                store.create_many(
                    session,
                    owner=code,
                    owner_country=country,
                    contents=wanted[start : start + 1000],
                    method="PUT",
                )
    with unit_of_work() as session:
        statement = select(MatchRecord.resource_pk).order_by(MatchRecord.resource_pk)
        return list(session.scalars(statement))


def timed_matching(pks: list[int]) -> tuple[float, int, dict[str, int]]:
    from sqlalchemy import delete, event, func, select

    from exchange.matching.models import MatchLink, MatchLinkHistory
    from exchange.matching.tasks import match_task
    from puente.db import get_engine, unit_of_work

    with unit_of_work() as session:
        session.execute(delete(MatchLinkHistory))
        session.execute(delete(MatchLink))
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    started = time.perf_counter()
    try:
        match_task(pks)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    seconds = time.perf_counter() - started
    with unit_of_work() as session:
        statement = select(MatchLink.status, func.count()).group_by(MatchLink.status)
        made = {str(status): int(n) for status, n in session.execute(statement).all()}
    return seconds, sent[0], made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--patients", type=int, default=5000, help="patients a hospital")
    args = parser.parse_args()
    secret_key = secrets.token_urlsafe(48)
    with fresh_database(args.database_url, "links") as database_url:
        prepare(database_url, secret_key)
        os.environ.update(environment(database_url, secret_key))
        from puente.settings import get_settings

        get_settings.cache_clear()
        pks = load(args.patients)
        runs = [timed_matching(pks) for _ in range(2)]
    print(f"matching task, {len(pks)} Patients ({args.patients} a hospital), PostgreSQL")
    for n, (seconds, statements, made) in enumerate(runs, 1):
        print(
            f"  run {n}: {seconds:6.1f} s, {len(pks) / seconds:6.0f} records/s, "
            f"{statements} statements; links {made}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
