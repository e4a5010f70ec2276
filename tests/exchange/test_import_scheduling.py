"""How `puente import --workers N` hands out one rank's batches: each process first writes
the batches of the lines it parsed, then helps with another's instead of waiting."""

from __future__ import annotations

import gc
import threading
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from exchange import bulk
from puente.cli import parallel_import


class _Process:
    """A stand-in for an import process on the far end of a real pipe: it writes each
    batch it is sent (taking `seconds` per line) and says which it wrote."""

    def __init__(self, seconds: float) -> None:
        self.parent_end, self.child_end = Pipe()
        self.seconds = seconds
        self.written: list[list[int]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            kind, batch = self.child_end.recv()
            if kind == "stop":
                return
            time.sleep(self.seconds * len(batch))
            self.written.append(batch)
            report = bulk.ImportReport(read=len(batch), created=len(batch))
            self.child_end.send(("written", parallel_import._Done(len(batch), report)))

    def stop(self) -> None:
        self.parent_end.send(("stop", None))
        self.thread.join(timeout=5)


def _write(processes: list[_Process], per_holder: dict[int, list[list[int]]]) -> bulk.ImportReport:
    report = bulk.ImportReport()
    merge = parallel_import._Merge(report, advance=lambda _: None)
    connections: list[Connection] = [p.parent_end for p in processes]
    parallel_import._write_rank(connections, per_holder, merge)
    for process in processes:
        process.stop()
    return report


def test_a_process_with_nothing_of_its_own_helps_the_other() -> None:
    processes = [_Process(0.002), _Process(0.002)]
    batches = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    report = _write(processes, {0: batches})
    first, second = processes
    assert report.created == 12
    assert sorted(first.written + second.written) == batches  # each batch once
    assert first.written[0] == [0, 1]  # its own, in order
    assert second.written  # it did not sit the rank out
    assert second.written[0] == [10, 11]  # taken from the end of the other's queue


def test_each_process_writes_its_own_batches_first() -> None:
    processes = [_Process(0.001), _Process(0.001)]
    report = _write(processes, {0: [[0], [2]], 1: [[1], [3]]})
    assert report.created == 4
    assert processes[0].written[0] == [0]
    assert processes[1].written[0] == [1]
    assert sorted(processes[0].written + processes[1].written) == [[0], [1], [2], [3]]


def test_a_slow_process_is_relieved_of_its_waiting_batches() -> None:
    slow, fast = _Process(0.05), _Process(0.001)
    _write([slow, fast], {0: [[0], [1], [2], [3]], 1: [[4]]})
    assert slow.written[0] == [0]
    assert len(slow.written) < 4  # the fast one took some of the slow one's
    assert sorted(slow.written + fast.written) == [[0], [1], [2], [3], [4]]


def test_the_collector_is_given_back_as_it_was() -> None:
    """An import run inside a longer-lived process (the demo's loader, a test) leaves its
    garbage collector as it found it."""
    gc.unfreeze()
    before = gc.get_threshold()
    with parallel_import.importing_collector():
        assert gc.get_threshold() != before
        gc.freeze()  # as the survey does
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_what_the_process_froze_itself_stays_frozen() -> None:
    """The API freezes its start-up objects out of the collector: an import in that
    process does not thaw them."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    with parallel_import.importing_collector():
        gc.freeze()
    assert gc.get_freeze_count() >= frozen > 0
