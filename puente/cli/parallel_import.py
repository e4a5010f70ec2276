"""`puente import` in several processes: the batches of one reference rank at once.

Each worker is a forked process with its own connections; a batch is one transaction, as
in a single-process import. Ranks follow one another (patients are all stored before the
first encounter is), and `bulk.plan` keeps lines that could meet in one batch, so the
result is the one a single process would store. Reports are merged, errors in line order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

from exchange import bulk
from puente.auth.caller import Caller

# What the forked workers inherit: set just before the pool starts, never sent by pickle.
_SHARED: dict[str, object] = {}


@dataclass(frozen=True)
class _Done:
    positions: list[int]
    report: bulk.ImportReport
    error_positions: list[int]


def _start_worker() -> None:
    from puente.db import get_engine

    # The parent's pooled connections must not be shared with a child (SQLAlchemy, "Using
    # Connection Pools with Multiprocessing"): forget them here without closing them.
    get_engine().dispose(close=False)


def _import_batch(positions: list[int]) -> _Done:
    from puente.db import unit_of_work

    lines = _SHARED["lines"]
    caller = _SHARED["caller"]
    assert isinstance(lines, list)
    assert isinstance(caller, Caller)
    batch: list[bulk.SourceLine] = [lines[p] for p in positions]
    report = bulk.ImportReport()
    with unit_of_work() as session:
        bulk.import_lines(session, caller, batch, report)
    # Errors come in line order, one at most a line: match them to their positions.
    error_positions: list[int] = []
    cursor = 0
    for error in report.errors:
        while (batch[cursor].source, batch[cursor].line) != (error.source, error.line):
            cursor += 1
        error_positions.append(positions[cursor])
        cursor += 1
    return _Done(positions, report, error_positions)


def run(
    caller: Caller,
    lines: list[bulk.SourceLine],
    batches: list[list[list[int]]],
    report: bulk.ImportReport,
    *,
    workers: int,
    advance: Callable[[int], None],
) -> None:
    """Import `lines` in `batches` (one list per reference rank, from `bulk.plan`) with
    `workers` processes, adding up what they did in `report`."""
    _SHARED.update(lines=lines, caller=caller)
    errors: list[tuple[int, bulk.LineError]] = []
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_start_worker) as pool:
            for rank in batches:
                for done in pool.imap_unordered(_import_batch, rank):
                    report.read += done.report.read
                    report.created += done.report.created
                    report.updated += done.report.updated
                    report.unchanged += done.report.unchanged
                    errors.extend(zip(done.error_positions, done.report.errors, strict=True))
                    advance(len(done.positions))
    finally:
        _SHARED.clear()
    report.errors.extend(error for _, error in sorted(errors, key=lambda pair: pair[0]))
