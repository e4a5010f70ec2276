"""`puente import` in one or several processes, each line parsed once.

Each process parses its share of the lines (blocks taken in turn, so that every reference
rank is shared evenly), keeps what it parsed, and reports each line's rank and what its
write may touch (`bulk.survey`). The parent arranges the batches (`bulk.arrange`): lines
that could meet go into one batch, given to the process that parsed its first line. Ranks
follow one another (patients are all stored before the first encounter is); within a rank
every process writes its own batches, each one transaction, as a single-process import
would, and then helps with the others' (`_write_rank`). Reports are merged, errors in
reference order.

Measured on 100,000 resources: parsing every line in the parent before the workers started
kept one core busy alone for seconds, and each line was parsed twice.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from sqlalchemy.orm import Session

from exchange import bulk
from puente.auth.caller import Caller

# Lines a process parses in a row before the next process's turn (fewer for small files).
BLOCK = 64


@dataclass(frozen=True)
class _Done:
    """One batch written: how many lines, what happened, and the positions of its refused
    lines (one error at most a line, in line order)."""

    lines: int
    report: bulk.ImportReport
    error_positions: list[int] = field(default_factory=list)


class ImportProcessFailed(RuntimeError):
    """A process stopped mid-import; what it committed stays, and a re-run finishes."""


class _Importer:
    """One process's part of an import: the lines it parsed, kept until it writes them."""

    def __init__(self, caller: Caller, lines: list[bulk.SourceLine]) -> None:
        self.caller = caller
        self.lines = lines
        self.parsed: dict[int, Any] = {}

    def survey(self, positions: list[int]) -> list[tuple[int, list[int]]]:
        found = []
        # Everything parsed here is kept until it is written: the collector would only
        # walk it, again and again as it grows, and find nothing to free. Frozen after,
        # the writes' collections no longer walk it either.
        gc.disable()
        try:
            for position in positions:
                parsed, rank, touches = bulk.survey(self.lines[position].text)
                if parsed is not None:
                    self.parsed[position] = parsed
                found.append((rank, touches))
        finally:
            gc.enable()
        gc.freeze()
        return found

    def write(self, batch: list[int]) -> _Done:
        from puente.db import retrying

        lines = [self.lines[p] for p in batch]
        # A line another process parsed (it met one of ours, or this batch was that
        # process's) is parsed again here.
        parsed: list[Any] | None = [self.parsed.pop(p, None) for p in batch]
        reports: list[bulk.ImportReport] = []

        def attempt(session: Session) -> None:
            nonlocal parsed
            report = bulk.ImportReport()
            given, parsed = parsed, None  # a run after a rolled-back one parses afresh
            bulk.import_lines(session, self.caller, lines, report, given)
            reports.append(report)

        try:
            # A batch that lost to a concurrent writer (another import, a transaction)
            # rolled back whole: run it again, a bounded number of times.
            retrying(attempt, retry_on=bulk.lost_to_another)
            report = reports[-1]
        except Exception as exc:
            if not bulk.lost_to_another(exc):
                raise
            report = bulk.transient_report(lines)
        error_positions: list[int] = []
        cursor = 0
        for error in report.errors:
            while (lines[cursor].source, lines[cursor].line) != (error.source, error.line):
                cursor += 1
            error_positions.append(batch[cursor])
            cursor += 1
        return _Done(len(batch), report, error_positions)


@contextmanager
def importing_collector() -> Iterator[None]:
    """The garbage collector tuned for importing, then as it was: a collection every
    20,000 allocations rather than 700 (a write allocates thousands of objects, nearly all
    freed by their counts, not by the collector), and what `_Importer.survey` froze
    unfrozen, unless the process had frozen objects of its own before (the API's start-up
    objects: they stay frozen, and so do the survey's, which their counts still free).
    Measured on 100,000 resources with 2 processes: the collector took 3.7 of each
    process's 33.5 CPU seconds, 0.5 with this and the survey's freeze."""
    threshold = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen_before:
            gc.unfreeze()


def _serve(connection: Connection, importer: _Importer) -> None:
    """A forked process: survey, then write each batch it is sent, until told to stop."""
    from puente.db import get_engine

    # The parent's pooled connections must not be shared with a child (SQLAlchemy, "Using
    # Connection Pools with Multiprocessing"): forget them here without closing them.
    get_engine().dispose(close=False)
    try:
        with importing_collector():
            while True:
                kind, payload = connection.recv()
                if kind == "survey":
                    connection.send(("surveyed", importer.survey(payload)))
                elif kind == "write":
                    connection.send(("written", importer.write(payload)))
                else:
                    return
    except BaseException:
        # The parent learns that this process stopped from the closed pipe; the
        # traceback goes to the operator's terminal, never into a log.
        connection.close()
        raise


def _shares(count: int, workers: int) -> list[list[int]]:
    """Line positions per process: blocks of lines in turn, so that each process gets a
    like share of every rank."""
    block = min(BLOCK, max(1, count // (workers * 8)))
    return [[p for p in range(count) if (p // block) % workers == k] for k in range(workers)]


class _Merge:
    """What the processes did, added up; errors kept with their line's reference order."""

    def __init__(self, report: bulk.ImportReport, advance: Callable[[int], None]) -> None:
        self.report = report
        self.advance = advance
        self.errors: list[tuple[tuple[int, int], bulk.LineError]] = []
        self.ranks: list[int] = []

    def add(self, done: _Done) -> None:
        self.report.read += done.report.read
        self.report.created += done.report.created
        self.report.updated += done.report.updated
        self.report.unchanged += done.report.unchanged
        for position, error in zip(done.error_positions, done.report.errors, strict=True):
            self.errors.append(((self.ranks[position], position), error))
        self.advance(done.lines)

    def finish(self) -> None:
        self.report.errors.extend(error for _, error in sorted(self.errors, key=lambda e: e[0]))


def run(
    caller: Caller,
    lines: list[bulk.SourceLine],
    report: bulk.ImportReport,
    *,
    workers: int,
    batch: int,
    advance: Callable[[int], None],
) -> None:
    """Import `lines` (in file order) in batches of about `batch` lines with `workers`
    processes (1: this one), adding up what they did in `report`."""
    merge = _Merge(report, advance)
    workers = max(1, min(workers, len(lines)))
    if workers == 1:
        importer = _Importer(caller, lines)
        with importing_collector():
            surveyed = importer.survey(list(range(len(lines))))
            merge.ranks = [rank for rank, _ in surveyed]
            for per_holder in bulk.arrange(merge.ranks, [t for _, t in surveyed], batch):
                for positions in per_holder.get(0, []):
                    merge.add(importer.write(positions))
    else:
        with _processes(caller, lines, workers) as connections:
            _run_parallel(connections, len(lines), batch, merge)
    merge.finish()


def _run_parallel(connections: list[Connection], count: int, batch: int, merge: _Merge) -> None:
    shares = _shares(count, len(connections))
    for connection, share in zip(connections, shares, strict=True):
        connection.send(("survey", share))
    ranks = [0] * count
    touches: list[list[int]] = [[] for _ in range(count)]
    holders = [0] * count
    for holder, (connection, share) in enumerate(zip(connections, shares, strict=True)):
        for position, (rank, touched) in zip(share, _receive(connection, "surveyed"), strict=True):
            ranks[position], touches[position], holders[position] = rank, touched, holder
    merge.ranks = ranks
    for per_holder in bulk.arrange(ranks, touches, batch, holders):
        _write_rank(connections, per_holder, merge)


def _write_rank(
    connections: list[Connection], per_holder: dict[int, list[list[int]]], merge: _Merge
) -> None:
    """One rank's batches, a batch at a time to each process: first those of the lines it
    parsed, then, rather than wait idle for the rank's end, the last waiting batch of
    whichever process has the most left (it parses those lines again). Measured on
    100,000 resources: with each process given its own batches only, one of the two
    stood idle for 2 of 49 s at the ends of ranks."""
    waiting = {holder: list(batches) for holder, batches in per_holder.items() if batches}

    def give(holder: int) -> bool:
        own = waiting.get(holder)
        if own:
            batch = own.pop(0)
        else:
            others = [other for other, left in waiting.items() if left]
            if not others:
                return False
            batch = waiting[max(others, key=lambda other: len(waiting[other]))].pop()
        connections[holder].send(("write", batch))
        return True

    busy = {connections[holder]: holder for holder in range(len(connections)) if give(holder)}
    while busy:
        for ready in wait(list(busy)):
            assert isinstance(ready, Connection)
            merge.add(_receive(ready, "written"))
            holder = busy.pop(ready)
            if give(holder):
                busy[ready] = holder


def _message(connection: Connection) -> tuple[str, Any]:
    try:
        kind, payload = connection.recv()
    except EOFError:
        raise ImportProcessFailed("an import process stopped") from None
    return str(kind), payload


def _receive(connection: Connection, expected: str) -> Any:
    kind, payload = _message(connection)
    if kind != expected:
        raise ImportProcessFailed(f"unexpected message {kind!r}")
    return payload


@contextmanager
def _processes(
    caller: Caller, lines: list[bulk.SourceLine], workers: int
) -> Iterator[list[Connection]]:
    """Forked processes serving `_serve`, each with its end of a pipe; stopped on exit."""
    context = multiprocessing.get_context("fork")
    children = []
    connections: list[Connection] = []
    try:
        for _ in range(workers):
            parent_end, child_end = context.Pipe()
            child = context.Process(
                target=_serve, args=(child_end, _Importer(caller, lines)), daemon=True
            )
            child.start()
            child_end.close()
            children.append(child)
            connections.append(parent_end)
        yield connections
    finally:
        for connection in connections:
            with suppress(OSError):  # that process has stopped already
                connection.send(("stop", None))
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
                child.join()
        for connection in connections:
            connection.close()
