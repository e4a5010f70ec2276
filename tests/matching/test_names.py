"""Folding, surname parsing, given names, nicknames and the Spanish phonetic key."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from exchange.matching import names
from exchange.matching.features import features
from tests.matching.patients import patient


def test_fold_drops_accents_and_reads_enye_as_n() -> None:
    assert names.fold("Núñez-de la Peña") == "NUNEZ DE LA PENA"
    assert names.fold("  josé   MARÍA ") == "JOSE MARIA"
    assert names.fold("O'Brien Ma. Güémez") == "OBRIEN MA GUEMEZ"


def _surnames(**kwargs: object) -> tuple[str, str, frozenset[str]]:
    f = features(patient(gender="male", **kwargs))  # type: ignore[arg-type]
    return f.paternal, f.maternal, f.surnames


def test_surnames_from_the_fathers_and_mothers_family_extensions() -> None:
    got = _surnames(family="Hernández López", fathers="Hernández", mothers="López", given=["José"])
    assert got == ("HERNANDEZ", "LOPEZ", frozenset({"HERNANDEZ", "LOPEZ"}))


def test_surnames_from_extensions_on_the_human_name() -> None:
    got = _surnames(
        family="Hernández López", fathers="Hernández", mothers="López", on_name=True, given=["J"]
    )
    assert got[:2] == ("HERNANDEZ", "LOPEZ")


def test_extensions_win_over_a_family_string_that_reads_otherwise() -> None:
    # A compound paternal surname: the string alone would read two surnames.
    got = _surnames(family="Garza Sada Lopez", fathers="Garza Sada", mothers="López", given=["A"])
    assert got[:2] == ("GARZA SADA", "LOPEZ")


@pytest.mark.parametrize(
    ("family", "given", "paternal", "maternal"),
    [
        ("Hernández López", ["José"], "HERNANDEZ", "LOPEZ"),  # two surnames, no extensions
        ("Hernandez-Lopez", ["Jose"], "HERNANDEZ", "LOPEZ"),  # hyphenated
        ("Hernandez", ["Jose"], "HERNANDEZ", ""),  # maternal dropped
        ("Lopez", ["Jose", "Hernandez"], "HERNANDEZ", "LOPEZ"),  # paternal filed as middle
    ],
)
def test_every_us_desk_form_of_hernandez_lopez_shares_the_surnames(
    family: str, given: list[str], paternal: str, maternal: str
) -> None:
    f = features(patient(family=family, given=given, gender="male"))
    assert (f.paternal, f.maternal) == (paternal, maternal)
    assert "HERNANDEZ" in f.surnames
    assert f.given == ("JOSE",)
    assert f.phonetic_paternal == names.phonetic("HERNANDEZ")


def test_a_middle_name_that_is_mostly_a_first_name_stays_a_given_name() -> None:
    f = features(patient(family="Lopez", given=["Maria", "Guadalupe"], gender="female"))
    assert f.given == ("MARIA", "GUADALUPE")
    assert (f.paternal, f.maternal) == ("LOPEZ", "")
    assert f.surnames == {"LOPEZ"}


def test_an_ambiguous_middle_word_is_kept_as_a_possible_surname() -> None:
    # CRUZ is ten times more often a surname than a first name: a second reading.
    f = features(patient(family="Lopez", given=["Maria", "Cruz"], gender="female"))
    assert f.given == ("MARIA", "CRUZ")
    assert f.surnames == {"LOPEZ", "CRUZ"}


@pytest.mark.parametrize(
    ("family", "paternal", "maternal", "surnames"),
    [
        ("de la Cruz Núñez", "DE LA CRUZ", "NUNEZ", {"CRUZ", "NUNEZ"}),
        ("Núñez de la Cruz", "NUNEZ", "DE LA CRUZ", {"CRUZ", "NUNEZ"}),
        ("del Río Soto", "DEL RIO", "SOTO", {"RIO", "SOTO"}),
        ("de los Santos", "DE LOS SANTOS", "", {"SANTOS"}),
        ("Montes de Oca López", "MONTES DE OCA", "LOPEZ", {"MONTES", "OCA", "LOPEZ"}),
        ("Ponce de León", "PONCE DE LEON", "", {"PONCE", "LEON"}),
    ],
)
def test_particles_stay_with_their_surname(
    family: str, paternal: str, maternal: str, surnames: set[str]
) -> None:
    f = features(patient(family=family, given=["Ana"], gender="female"))
    assert (f.paternal, f.maternal) == (paternal, maternal)
    assert f.surnames == surnames


def test_a_glued_particle_sounds_like_the_separate_one() -> None:
    glued = features(patient(family="Delacruz", given=["Ana"]))
    spaced = features(patient(family="de la Cruz", given=["Ana"]))
    assert glued.phonetic_paternal == spaced.phonetic_paternal == names.phonetic("CRUZ")
    assert "CRUZ" in glued.surnames


def test_married_name_de_garcia() -> None:
    mx = features(patient(family="Hernández López", given=["María"], gender="female"))
    married = features(patient(family="Hernández de García", given=["María"], gender="female"))
    assert (married.paternal, married.maternal) == ("HERNANDEZ", "")
    assert married.surnames == {"HERNANDEZ", "GARCIA"}
    assert mx.paternal == married.paternal
    full = features(patient(family="Hernández López de García", given=["María"], gender="female"))
    assert (full.paternal, full.maternal) == ("HERNANDEZ", "LOPEZ")
    assert full.surnames == {"HERNANDEZ", "LOPEZ", "GARCIA"}


def test_a_mans_de_surname_is_his_maternal_one() -> None:
    f = features(patient(family="Hernández de León", given=["Juan"], gender="male"))
    assert (f.paternal, f.maternal) == ("HERNANDEZ", "DE LEON")


@pytest.mark.parametrize(
    ("given", "words", "goes_by"),
    [
        (["José Luis"], ("JOSE", "LUIS"), "LUIS"),
        (["José", "Luis"], ("JOSE", "LUIS"), "LUIS"),
        (["María Guadalupe"], ("MARIA", "GUADALUPE"), "GUADALUPE"),
        (["Ma. Guadalupe"], ("MARIA", "GUADALUPE"), "GUADALUPE"),
        (["María del Carmen"], ("MARIA", "CARMEN"), "CARMEN"),
        (["Ana María"], ("ANA", "MARIA"), "ANA"),
        (["José"], ("JOSE",), "JOSE"),
    ],
)
def test_compound_given_names(given: list[str], words: tuple[str, ...], goes_by: str) -> None:
    f = features(patient(family="Soto", given=given))
    assert f.given == words
    assert f.phonetic_given == names.phonetic(goes_by)


@pytest.mark.parametrize(
    ("variants", "canonical"),
    [
        (("Lupe", "Lupita", "Guadalupe"), "GUADALUPE"),
        (("Chuy", "Jesse", "Jesús"), "JESUS"),
        (("Pepe", "Joe", "José"), "JOSE"),
        (("Paco", "Pancho", "Frank", "Francisco"), "FRANCISCO"),
        (("Nacho", "Ignacio"), "IGNACIO"),
        (("Memo", "Guillermo", "William"), "GUILLERMO"),
        (("Lalo", "Eduardo", "Eddie"), "EDUARDO"),
        (("Beto", "Roberto"), "ROBERTO"),
        (("Beto", "Alberto"), "ALBERTO"),
        (("Chava", "Salvador"), "SALVADOR"),
        (("Chayo", "Rosario"), "ROSARIO"),
        (("Conchita", "Concepción"), "CONCEPCION"),
        (("Lola", "Dolores"), "DOLORES"),
        (("Toño", "Tony", "Antonio"), "ANTONIO"),
    ],
)
def test_nicknames_and_english_forms_share_a_canonical_name(
    variants: tuple[str, ...], canonical: str
) -> None:
    for variant in variants:
        assert canonical in names.canonical_given(variant), variant


def test_maria_guadalupe_and_lupe_share_a_given_name() -> None:
    mx = features(patient(family="Soto", given=["María", "Guadalupe"]))
    us = features(patient(family="Soto", given=["Lupe"]))
    assert mx.given_canonical & us.given_canonical == {"GUADALUPE"}


def test_an_unknown_name_is_its_own_canonical_form() -> None:
    assert names.canonical_given("Anchondo") == {"ANCHONDO"}
    assert names.canonical_given("Xóchitl") == {"XOCHITL"}


def test_different_names_are_not_made_equivalent() -> None:
    assert not names.canonical_given("Jesse") & names.canonical_given("José")
    assert not names.canonical_given("Paco") & names.canonical_given("Paca")


def test_the_nickname_table_is_large_sourced_and_loaded_once() -> None:
    data = resources.files("exchange.matching") / "data" / "nicknames.csv"
    with data.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert len(rows) >= 300
    sources = {"DOMAIN.md", "hipocorismo-mx", "equivalente-en", "ortografia"}
    assert {r["source"] for r in rows} <= sources
    assert all(r["variant"] and r["canonical"] and r["relation"] for r in rows)
    pairs = [(names.fold(r["variant"]), names.fold(r["canonical"])) for r in rows]
    assert len(set(pairs)) == len(pairs)
    assert all(variant != canonical for variant, canonical in pairs)
    assert names.nickname_table() is names.nickname_table()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("VARGAS", "BARGAS"),  # b/v
        ("VAZQUEZ", "VASQUEZ"),  # s/z, qu
        ("GONZALEZ", "GONSALES"),
        ("CECILIA", "SESILIA"),  # c before e/i
        ("LLAMAS", "YAMAS"),  # ll/y
        ("HERNANDEZ", "ERNANDEZ"),  # silent h
        ("JIMENEZ", "XIMENEZ"),  # j/x
        ("JIMENEZ", "GIMENEZ"),  # j/g before i
        ("QUINTANA", "KINTANA"),  # qu/k
        ("CORONA", "KORONA"),  # hard c/k
        ("NUNEZ", "NUÑEZ"),  # ñ/n (folded)
        ("GUEVARA", "GUEBARA"),  # gu before e
        ("AGUERO", "AGÜERO"),  # gü
        ("CARRILLO", "CARILLO"),  # doubled letters
        ("IBARRA", "YBARRA"),  # leading y as a vowel
        ("PHELIPE", "FELIPE"),  # ph
    ],
)
def test_phonetic_key_hears_spanish_spellings_alike(a: str, b: str) -> None:
    assert names.phonetic(names.fold(a)) == names.phonetic(names.fold(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [("GARCIA", "GARZA"), ("LOPEZ", "LOZANO"), ("ROSA", "ROJAS"), ("GUERRERO", "JERRERO")],
)
def test_phonetic_key_keeps_different_names_apart(a: str, b: str) -> None:
    assert names.phonetic(a) != names.phonetic(b)


def test_generational_suffixes_are_not_surnames() -> None:
    f = features(patient(family="Hernandez Jr.", given=["Jose", "Luis", "Jr"], gender="male"))
    assert (f.paternal, f.maternal, f.given) == ("HERNANDEZ", "", ("JOSE", "LUIS"))


def test_a_married_name_left_in_family_beside_the_extensions_is_a_surname() -> None:
    f = features(
        patient(
            family="Hernández López de García",
            fathers="Hernández",
            mothers="López",
            given=["María"],
            gender="female",
        )
    )
    assert (f.paternal, f.maternal) == ("HERNANDEZ", "LOPEZ")
    assert f.surnames == {"HERNANDEZ", "LOPEZ", "GARCIA"}


def test_every_word_of_a_long_family_is_a_surname_candidate() -> None:
    f = features(patient(family="Garza Sada López Hernández", given=["Ana"]))
    assert (f.paternal, f.maternal) == ("GARZA", "SADA")
    assert f.surnames == {"GARZA", "SADA", "LOPEZ", "HERNANDEZ"}
