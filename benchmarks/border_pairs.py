"""Synthetic cross-border patient pairs with the truth: the matcher's benchmark data.

Builds on the demo's generator (`demo/generator.py`: Census name frequencies, `Person`,
the El Paso registration habits of `_us_name` / `_us_birth_date`) and adds what
DOMAIN.md ("People and their names", "Identifiers") says registration desks do and what
defeats naive matchers:

- on the US record: married names (`Hernández de García`, or just `García`) for women,
  English forms and nicknames beyond the demo's (`Juan` -> `John`), one-letter typos,
  birth dates typed month first or off by one, no SSN, the Mexican phone given, an El
  Paso or an older address;
- on the Mexican record: no CURP (many records lack it), a typo, the US phone, no phone,
  a moved address;
- hard negatives, different people who look alike across the border: twins (same
  surnames, birth date, home and phone, different given names, sometimes the same sex),
  siblings (same surnames, home and phone, other birth dates), father/son namesakes (same
  given names and paternal surname, another maternal surname, 20-35 years apart, often the
  same home) and unrelated people with very common names born the same day (same sex,
  given name and paternal surname, another maternal surname).

About 8% of the people drawn come with a relative across the border and 1% with such a
stranger: more often than family sizes and chance would put them in two hospitals, so
that the figures on hard negatives are measured rather than anecdotes.

`generate()` is deterministic for a seed. The truth is the set of (MX id, US id) pairs of
the same person; `hard_negatives` lists the look-alike pairs of different people with
their kind. Ids are assigned after shuffling, so they say nothing about the truth.

    python benchmarks/border_pairs.py --out DIR --mx 20000 --us 20000 [--overlap 0.4]
        [--seed 2026]

writes `DIR/mx.ndjson`, `DIR/us.ndjson` (one FHIR R4 Patient a line), `DIR/truth.csv`
(`mx_id,us_id`) and `DIR/hard_negatives.csv` (`mx_id,us_id,kind`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import json
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.generator import (
    ANCHOR,
    CURP_SYSTEM,
    EL_PASO_STREETS,
    ENGLISH_FAMILY,
    ENGLISH_GIVEN,
    JUAREZ_COLONIAS,
    SSN_SYSTEM,
    Generator,
    Person,
    _first_names,
    _mx_patient,
    _plain,
    _spanish,
    _surnames,
    _us_patient,
)
from exchange.curp import derive as derive_curp

ENGLISH_MEN = frozenset({"James", "Michael", "David", "Robert"})
Side = Literal["both", "mx", "us"]
Kind = Literal["twin", "sibling", "namesake", "common"]
KINDS: tuple[Kind, ...] = ("twin", "sibling", "namesake", "common")

# Of the units the generator draws, the share that are families (a person and a
# relative) and people with very common names born the same day; the rest are singles.
FAMILY_SHARE = 0.08
FAMILY_KINDS: tuple[Kind, ...] = ("twin", "sibling", "namesake")
FAMILY_WEIGHTS = (0.15, 0.55, 0.30)
COMMON_SHARE = 0.01

# Rates of what registration desks do (per record), beyond the demo's own.
MX_NO_CURP = 0.10
MX_TYPO = 0.01  # per name part: given names, paternal, maternal
MX_US_PHONE = 0.15  # a Juárez record with the El Paso number, when the person has one
MX_NO_PHONE = 0.06
US_MARRIED = 0.30  # of adult women: a married name on the US record
US_ENGLISH = 0.25  # an English form or nickname the demo's table lacks
US_TYPO_GIVEN = 0.02
US_TYPO_FAMILY = 0.03
US_DATE_SLIP = 0.015  # day or year off by one (after the demo's month-first swap)
US_NO_SSN = 0.10
US_MX_PHONE = 0.20  # the Juárez number given in El Paso although there is a US one
US_NO_PHONE = 0.06
US_JUAREZ_ADDRESS = 0.40  # a Mexican visitor gives their Juárez home
MOVED = 0.12  # an address one side has and the other does not yet

# English forms and nicknames El Paso desks write, beyond `demo.codes.NICKNAMES`.
ENGLISH_FORMS: dict[str, tuple[str, ...]] = {
    "JUAN": ("John", "Johnny"),
    "PEDRO": ("Peter", "Pete"),
    "CARLOS": ("Charles", "Charlie"),
    "JORGE": ("George",),
    "RICARDO": ("Richard", "Rick", "Ricky"),
    "ALFREDO": ("Alfred", "Fred"),
    "ARTURO": ("Arthur", "Art"),
    "RAUL": ("Ralph",),
    "ENRIQUE": ("Henry", "Kike"),
    "FRANCISCO": ("Frank", "Pancho", "Paco"),
    "JESUS": ("Jesse", "Chuy"),
    "JOSE": ("Joe", "Pepe", "Joseph"),
    "MANUEL": ("Manny", "Manolo"),
    "ANTONIO": ("Tony", "Toño"),
    "GUADALUPE": ("Lupe", "Lupita"),
    "MARIA": ("Mary",),
    "JOSEFINA": ("Josie", "Chepina"),
    "MARGARITA": ("Margaret", "Maggie"),
    "ELENA": ("Helen",),
    "TERESA": ("Terry", "Tere"),
    "CATALINA": ("Catherine", "Cathy"),
    "JUANA": ("Jane",),
    "ISABEL": ("Isabelle", "Chabela"),
    "GUILLERMO": ("William", "Memo"),
    "EDUARDO": ("Edward", "Lalo", "Eddie"),
    "ROBERTO": ("Robert", "Beto", "Bobby"),
    "ALBERTO": ("Albert", "Beto"),
    "REFUGIO": ("Cuca", "Cuco"),
    "SALVADOR": ("Chava",),
    "ROSARIO": ("Chayo",),
    "CONCEPCION": ("Conchita", "Concha"),
    "DOLORES": ("Lola",),
    "IGNACIO": ("Nacho",),
    "ALEJANDRO": ("Alex",),
    "MIGUEL": ("Mike",),
    "DANIEL": ("Danny",),
    "FERNANDO": ("Fernie",),
    "GERARDO": ("Gerry",),
    "ROSA": ("Rose",),
    "ANA": ("Anna", "Ann"),
}
JUAREZ_STREETS = (
    "Av. 16 de Septiembre",
    "Av. Tecnológico",
    "Calle Oro",
    "Av. de las Torres",
    "Calle Ignacio Mejía",
    "Av. Vicente Guerrero",
    "Calle Rancho Anapra",
    "Blvd. Zaragoza",
)
KEYBOARD_NEIGHBOURS = {
    "A": "SQZ",
    "B": "VNG",
    "C": "XVD",
    "D": "SFE",
    "E": "WRD",
    "F": "DGR",
    "G": "FHT",
    "H": "GJY",
    "I": "UOK",
    "J": "HKU",
    "K": "JLI",
    "L": "KO",
    "M": "N",
    "N": "MB",
    "O": "IPL",
    "P": "O",
    "Q": "WA",
    "R": "ETF",
    "S": "ADZ",
    "T": "RYG",
    "U": "YIJ",
    "V": "CB",
    "W": "QE",
    "X": "ZC",
    "Y": "TU",
    "Z": "XS",
}


@dataclass(frozen=True)
class Home:
    line: str
    city: str
    state: str
    postal_code: str
    country: str
    district: str = ""  # the colonia, in Juárez

    def fhir(self) -> dict[str, Any]:
        address: dict[str, Any] = {"line": [self.line], "city": self.city}
        if self.district:
            address["district"] = self.district
        address |= {"state": self.state, "postalCode": self.postal_code, "country": self.country}
        return address


@dataclass
class Someone:
    """A person of the benchmark, where they are registered and the ids they got."""

    person: Person
    side: Side
    juarez: Home  # where they live, or lived, in Juárez
    el_paso: Home  # the El Paso address they would give
    husband: str | None = None  # the surname a married woman may be filed under in El Paso
    mx_id: str = ""
    us_id: str = ""


@dataclass(frozen=True)
class BorderData:
    mx: list[dict[str, Any]]  # FHIR R4 Patients of the Juárez hospital
    us: list[dict[str, Any]]  # FHIR R4 Patients of the El Paso hospital
    truth: list[tuple[str, str]]  # (mx id, us id): the same person, sorted
    hard_negatives: list[tuple[str, str, str]]  # (mx id, us id, kind): different people


class _Builder:
    def __init__(self, seed: int) -> None:
        self.gen = Generator(seed)
        self.rng = self.gen.rng
        top_surnames = sorted(_surnames(), key=lambda n: -n.weight)[:12]
        self.common_surnames = [_spanish(n.text) for n in top_surnames]
        names = sorted(_first_names(), key=lambda n: -n.weight)
        self.common_given = {
            "male": [_spanish(n.text) for n in names if n.male_share >= 0.8][:8],
            "female": [_spanish(n.text) for n in names if n.male_share <= 0.2][:8],
        }

    # -- homes and phones ---------------------------------------------------------------

    def juarez_home(self) -> Home:
        rng = self.rng
        return Home(
            line=f"{rng.choice(JUAREZ_STREETS)} {rng.randint(100, 9999)}",
            city="Ciudad Juárez",
            state="CHH",
            postal_code=f"32{rng.randint(0, 699):03d}",
            country="MX",
            district=rng.choice(JUAREZ_COLONIAS),
        )

    def el_paso_home(self) -> Home:
        rng = self.rng
        return Home(
            line=f"{rng.randint(100, 9999)} {rng.choice(EL_PASO_STREETS)}",
            city="El Paso",
            state="TX",
            postal_code=f"799{rng.randint(0, 38):02d}",
            country="US",
        )

    def mx_phone(self) -> str:
        return f"+52 656 {self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}"

    def us_phone(self) -> str:
        return f"+1 915 {self.rng.randint(200, 999)} {self.rng.randint(1000, 9999)}"

    def ssn(self) -> str:
        rng = self.rng
        return f"{rng.randint(100, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    # -- people -------------------------------------------------------------------------

    def someone(self, person: Person, side: Side) -> Someone:
        husband = self.gen.surname() if person.sex == "female" else None
        return Someone(person, side, self.juarez_home(), self.el_paso_home(), husband)

    def person(self, side: Side) -> Person:
        """A Mexican for the Juárez side (and the people registered on both), an El Pasoan
        (mostly Hispanic, some with English names) for the US side only."""
        if side != "us":
            return self.gen.person(mexican=True)
        person = self.gen.person(mexican=False)
        if self.rng.random() < 0.15:
            names = [n for n in ENGLISH_GIVEN if (n in ENGLISH_MEN) == (person.sex == "male")]
            person.given = [self.rng.choice(names)]
            person.paternal, person.maternal = self.rng.choice(ENGLISH_FAMILY), None
        return person

    def _with_curp(self, person: Person, other: Person | None = None) -> Person:
        """`person` with the CURP its name, birth date and sex give when it has one; a
        different homonym character than `other`'s when the rest collides (twins)."""
        if person.curp is None:
            return person

        def curp(homonym: str | None = None) -> str:
            return derive_curp(
                paternal=person.paternal,
                maternal=person.maternal,
                given=" ".join(person.given),
                birth_date=person.birth_date,
                sex="H" if person.sex == "male" else "M",
                state=person.curp[11:13] if person.curp else "CH",
                homonym=homonym,
            )

        number = curp()
        if other is not None and other.curp == number:
            number = curp("1" if person.birth_date.year < 2000 else "B")
        return replace(person, curp=number)

    def _other_given(self, sex: str, than: Sequence[str]) -> list[str]:
        while True:
            given = self.gen.given_names(sex)
            if given[-1] != than[-1] and given[0] != than[0]:
                return given

    def relative(self, anchor: Person, kind: Kind) -> Person:
        rng = self.rng
        if kind == "twin":
            sex = (
                anchor.sex
                if rng.random() < 0.6
                else ("male" if anchor.sex == "female" else "female")
            )
            twin = replace(
                anchor,
                sex=sex,
                given=self._other_given(sex, anchor.given),
                ssn=self.ssn() if anchor.ssn else None,
                conditions=[],
            )
            return self._with_curp(twin, anchor)
        if kind == "sibling":
            sex = rng.choice(("male", "female"))
            gap = dt.timedelta(days=rng.randint(400, 15 * 365))
            born = anchor.birth_date - gap
            if born.year < 1930 or rng.random() < 0.5:
                born = min(anchor.birth_date + gap, ANCHOR - dt.timedelta(days=30))
            sibling = replace(
                anchor,
                sex=sex,
                given=self._other_given(sex, anchor.given),
                birth_date=born,
                ssn=self.ssn() if anchor.ssn else None,
                conditions=[],
            )
            return self._with_curp(sibling)
        # namesake: the anchor (a man) and his father or son, same given names and paternal
        # surname; the son's maternal surname is his mother's, not his grandmother's.
        gap = dt.timedelta(days=int(rng.uniform(20, 35) * 365.25))
        age = (ANCHOR - anchor.birth_date).days
        born = anchor.birth_date - gap if age + gap.days < 92 * 365 else anchor.birth_date + gap
        maternal = anchor.maternal
        while maternal == anchor.maternal:
            maternal = self.gen.surname()
        namesake = replace(
            anchor,
            maternal=maternal,
            birth_date=born,
            ssn=self.ssn() if anchor.ssn else None,
            mx_phone=anchor.mx_phone if rng.random() < 0.5 else self.mx_phone(),
            us_phone=anchor.us_phone if rng.random() < 0.5 else None,
            conditions=[],
        )
        return self._with_curp(namesake)

    def mexican(self, *, man: bool = False) -> Person:
        """A family's first member: Mexican, since one of the family is in Juárez."""
        while True:
            person = self.gen.person(mexican=True)
            if person.sex == "male" or not man:
                return person

    def common(self, side: Side, like: Person | None) -> Person:
        """Someone with very common names; when `like` is given, born the same day with the
        same sex, given name and paternal surname but another (common) maternal surname:
        unrelated people identical in every name would be a coincidence far rarer than
        this data makes them, and no record could tell them apart."""
        rng = self.rng
        person = self.person(side)
        if like is not None:
            person.sex = like.sex
            person.birth_date = like.birth_date
            person.given = list(like.given)
            person.paternal = like.paternal
            person.maternal = rng.choice([s for s in self.common_surnames if s != like.maternal])
        else:
            person.given = [rng.choice(self.common_given[person.sex])]
            person.paternal = rng.choice(self.common_surnames)
            person.maternal = rng.choice(self.common_surnames)
        return self._with_curp(person)


def _typo(word: str, rng: random.Random) -> str:
    """One edit a hurried typist makes: a neighbouring key, a dropped, doubled or swapped
    letter."""
    letters = [i for i in range(1, len(word) - 1) if word[i - 1 : i + 1].isalpha()]
    if len(word) < 3 or not letters:
        return word
    at = rng.choice(letters)
    kind = rng.random()
    if kind < 0.35:
        near = KEYBOARD_NEIGHBOURS.get(_plain(word[at]).upper())
        if not near:
            return word
        letter = rng.choice(near)
        return word[:at] + (letter if word[at].isupper() else letter.lower()) + word[at + 1 :]
    if kind < 0.6:
        return word[:at] + word[at + 1 :]
    if kind < 0.8:
        return word[:at] + word[at] + word[at:]
    if not word[at + 1].isalpha():
        return word
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def _mx_record(someone: Someone, index: int, rng: random.Random) -> dict[str, Any]:
    person = someone.person
    typed = replace(
        person,
        given=[_typo(g, rng) if rng.random() < MX_TYPO else g for g in person.given],
        paternal=_typo(person.paternal, rng) if rng.random() < MX_TYPO else person.paternal,
        maternal=_typo(person.maternal, rng)
        if person.maternal and rng.random() < MX_TYPO
        else person.maternal,
    )
    patient = _mx_patient(typed, someone.mx_id, index)
    if rng.random() < MX_NO_CURP:
        patient["identifier"] = [i for i in patient["identifier"] if i["system"] != CURP_SYSTEM]
    phone = rng.random()
    if phone < MX_NO_PHONE:
        del patient["telecom"]
    elif person.us_phone and phone < MX_NO_PHONE + MX_US_PHONE:
        patient["telecom"][0]["value"] = person.us_phone
    home = someone.juarez
    if rng.random() < MOVED:
        home = replace(
            home,
            line=f"{rng.choice(JUAREZ_STREETS)} {rng.randint(100, 9999)}",
            postal_code=f"32{rng.randint(0, 699):03d}",
            district=rng.choice(JUAREZ_COLONIAS),
        )
    patient["address"] = [home.fhir()]
    return patient


def _us_family(someone: Someone, name: dict[str, Any], rng: random.Random) -> None:
    person = someone.person
    adult = (ANCHOR - person.birth_date).days >= 20 * 365
    misfiled = len(name["given"]) > 1 and name["given"][-1] == _plain(person.paternal)
    if someone.husband and adult and not misfiled and rng.random() < US_MARRIED:
        husband = _plain(someone.husband)
        paternal = _plain(person.paternal)
        name["family"] = f"{paternal} de {husband}" if rng.random() < 0.5 else husband
    if rng.random() < US_TYPO_FAMILY:
        name["family"] = _typo(name["family"], rng)


def _us_given(name: dict[str, Any], rng: random.Random) -> None:
    given: list[str] = name["given"]
    forms = ENGLISH_FORMS.get(given[0].upper())
    if forms and rng.random() < US_ENGLISH:
        given[0] = _plain(rng.choice(forms))
    if rng.random() < US_TYPO_GIVEN:
        given[0] = _typo(given[0], rng)


def _slip(birth_date: str, rng: random.Random) -> str:
    day = dt.date.fromisoformat(birth_date)
    if rng.random() < 0.5 or (day.month, day.day) == (2, 29):
        day += dt.timedelta(days=rng.choice((-1, 1)))
    else:
        day = day.replace(year=day.year + rng.choice((-1, 1)))
    return min(day, ANCHOR).isoformat()


def _us_record(someone: Someone, index: int, rng: random.Random) -> dict[str, Any]:
    person = someone.person
    patient = _us_patient(person, someone.us_id, index, rng)
    name = patient["name"][0]
    _us_family(someone, name, rng)
    _us_given(name, rng)
    if rng.random() < US_DATE_SLIP:
        patient["birthDate"] = _slip(patient["birthDate"], rng)
    if rng.random() < US_NO_SSN:
        patient["identifier"] = [i for i in patient["identifier"] if i["system"] != SSN_SYSTEM]
    phone = rng.random()
    if phone < US_NO_PHONE:
        del patient["telecom"]
    elif person.us_phone and phone < US_NO_PHONE + US_MX_PHONE:
        patient["telecom"][0]["value"] = person.mx_phone
    mexican = person.curp is not None
    home = someone.juarez if mexican and rng.random() < US_JUAREZ_ADDRESS else someone.el_paso
    if rng.random() < MOVED:
        home = replace(home, line=f"{rng.randint(100, 9999)} {rng.choice(EL_PASO_STREETS)}")
    patient["address"] = [home.fhir()]
    return patient


def _pick(rng: random.Random, budget: dict[Side, int], allowed: Iterable[Side]) -> Side | None:
    sides = [s for s in allowed if budget[s] > 0]
    if not sides:
        return None
    side = rng.choices(sides, [budget[s] for s in sides])[0]
    budget[side] -= 1
    return side


ACROSS: dict[Side, tuple[Side, ...]] = {
    "both": ("both", "mx", "us"),
    "mx": ("both", "us"),
    "us": ("both", "mx"),
}


Group = tuple[Kind, list[Someone]]


def _people(b: _Builder, budget: dict[Side, int]) -> tuple[list[Someone], list[Group]]:
    """Everyone, and the groups of look-alikes (a unit with a hard negative across)."""
    rng = b.rng
    people: list[Someone] = []
    groups: list[Group] = []
    while any(budget.values()):
        draw = rng.random()
        side = _pick(rng, budget, ("both", "mx", "us"))
        assert side is not None
        if draw < FAMILY_SHARE + COMMON_SHARE:
            other = _pick(rng, budget, ACROSS[side])
            if other is not None:
                if draw < COMMON_SHARE:
                    first = b.common(side, None)
                    second = b.common(other, first)
                    pair = [b.someone(first, side), b.someone(second, other)]
                    groups.append(("common", pair))
                else:
                    kind = rng.choices(FAMILY_KINDS, FAMILY_WEIGHTS)[0]
                    anchor = b.mexican(man=kind == "namesake")
                    relative = b.relative(anchor, kind)
                    first_one = b.someone(anchor, side)
                    second_one = replace(b.someone(relative, other), juarez=first_one.juarez)
                    if kind != "namesake" or rng.random() < 0.6:
                        second_one.el_paso = first_one.el_paso
                    pair = [first_one, second_one]
                    groups.append((kind, pair))
                people.extend(pair)
                continue
        people.append(b.someone(b.person(side), side))
    return people, groups


def generate(n_mx: int, n_us: int, *, overlap: float, seed: int) -> BorderData:
    """`n_mx` Juárez and `n_us` El Paso Patients, `overlap` of the smaller side being the
    same people as on the other side (the truth), with the hard negatives above."""
    if not 0 <= overlap <= 1:
        raise ValueError("overlap is a share between 0 and 1")
    collecting = gc.isenabled()
    gc.disable()  # a few hundred thousand small dicts, none cyclic: the collector only costs
    try:
        return _generate(n_mx, n_us, overlap=overlap, seed=seed)
    finally:
        if collecting:
            gc.enable()


def _generate(n_mx: int, n_us: int, *, overlap: float, seed: int) -> BorderData:
    shared = round(overlap * min(n_mx, n_us))
    b = _Builder(seed)
    budget: dict[Side, int] = {"both": shared, "mx": n_mx - shared, "us": n_us - shared}
    people, groups = _people(b, budget)
    rng = b.rng
    on_mx = [p for p in people if p.side != "us"]
    on_us = [p for p in people if p.side != "mx"]
    rng.shuffle(on_mx)
    rng.shuffle(on_us)
    for index, someone in enumerate(on_mx):
        someone.mx_id = f"hgcj-p{index:07d}"
    for index, someone in enumerate(on_us):
        someone.us_id = f"umcep-p{index:07d}"
    mx = [_mx_record(s, i, rng) for i, s in enumerate(on_mx)]
    us = [_us_record(s, i, rng) for i, s in enumerate(on_us)]
    truth = sorted((p.mx_id, p.us_id) for p in on_mx if p.side == "both")
    hard: list[tuple[str, str, str]] = []
    for kind, group in groups:
        for first in group:
            for second in group:
                if first is not second and first.mx_id and second.us_id:
                    hard.append((first.mx_id, second.us_id, kind))
    return BorderData(mx, us, truth, sorted(hard))


def write(data: BorderData, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: folder / name
        for name in ("mx.ndjson", "us.ndjson", "truth.csv", "hard_negatives.csv")
    }
    for name, patients in (("mx.ndjson", data.mx), ("us.ndjson", data.us)):
        with paths[name].open("w", encoding="utf-8") as fh:
            for patient in patients:
                fh.write(json.dumps(patient, ensure_ascii=False, separators=(",", ":")) + "\n")
    with paths["truth.csv"].open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("mx_id", "us_id"))
        out.writerows(data.truth)
    with paths["hard_negatives.csv"].open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(("mx_id", "us_id", "kind"))
        out.writerows(data.hard_negatives)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--mx", type=int, default=20_000, help="Juárez patients")
    parser.add_argument("--us", type=int, default=20_000, help="El Paso patients")
    parser.add_argument("--overlap", type=float, default=0.4, help="share of the smaller side")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = generate(args.mx, args.us, overlap=args.overlap, seed=args.seed)
    write(data, args.out)
    kinds = {k: sum(1 for h in data.hard_negatives if h[2] == k) for k in KINDS}
    print(
        f"{len(data.mx)} MX, {len(data.us)} US patients, {len(data.truth)} true pairs, "
        f"hard negatives {kinds}, in {time.perf_counter() - started:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
