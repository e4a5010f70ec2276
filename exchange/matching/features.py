"""A Patient resource as the features the matcher compares (pure: no I/O).

The contract between normalisation (`names`, `features()` below), blocking and scoring:
every text field is folded (upper case, no accents, Ñ kept as N for comparison), empty
string or empty set when the record does not say. `features()` is the only way to build
one from FHIR JSON.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Features:
    id: str  # the resource id ("hgcj-123" or a server-assigned UUID)
    given: tuple[str, ...]  # given-name words in order: ("JOSE", "LUIS")
    # Canonical form of every given name and of its nickname equivalents:
    # "CHUY", "JESSE" and "JESUS" all give "JESUS"; "LUPE" gives "GUADALUPE".
    given_canonical: frozenset[str]
    paternal: str  # paternal (first) surname, particles kept: "DE LA CRUZ"; "" unknown
    maternal: str  # maternal (second) surname; "" unknown (a US record often has none)
    # Every surname candidate, particles dropped: both surnames, the parts of a hyphenated
    # family, a paternal surname misfiled as the last given name, a married name.
    surnames: frozenset[str]
    phonetic_paternal: str  # Spanish phonetic key of `paternal` (b/v, s/z/c, ll/y, h, j/x/g, qu/k)
    phonetic_maternal: str
    phonetic_given: str  # of the first significant given name (José/María skipped)
    birth_date: dt.date | None
    sex: str  # "M", "F", "X" (other), "" unknown
    curp: str  # a valid CURP, or ""
    # Positions 1-11 and 14-16 of the CURP the record's own name, birth date and sex give
    # (several when the name parses several ways); for a record with a CURP, its own root.
    curp_roots: frozenset[str]
    ssn: str  # 9 digits, or ""
    phones: frozenset[str]  # E.164
    postal_code: str
    city: str
