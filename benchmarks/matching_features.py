"""Normalisation speed: microseconds per Patient for `exchange.matching.features`.

Over the demo generator's patients (both hospitals: Mexican records with CURPs and
extensions, US records with mangled names), in CPU time (`time.process_time`) so that other
load on the machine counts less. The first pass is what a bulk run (`puente link`, an
import) pays: per-word caches (folding, phonetic keys, nicknames, CURP letters) fill as it
goes, while a full name is nearly unique to a person. Later passes re-read the same
patients, as updates would. The cyclic garbage collector is left on: with 200,000 features
kept it costs about a third of the first pass, which a bulk loop can save with
`gc.freeze()` / `gc.disable()` around it.

    .venv/bin/python -m benchmarks.matching_features [--patients 100000] [--repeat 2]

(`--patients` per hospital: the default normalises 200,000 patients.)
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from demo.generator import generate
from exchange.matching.blocking import blocking_keys
from exchange.matching.features import features


def _patients(per_hospital: int) -> list[dict[str, Any]]:
    scenario = generate(patients_per_hospital=per_hospital, seed=2026)
    return [
        r
        for records in scenario.records.values()
        for r in records
        if r["resourceType"] == "Patient"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=100_000, help="per hospital")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    patients = _patients(args.patients)
    # The generated scenario is a large object graph the cyclic GC would rescan while the
    # caches fill; a bulk run holds only the patients. Freeze it, as `puente link` would.
    gc.collect()
    gc.freeze()
    start = time.process_time()
    first = [features(p) for p in patients]
    cold = (time.process_time() - start) / len(patients) * 1e6
    timings = []
    for _ in range(args.repeat):
        start = time.process_time()
        for p in patients:
            features(p)
        timings.append((time.process_time() - start) / len(patients) * 1e6)
    start = time.process_time()
    keys = [blocking_keys(f) for f in first]
    per_keys = (time.process_time() - start) / len(first) * 1e6
    print(f"patients: {len(patients):,}")
    print(f"features, first pass: {cold:.1f} µs/patient")
    print(f"features, again: {', '.join(f'{t:.1f}' for t in timings)} µs/patient")
    print(f"blocking keys: {per_keys:.1f} µs/patient, {sum(map(len, keys)) / len(keys):.1f} keys")


if __name__ == "__main__":
    main()
