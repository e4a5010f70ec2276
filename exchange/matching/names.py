"""Names as the matcher compares them (pure: no I/O beyond reading the package's data once).

Folding: upper case, accents dropped with `unicodedata` (no transliteration library: the
usual one is GPL), Ñ read as N (US desks write `Nunez` for `Núñez`), anything that is not a
letter dropped or a word break.

Surnames (DOMAIN.md, "People and their names"): read from the `fathers-family` /
`mothers-family` extensions on `_family` or on the HumanName, else parsed from `family`:
two surnames, hyphenated (`Hernandez-Lopez`), particles kept with their surname (`de la
Cruz`, `del Río`), compounds (`Montes de Oca`), a married `de García`, surnames glued to
their particle (`Delacruz`); and a paternal surname a US desk filed as the last given name
(`Jose Hernandez` / `Lopez`).

Given names: compound names keep every word; José/María lead and are skipped when picking
the name a person goes by (the CURP rule); nicknames and English forms map to canonical
names through `data/nicknames.csv`.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from exchange.curp import PARTICLES, name_letters

FATHERS = "http://hl7.org/fhir/StructureDefinition/humanname-fathers-family"
MOTHERS = "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family"
PARTNER = "http://hl7.org/fhir/StructureDefinition/humanname-partner-name"

LEADING_GIVEN = frozenset({"JOSE", "MARIA", "MA", "J", "M"})
# Abbreviations registries write for the leading names ("Ma. Guadalupe", "Jose Ma.").
GIVEN_ABBREVIATIONS = {"MA": "MARIA", "MARI": "MARIA", "JOS": "JOSE", "FCO": "FRANCISCO"}
# Surnames with a particle inside that are one surname, not a married name (RENAPO and
# registry usage); any other `X de Y` in the middle of a family is read the same way.
COMPOUND_SURNAMES = frozenset(
    {
        "MONTES DE OCA",
        "PONCE DE LEON",
        "FERNANDEZ DE CORDOBA",
        "GARCIA DE LEON",
        "PEREZ DE LEON",
        "SANCHEZ DE LA BARQUERA",
        "MARTINEZ DE LA VEGA",
        "RUIZ DE CHAVEZ",
        "GOMEZ DE LA TORRE",
        "DIAZ DE LEON",
        "LOPEZ DE LARA",
        "NUNEZ DE CACERES",
        "VACA DE CASTRO",
        "ORTIZ DE MONTELLANO",
        "GONZALEZ DE COSIO",
    }
)
# Particles glued to the surname by US systems (`Delacruz`, `Delosantos`): longest first.
GLUED_PARTICLES = ("DELOS", "DELAS", "DELA")
# Generational suffixes US desks type into `family` or `given` (`Hernandez Jr.`): not names.
SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV"})
_DATA = resources.files("exchange.matching") / "data"


def fold(text: str) -> str:
    """`Núñez-de la Cruz` -> `NUNEZ DE LA CRUZ`: upper case, no accents, words of letters."""
    decomposed = unicodedata.normalize("NFKD", text.upper())
    out = []
    for char in decomposed:
        if "A" <= char <= "Z":
            out.append(char)
        elif char in " -_,./;\t\n":
            out.append(" ")
        elif char == "ß":
            out.append("SS")
        elif unicodedata.combining(char) or char in "'`´’":
            continue
        elif char.isalpha():
            out.append(char)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


@lru_cache(maxsize=1 << 16)
def fold_cached(text: str) -> str:
    return fold(text)


def unglue(word: str) -> str:
    """`DELACRUZ` -> `CRUZ`: the surname under a particle a US system glued on."""
    for prefix in GLUED_PARTICLES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            return word[len(prefix) :]
    return word


def significant(surname: str) -> str:
    """The word of a folded surname that identifies it: `DE LA CRUZ` -> `CRUZ` (the first
    non-particle, as RENAPO reads it), glued particles removed."""
    for word in surname.split():
        if word not in PARTICLES:
            return unglue(word)
    return ""


@lru_cache(maxsize=1 << 14)
def surname_words(surname: str) -> frozenset[str]:
    """Every word of a folded surname that is not a particle, and its unglued form."""
    words = {w for w in surname.split() if w not in PARTICLES}
    return frozenset(words | {unglue(w) for w in words})


# --- phonetic key ---------------------------------------------------------------------

_VOWELS = frozenset("AEIOU")


@lru_cache(maxsize=1 << 16)
def phonetic(word: str) -> str:
    """A Spanish sound key of one folded word: letters that sound alike in Mexican Spanish
    (and in its English spellings) give the same key.

    b/v -> B; s/z and c before e/i -> S; ll/y -> Y; h silent; j, x and g before e/i -> J;
    qu, k and hard c -> K; ñ already folded to n; gu before e/i -> G; gu/hu before a/o -> W;
    ph -> F; doubled letters once; a Y before a consonant or at the end is the vowel I
    (`Ybarra`, `Ruy`). Vowels are kept: Spanish spelling does not blur them, and without
    them GARCIA and GARZA, the commonest surnames, would share one key. `VAZQUEZ`,
    `VASQUEZ` and `BAZQUES` all give `BASKES`; `JIMENEZ`, `XIMENEZ`, `GIMENEZ` `JIMENES`."""
    w = "".join(c for c in word.upper() if "A" <= c <= "Z")
    if not w:
        return ""
    out: list[str] = []
    i, n = 0, len(w)
    while i < n:
        c = w[i]
        nxt = w[i + 1] if i + 1 < n else ""
        after = w[i + 2] if i + 2 < n else ""
        step = 1
        if c in _VOWELS:
            code = c
        elif c == "Y":
            code = "Y" if nxt in _VOWELS else "I"
        elif c == "H":
            if nxt == "U" and after in _VOWELS:
                code, step = "W", 2
            else:
                code = ""
        elif c == "C":
            if nxt == "H":
                code, step = "C", 2
            elif nxt in "EIY":
                code = "S"
            else:
                code = "K"
        elif c == "Q":
            code, step = "K", 2 if nxt == "U" else 1
        elif c == "G":
            if nxt == "U" and after in "EI":
                code, step = "G", 2
            elif nxt == "U" and after in "AO":
                code, step = "W", 2
            elif nxt in "EIY":
                code = "J"
            else:
                code = "G"
        elif c == "L" and nxt == "L":
            code, step = "Y", 2
        elif c == "P" and nxt == "H":
            code, step = "F", 2
        elif c == "S" and nxt == "H":
            code, step = "S", 2
        else:
            code = {"V": "B", "Z": "S", "X": "J", "K": "K", "W": "W"}.get(c, c)
        if code and (not out or out[-1] != code):
            out.append(code)
        i += step
    return "".join(out)


# --- nicknames --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def nickname_table() -> dict[str, frozenset[str]]:
    """variant -> the canonical names it stands for, from `data/nicknames.csv`."""
    table: dict[str, set[str]] = {}
    canonical_names: set[str] = set()
    with (_DATA / "nicknames.csv").open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            variant, canonical = fold(row["variant"]), fold(row["canonical"])
            table.setdefault(variant, set()).add(canonical)
            canonical_names.add(canonical)
    # A canonical name that is also someone's variant (LUIS is canonical; LUIS is not a
    # variant) stands for itself as well.
    for name in canonical_names:
        if name in table:
            table[name].add(name)
    return {k: frozenset(v) for k, v in table.items()}


@lru_cache(maxsize=1 << 14)
def canonical_given(word: str) -> frozenset[str]:
    """The canonical given names a folded word may stand for: `CHUY`, `JESSE` and `JESUS`
    give {JESUS}; `BETO` gives {ALBERTO, ROBERTO, ...}; an unknown name gives itself."""
    word = fold(word)
    return nickname_table().get(word) or frozenset({word})


# --- frequencies (Census files copied into data/) ---------------------------------------


@lru_cache(maxsize=1)
def surname_counts() -> dict[str, int]:
    with (_DATA / "census2010_hispanic_surnames.csv").open(encoding="utf-8") as fh:
        return {r["surname"]: int(r["count"]) for r in csv.DictReader(fh)}


@lru_cache(maxsize=1)
def first_name_counts() -> dict[str, int]:
    with (_DATA / "census2020_hispanic_first_names.csv").open(encoding="utf-8") as fh:
        return {r["first_name"]: int(r["count"]) for r in csv.DictReader(fh)}


def surname_likeness(word: str) -> float:
    """How many times more Census bearers have `word` as a surname than as a first name:
    HERNANDEZ about 900, CRUZ about 10, GUADALUPE under 1; 0 for no Hispanic surname."""
    as_surname = surname_counts().get(word, 0)
    return as_surname / max(first_name_counts().get(word, 0), 1)


# A last given word this much more common as a surname is read as a misfiled paternal
# surname first; from 1 up it is still kept as a second reading (`Maria Cruz`).
MISFILED_FIRST = 20.0
MISFILED_ALSO = 1.0


# --- parsing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    """A family name read one way: paternal and maternal surnames, particles kept."""

    paternal: str
    maternal: str
    married: str = ""


def _units(words: list[str]) -> list[str]:
    """Group folded words into surnames: particles join the word after them, and an
    `X de Y` in the middle of a family is one compound surname (`Montes de Oca`)."""
    units: list[str] = []
    pending: list[str] = []
    for word in words:
        pending.append(word)
        if word not in PARTICLES:
            units.append(" ".join(pending))
            pending = []
    if pending:  # trailing particles: keep them with the last surname
        if units:
            units[-1] = units[-1] + " " + " ".join(pending)
        else:
            units.append(" ".join(pending))
    merged: list[str] = []
    i = 0
    while i < len(units):
        unit = units[i]
        if i + 1 < len(units):
            joined = f"{unit} {units[i + 1]}"
            # `X de Y Z`: a single `de` inside a family joins a compound surname.
            middle = i + 2 < len(units) and len(units[i + 1].split()) == 2
            if joined in COMPOUND_SURNAMES or (
                middle and " " not in unit and units[i + 1].startswith("DE ")
            ):
                merged.append(joined)
                i += 2
                continue
        merged.append(unit)
        i += 1
    return merged


@lru_cache(maxsize=1 << 16)
def parse_family(family: str, *, female: bool = False) -> tuple[Family, ...]:
    """The readings of a `family` string, most likely first.

    `Hernández López` and `Hernandez-Lopez` give HERNANDEZ / LOPEZ; `de la Cruz` one
    surname; `Hernández López de García` a married name GARCIA; a woman's `Hernández de
    García` is read as married (DOMAIN.md's example) and, second, as maternal `DE GARCIA`.
    """
    # A hyphen folds to a word break.
    units = _units([w for w in fold_cached(family).split() if w not in SUFFIXES])
    if not units:
        return (Family("", ""),)
    if len(units) == 1:
        return (Family(units[0], ""),)
    last = units[-1]
    married_form = last.startswith("DE ") and len(last.split()) == 2
    if len(units) >= 3 and married_form:
        return (Family(units[0], units[1], significant(last)), Family(units[0], units[1]))
    if len(units) == 2 and married_form and female:
        return (Family(units[0], "", significant(last)), Family(units[0], last))
    return (Family(units[0], units[1]),)


@dataclass(frozen=True, slots=True)
class ParsedName:
    given: tuple[str, ...]  # folded given words, particles dropped, abbreviations expanded
    family: Family  # the most likely reading
    readings: tuple[tuple[Family, tuple[str, ...]], ...]  # every reading, for CURP roots
    surnames: frozenset[str]  # every surname word any reading gives
    # CURP positions 1-4 and 14-16 every reading gives, most likely first (see curp_parts)
    curp_parts: tuple[tuple[str, str], ...]


@lru_cache(maxsize=1 << 14)
def given_words(given: tuple[str, ...]) -> tuple[str, ...]:
    words = [
        w for g in given for w in fold_cached(g).split() if w not in PARTICLES and w not in SUFFIXES
    ]
    return tuple(
        GIVEN_ABBREVIATIONS.get(w, w) if len(words) > 1 and i == 0 else w
        for i, w in enumerate(words)
    )


_LEADS = frozenset({"JOSE", "MARIA"})


def lead(word: str) -> str:
    """JOSE or MARIA when a folded given word is one of them, an abbreviation or a form of
    them (`Ma`, `Mary`, `Joe`, `Pepe`); "" otherwise."""
    if word in LEADING_GIVEN:
        return "MARIA" if word.startswith("M") else "JOSE"
    canonical = canonical_given(word)
    return next(iter(canonical)) if len(canonical) == 1 and canonical <= _LEADS else ""


def first_significant_given(given: tuple[str, ...]) -> str:
    """The name a person goes by: a leading José/María (or `Joe`, `Mary`: a US desk's form
    of it) is skipped when another follows, as RENAPO skips it in the CURP."""
    if len(given) > 1 and lead(given[0]):
        return given[1]
    return given[0] if given else ""


# Small: a name string (family and given together) is nearly unique to a person, so a
# bulk run would only churn a large cache; repeated writes of one patient still hit.
@lru_cache(maxsize=4096)
def parse_name(
    family: str,
    given: tuple[str, ...],
    *,
    fathers: str = "",
    mothers: str = "",
    partner: str = "",
    female: bool = False,
) -> ParsedName:
    """One HumanName: extensions first, then the `family` string; a surname-like last given
    word next to a lone family surname is read as a misfiled paternal surname."""
    words = given_words(given)
    readings: list[tuple[Family, tuple[str, ...]]] = []
    if fathers or mothers:
        readings.append(
            (Family(fold_cached(fathers), fold_cached(mothers), fold_cached(partner)), words)
        )
    families = parse_family(family, female=female)
    lone = len(families) == 1 and families[0].paternal and not families[0].maternal
    misfiled: tuple[Family, tuple[str, ...]] | None = None
    likeness = surname_likeness(words[-1]) if len(words) >= 2 else 0.0
    if not readings and lone and likeness >= MISFILED_ALSO:
        # Given `Jose Hernandez`, family `Lopez`: paternal HERNANDEZ, maternal LOPEZ.
        misfiled = (Family(words[-1], families[0].paternal), words[:-1])
        if likeness >= MISFILED_FIRST:
            readings.append(misfiled)
    readings.extend((f, words) for f in families if f.paternal)
    if misfiled and misfiled not in readings:
        readings.append(misfiled)
    if not readings:
        readings.append((Family("", ""), words))
    surnames: set[str] = set()
    for reading, _ in readings:
        for part in (reading.paternal, reading.maternal, reading.married):
            surnames |= surname_words(part)
    # Every word of `family` and of a partner name too: a third surname, or the married
    # name a sender left in `family` beside the extensions.
    family_words = " ".join(w for w in fold_cached(family).split() if w not in SUFFIXES)
    surnames |= surname_words(family_words) | surname_words(fold_cached(partner))
    unique = tuple(dict.fromkeys(readings))
    return ParsedName(
        given=unique[0][1],
        family=unique[0][0],
        readings=unique,
        surnames=frozenset(surnames),
        curp_parts=curp_parts(unique),
    )


def curp_parts(readings: tuple[tuple[Family, tuple[str, ...]], ...]) -> tuple[tuple[str, str], ...]:
    """The name letters (CURP positions 1-4) and inner consonants (14-16) of every reading:
    each reading of the surnames, the given name and its canonical forms (a `Chuy` may be a
    registered `Jesús`), and X for an inner N that may be an Ñ a US desk wrote as N."""
    parts: dict[tuple[str, str], None] = {}
    for family, given in readings:
        if not family.paternal:
            continue
        first = first_significant_given(given)
        # `Joe Sebastian` is read as RENAPO reads `José Sebastián`: by SEBASTIAN.
        words = (lead(given[0]), *given[1:]) if len(given) > 1 and lead(given[0]) else given
        givens = [" ".join(words), *sorted(canonical_given(first) - {first})]
        for given_text in givens:
            letters, consonants = name_letters(family.paternal, family.maternal or None, given_text)
            for variant in _enye_variants(consonants):
                parts[(letters, variant)] = None
    return tuple(parts)


@lru_cache(maxsize=4096)
def _enye_variants(consonants: str) -> tuple[str, ...]:
    variants = [""]
    for char in consonants:
        options = (char, "X") if char == "N" else (char,)
        variants = [v + o for v in variants for o in options]
    return tuple(variants)
