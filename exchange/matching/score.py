"""Fellegi-Sunter scoring of two patients' match features (pure: no I/O).

Each comparison in `model.SCHEMA` puts the pair in one level (the first that applies);
the level's weight is log2(m/u), adjusted for how common an agreeing name is; the match
weight is the prior log-odds plus the sum, and the probability 1 / (1 + 2^-weight) is
what `$match` reports in `search.score` and `puente link` writes.

`certain` needs the upper threshold and no contradiction: different CURPs, SSNs, sexes or
birth dates, and two explicit guards for the relatives that defeat naive matchers
(DOMAIN.md): twins (same surnames and birth date, different given names) and father/son
namesakes (same given names and paternal surname, maternal surname or birth date
different). Such a pair is at most `probable`: a person decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import JaroWinkler

from exchange.matching import frequencies
from exchange.matching.features import Features
from exchange.matching.model import SCHEMA, Level, Model

CERTAIN, PROBABLE, POSSIBLE, CERTAINLY_NOT = "certain", "probable", "possible", "certainly-not"
GRADES = (CERTAIN, PROBABLE, POSSIBLE, CERTAINLY_NOT)

# Level indices, in SCHEMA order (model.py); 0 is every comparison's null level.
MISSING = 0
G_EXACT, G_CONTAINED, G_NICKNAME, G_JW_HIGH, G_JW_MID, G_INITIAL, G_DIFFERENT = range(1, 8)
(
    S_BOTH,
    S_CROSSED,
    S_ONE_SIMILAR,
    S_ONE_UNKNOWN,
    S_ONE_DIFFERS,
    S_PHONETIC,
    S_JW,
    S_DIFFERENT,
) = range(1, 9)
B_EXACT, B_SWAPPED, B_YEAR, B_ONE, B_DIFFERENT = range(1, 6)
C_EQUAL, C_ROOT_AGREES, C_ROOT_DIFFERS, C_CONTRADICTS = range(1, 5)
EQUAL, DIFFERS = 1, 2  # ssn, phone, sex
A_POSTAL, A_CITY, A_DIFFERENT = range(1, 4)
GIVEN, SURNAMES, BIRTH_DATE, CURP, SSN, PHONE, SEX, ADDRESS = range(8)

SAME_GIVEN = (G_EXACT, G_CONTAINED, G_NICKNAME)
SHARED_SURNAMES = (S_BOTH, S_CROSSED, S_ONE_SIMILAR, S_ONE_UNKNOWN)
SURNAME_SIMILARITY = 0.90
# José and María lead many compound names and are dropped in daily use (DOMAIN.md): two
# brothers José Luis and José Antonio do not share a given name.
LEADING_NAMES = frozenset({"JOSE", "MARIA", "MA", "J", "M"})
PARTICLES = frozenset({"DE", "DEL", "LA", "LAS", "LOS", "Y"})
# The CURP root (positions 1-11 and 14-16) holds the maternal surname's initial at index 2
# and its first inner consonant at index 12; X at both means "no maternal surname".
ROOT_LENGTH = 14


@dataclass(frozen=True, slots=True)
class FieldWeight:
    field: str  # a comparison: given, surnames, birth_date, curp, ssn, phone, sex, address
    level: str  # the level's label in the model ("nickname", "day-month swapped", ...)
    weight: float  # log2 Bayes factor, name frequency included; 0 when missing

    def describe(self) -> str:
        spec = SCHEMA[[s.field for s in SCHEMA].index(self.field)]
        level = spec.levels[spec.index(self.level)]
        return f"{spec.description}: {level.description} ({self.weight:+.1f})"


@dataclass(frozen=True, slots=True)
class Score:
    probability: float  # 0-1: what $match puts in search.score and puente link writes
    weight: float  # match weight: prior log-odds + the explanation's weights
    grade: str  # certain | probable | possible | certainly-not
    explanation: tuple[FieldWeight, ...]
    contradictions: tuple[str, ...]  # curp, ssn, sex, birth_date, twin, namesake
    prior_weight: float = 0.0

    def describe(self) -> list[str]:
        """The score as lines a person reads, strongest evidence first."""
        lines = [f"{self.grade}: probability {self.probability:.6f} (weight {self.weight:+.1f})"]
        ordered = sorted(self.explanation, key=lambda fw: -abs(fw.weight))
        for fw in ordered:
            if fw.level == "missing":
                continue
            line = fw.describe()
            if fw.field in ("phone", "address") and fw.level in HOUSEHOLD_LEVELS and fw.weight == 0:
                line += ": a household's, not counted with different given names"
            elif fw.field == "curp" and fw.level == "root agrees" and fw.weight == 0:
                line += ": implied by the names and birth date, not counted again"
            lines.append(line)
        missing = [fw.field for fw in self.explanation if fw.level == "missing"]
        if missing:
            lines.append("not compared (missing on one side): " + ", ".join(missing))
        lines += [f"prevents certain: {CONTRADICTION_TEXT[c]}" for c in self.contradictions]
        return lines


HOUSEHOLD_LEVELS = ("shared", "postal code", "city")
CONTRADICTION_TEXT = {
    "curp": "different CURPs",
    "ssn": "different SSNs",
    "sex": "different sex",
    "birth_date": "different birth dates",
    "twin": "possible twins: same surnames and birth date, different given names",
    "namesake": "possible father/son namesakes: same given names and paternal surname, "
    "different maternal surname or birth date",
}


@dataclass(frozen=True, slots=True)
class Prepared:
    """One record's features in the shapes the comparisons use, computed once."""

    features: Features
    given_words: frozenset[str]
    significant: tuple[str, ...]  # given names without leading José/María and particles
    significant_set: frozenset[str]
    canonical: frozenset[str]  # canonical forms of the significant given names
    single_letters: frozenset[str]  # given names written as an initial
    surnames: frozenset[str]
    phonetic_surnames: frozenset[str]
    curp_root: str  # positions 1-11 and 14-16 of the record's own CURP, or ""
    # What given_level reads: records with equal signatures have equal given-name levels
    given_signature: tuple[object, ...]
    roots: frozenset[str]  # Features.curp_roots
    # The roots without their maternal-surname positions: all of them, and those whose
    # maternal positions are X (no maternal surname: unknown, so any maternal agrees).
    roots_reduced: frozenset[str]
    roots_reduced_no_maternal: frozenset[str]


def prepare(f: Features) -> Prepared:
    words = [w.rstrip(".") for w in f.given if w.rstrip(".")]
    named = [w for w in words if w not in PARTICLES]
    significant = tuple(w for w in named if w not in LEADING_NAMES) or tuple(named)
    canonical = f.given_canonical - LEADING_NAMES or f.given_canonical
    surnames = f.surnames or frozenset(s for s in (f.paternal, f.maternal) if s)
    roots = f.curp_roots
    return Prepared(
        features=f,
        given_words=frozenset(named),
        significant=significant,
        significant_set=frozenset(significant),
        canonical=frozenset(canonical),
        single_letters=frozenset(w for w in named if len(w) == 1),
        surnames=surnames,
        phonetic_surnames=frozenset(p for p in (f.phonetic_paternal, f.phonetic_maternal) if p),
        curp_root=f.curp[:11] + f.curp[13:16] if len(f.curp) == 18 else "",
        given_signature=(significant, frozenset(named), canonical, f.given_canonical),
        roots=roots,
        roots_reduced=frozenset(_reduced(r) for r in roots if len(r) == ROOT_LENGTH),
        roots_reduced_no_maternal=frozenset(
            _reduced(r) for r in roots if len(r) == ROOT_LENGTH and _no_maternal(r)
        ),
    )


@lru_cache(maxsize=1 << 18)
def jaro_winkler(a: str, b: str) -> float:
    return float(JaroWinkler.similarity(a, b))


def _names_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Every name of the shorter list must be like one of the other's: the weakest counts."""
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    return min(max(jaro_winkler(x, y) for y in longer) for x in shorter)


def given_level(a: Prepared, b: Prepared) -> int:
    if not a.significant or not b.significant:
        return MISSING
    if a.significant_set == b.significant_set:
        return G_EXACT
    if (
        a.given_words <= b.given_words
        or b.given_words <= a.given_words
        or a.significant_set <= b.significant_set
        or b.significant_set <= a.significant_set
    ):
        return G_CONTAINED
    ca, cb = a.canonical, b.canonical
    if ca & cb and (len(a.significant) == 1 or len(b.significant) == 1 or ca <= cb or cb <= ca):
        return G_NICKNAME
    # José Luis goes by Joe or Pepe in El Paso: a lone nickname of the leading name
    if (len(a.given_words) == 1 or len(b.given_words) == 1) and (
        a.features.given_canonical & b.features.given_canonical
    ):
        return G_NICKNAME
    similarity = _names_similarity(a.significant, b.significant)
    if similarity >= 0.92:
        return G_JW_HIGH
    if similarity >= 0.80:
        return G_JW_MID
    if a.single_letters & {w[0] for w in b.significant} or b.single_letters & {
        w[0] for w in a.significant
    }:
        return G_INITIAL
    return G_DIFFERENT


def surname_level(a: Prepared, b: Prepared) -> int:
    sa, sb = a.surnames, b.surnames
    if not sa or not sb:
        return MISSING
    fa, fb = a.features, b.features
    if fa.paternal and fa.paternal == fb.paternal and fa.maternal and fa.maternal == fb.maternal:
        return S_BOTH
    if (
        fa.paternal
        and fa.maternal
        and fa.paternal != fa.maternal
        and fa.paternal == fb.maternal
        and fa.maternal == fb.paternal
    ):
        return S_CROSSED
    shared = sa & sb
    if len(shared) >= 2:
        return S_BOTH
    if shared:
        if not fa.maternal or not fb.maternal:
            return S_ONE_UNKNOWN
        rest_a, rest_b = sa - shared, sb - shared
        if rest_a and rest_b and _surnames_alike(a, b, rest_a, rest_b):
            return S_ONE_SIMILAR  # a typo or a spelling: MORALES and MORALEES
        return S_ONE_DIFFERS
    if a.phonetic_surnames & b.phonetic_surnames:
        return S_PHONETIC
    if max(jaro_winkler(x, y) for x in sa for y in sb) >= SURNAME_SIMILARITY:
        return S_JW
    return S_DIFFERENT


def _surnames_alike(
    a: Prepared, b: Prepared, rest_a: frozenset[str], rest_b: frozenset[str]
) -> bool:
    if max(jaro_winkler(x, y) for x in rest_a for y in rest_b) >= SURNAME_SIMILARITY:
        return True
    fa, fb = a.features, b.features
    sounds_a = {
        p
        for s, p in ((fa.paternal, fa.phonetic_paternal), (fa.maternal, fa.phonetic_maternal))
        if s in rest_a and p
    }
    sounds_b = {
        p
        for s, p in ((fb.paternal, fb.phonetic_paternal), (fb.maternal, fb.phonetic_maternal))
        if s in rest_b and p
    }
    return bool(sounds_a & sounds_b)


def birth_date_level(a: Features, b: Features) -> int:
    da, db = a.birth_date, b.birth_date
    if da is None or db is None:
        return MISSING
    if da == db:
        return B_EXACT
    if da.year == db.year and da.day == db.month and da.month == db.day:
        return B_SWAPPED
    if da.month == db.month and da.day == db.day and abs(da.year - db.year) == 1:
        return B_YEAR
    if (da.year == db.year) + (da.month == db.month) + (da.day == db.day) == 2:
        return B_ONE
    return B_DIFFERENT


def _reduced(root: str) -> str:
    return root[:2] + root[3:12] + root[13:]


def _no_maternal(root: str) -> bool:
    return root[2] == "X" and root[12] == "X"


def roots_agree(root: str, other: Prepared) -> bool:
    """A CURP's root against the roots another record's name, birth date and sex give; a
    missing maternal surname (X) on either side is unknown, not a contradiction."""
    if root in other.roots:
        return True
    reduced = _reduced(root)
    return reduced in other.roots_reduced_no_maternal or (
        _no_maternal(root) and reduced in other.roots_reduced
    )


def curp_level(a: Prepared, b: Prepared) -> int:
    if a.curp_root and b.curp_root:
        return C_EQUAL if a.features.curp == b.features.curp else C_CONTRADICTS
    if a.curp_root and b.roots:
        return C_ROOT_AGREES if roots_agree(a.curp_root, b) else C_ROOT_DIFFERS
    if b.curp_root and a.roots:
        return C_ROOT_AGREES if roots_agree(b.curp_root, a) else C_ROOT_DIFFERS
    # Neither has a CURP: roots derived from both names would only count the names twice.
    return MISSING


def _equal_level(x: str, y: str) -> int:
    if not x or not y:
        return MISSING
    return EQUAL if x == y else DIFFERS


def sex_level(a: Features, b: Features) -> int:
    # "X" against M or F says nothing: registration desks record other sexes differently.
    if not a.sex or not b.sex or (a.sex == "X") != (b.sex == "X"):
        return MISSING
    return EQUAL if a.sex == b.sex else DIFFERS


def phone_level(a: Features, b: Features) -> int:
    if not a.phones or not b.phones:
        return MISSING
    return EQUAL if a.phones & b.phones else DIFFERS


def address_level(a: Features, b: Features) -> int:
    if not (a.postal_code or a.city) or not (b.postal_code or b.city):
        return MISSING
    if a.postal_code and a.postal_code == b.postal_code:
        return A_POSTAL
    if a.city and a.city == b.city:
        return A_CITY
    return A_DIFFERENT


def levels(a: Prepared, b: Prepared, given: int | None = None) -> tuple[int, ...]:
    """The level of each comparison, in SCHEMA order (`given`: the given-name level, when
    the caller has it from a cache)."""
    fa, fb = a.features, b.features
    return (
        given_level(a, b) if given is None else given,
        surname_level(a, b),
        birth_date_level(fa, fb),
        curp_level(a, b),
        _equal_level(fa.ssn, fb.ssn),
        phone_level(fa, fb),
        sex_level(fa, fb),
        address_level(fa, fb),
    )


def contradictions(a: Prepared, b: Prepared, lv: Sequence[int]) -> tuple[str, ...]:
    found = []
    if lv[CURP] == C_CONTRADICTS:
        found.append("curp")
    if lv[SSN] == DIFFERS:
        found.append("ssn")
    if lv[SEX] == DIFFERS:
        found.append("sex")
    if lv[BIRTH_DATE] == B_DIFFERENT:
        found.append("birth_date")
    same_given = lv[GIVEN] in SAME_GIVEN
    # Twins: same surnames and birth date (or its swap), different given names.
    if (
        lv[SURNAMES] in SHARED_SURNAMES
        and lv[BIRTH_DATE] in (B_EXACT, B_SWAPPED)
        and not same_given
    ):
        found.append("twin")
    # Father and son (mother and daughter): same given names and paternal surname; the
    # maternal surname or the birth date tells them apart.
    fa = a.features
    paternal_shared = bool(fa.paternal) and fa.paternal in b.surnames
    if (
        same_given
        and paternal_shared
        and (lv[SURNAMES] == S_ONE_DIFFERS or lv[BIRTH_DATE] == B_DIFFERENT)
    ):
        found.append("namesake")
    return tuple(found)


def _shared_given_frequency(a: Prepared, b: Prepared) -> float | None:
    shared = a.significant_set & b.significant_set
    known = [f for f in map(frequencies.given, shared) if f is not None]
    # The commonest shared name: a rarer one beside it may be a middle name the other
    # record lacks, so it is the weaker claim.
    return max(known) if known and len(known) == len(shared) else None


def _shared_surname_frequency(a: Prepared, b: Prepared, level: int) -> float | None:
    if level in (S_BOTH, S_CROSSED):
        fa = a.features
        names = [fa.paternal, fa.maternal] if fa.paternal and fa.maternal else []
        names = (
            names if all(n in b.surnames for n in names) else sorted(a.surnames & b.surnames)[:2]
        )
    else:
        names = sorted(a.surnames & b.surnames)
    freqs = [frequencies.surname(n) for n in names]
    if not names or any(f is None for f in freqs):
        return None
    return math.prod(f for f in freqs if f is not None)


def tf_adjustment(model: Model, a: Prepared, b: Prepared, lv: Sequence[int]) -> tuple[float, float]:
    """Splink's term-frequency adjustment of the given-name and surname weights:
    tf_weight * log2(u_level / max(frequency, tf_minimum_u))."""
    adjustments = []
    for c_index, freq_of in ((GIVEN, _shared_given_frequency), (SURNAMES, None)):
        level = model.comparisons[c_index].levels[lv[c_index]]
        if level.tf_column is None or level.tf_weight == 0.0:
            adjustments.append(0.0)
            continue
        if freq_of is not None:
            frequency = freq_of(a, b)
        else:
            frequency = _shared_surname_frequency(a, b, lv[c_index])
        if frequency is None:
            adjustments.append(0.0)
            continue
        adjustments.append(
            level.tf_weight * math.log2(level.u / max(frequency, level.tf_minimum_u, 1e-12))
        )
    return adjustments[0], adjustments[1]


def probability(weight: float) -> float:
    """The match probability of a match weight (log2 odds), without overflow."""
    if weight >= 0:
        return 1.0 / (1.0 + math.pow(2.0, -weight))
    odds = math.pow(2.0, weight)
    return odds / (1.0 + odds)


def grade(model: Model, weight: float, found: tuple[str, ...]) -> str:
    """Certain needs no contradiction; two signs of different people (a father and son
    with another birth date, twins of another sex) leave the pair at most possible."""
    t = model.thresholds
    if weight >= t.certain and not found:
        return CERTAIN
    if weight >= t.probable and len(found) < 2:
        return PROBABLE
    if weight >= t.possible:
        return POSSIBLE
    return CERTAINLY_NOT


def household_only(lv: Sequence[int]) -> bool:
    """A shared phone or address points to a household; only with the given name does it
    point to a person. Random pairs (where u is measured) are seldom relatives, so for
    siblings, twins and parents the shared number would count as if it were the person's
    own: with different given names it counts for nothing (DOMAIN.md: relatives defeat
    naive matchers)."""
    return lv[GIVEN] not in (MISSING, G_EXACT, G_CONTAINED, G_NICKNAME, G_JW_HIGH)


def root_implied(lv: Sequence[int]) -> bool:
    """A CURP root is made of the initials, birth date and sex: when the names and the
    birth date already agree, its agreement says nothing new and counting it would count
    them twice (Fellegi-Sunter weights add only for independent comparisons)."""
    return (
        lv[CURP] == C_ROOT_AGREES
        and lv[GIVEN] in SAME_GIVEN
        and lv[SURNAMES] in SHARED_SURNAMES
        and lv[BIRTH_DATE] == B_EXACT
    )


class Scorer:
    """A model's weights looked up once; `score` for one pair, `weight` for bulk work."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.tables = model.weights()
        self.prior = model.prior_weight
        given, surnames = model.comparisons[GIVEN], model.comparisons[SURNAMES]
        self.tf_levels = (
            tuple(level.tf_weight > 0 for level in given.levels),
            tuple(level.tf_weight > 0 for level in surnames.levels),
        )
        # The most name frequencies can lift a level (names as rare as tf_minimum_u)
        self.most_tf_given = tuple(_most_tf(level) for level in given.levels)
        self.most_tf_surnames = tuple(_most_tf(level) for level in surnames.levels)

    def field_weights(self, a: Prepared, b: Prepared, lv: Sequence[int]) -> list[float]:
        weights = [self.tables[c][level] for c, level in enumerate(lv)]
        if self.tf_levels[0][lv[GIVEN]] or self.tf_levels[1][lv[SURNAMES]]:
            given_tf, surname_tf = tf_adjustment(self.model, a, b, lv)
            weights[GIVEN] += given_tf
            weights[SURNAMES] += surname_tf
        if household_only(lv):
            weights[PHONE] = min(weights[PHONE], 0.0)
            weights[ADDRESS] = min(weights[ADDRESS], 0.0)
        if root_implied(lv):
            weights[CURP] = 0.0
        return weights

    def upper_bound(self, lv: Sequence[int]) -> float:
        """At least the match weight `field_weights` can give these levels: a pair below
        a threshold even so needs no name frequencies looked up."""
        t = self.tables
        total = (
            self.prior
            + t[0][lv[0]]
            + t[1][lv[1]]
            + t[2][lv[2]]
            + t[3][lv[3]]
            + t[4][lv[4]]
            + t[5][lv[5]]
            + t[6][lv[6]]
            + t[7][lv[7]]
        )
        return total + self.most_tf_given[lv[GIVEN]] + self.most_tf_surnames[lv[SURNAMES]]

    def score(self, a: Prepared, b: Prepared, lv: Sequence[int] | None = None) -> Score:
        lv = levels(a, b) if lv is None else lv
        weights = [round(w, 4) for w in self.field_weights(a, b, lv)]
        explanation = tuple(
            FieldWeight(comparison.field, comparison.levels[level].label, weight)
            for comparison, level, weight in zip(self.model.comparisons, lv, weights, strict=True)
        )
        total = self.prior + sum(weights)
        found = contradictions(a, b, lv)
        return Score(
            probability=probability(total),
            weight=total,
            grade=grade(self.model, total, found),
            explanation=explanation,
            contradictions=found,
            prior_weight=self.prior,
        )


def _most_tf(level: Level) -> float:
    if level.tf_weight == 0:
        return 0.0
    return level.tf_weight * max(0.0, math.log2(level.u / max(level.tf_minimum_u, 1e-12)))


# The scorer of the models in use, so that its tables are built once per model, not per
# pair (`$match` scores tens of candidates a request). Keyed by identity: a model object
# is immutable and cached by `versions` for the life of the process.
_SCORERS: dict[int, tuple[Model, Scorer]] = {}


def scorer_for(model: Model) -> Scorer:
    found = _SCORERS.get(id(model))
    if found is None or found[0] is not model:
        if len(_SCORERS) > 16:
            _SCORERS.clear()
        found = _SCORERS[id(model)] = (model, Scorer(model))
    return found[1]


def score_prepared(a: Prepared, b: Prepared, model: Model) -> Score:
    return scorer_for(model).score(a, b)


def score(a: Features, b: Features, model: Model) -> Score:
    """How likely `a` and `b` are the same person, graded and explained."""
    return score_prepared(prepare(a), prepare(b), model)
