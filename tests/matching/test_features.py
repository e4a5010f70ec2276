"""A FHIR Patient as match features: dates, sex, CURP, SSN, phones, address, JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.mx import curp as stdnum_curp
from stdnum.us import ssn as stdnum_ssn

from exchange import curp as curp_rules
from exchange.matching.features import (
    Features,
    curp_roots_agree,
    e164,
    features,
    from_json,
    to_json,
    valid_ssn,
)
from tests.matching.patients import patient

# José Luis Ramírez Anchondo, born 12 April 1985 in Chihuahua (test_curp's example).
RAMIREZ = curp_rules.derive(
    paternal="Ramírez",
    maternal="Anchondo",
    given="José Luis",
    birth_date=dt.date(1985, 4, 12),
    sex="H",
    state="CH",
)


def test_a_mexican_record_with_extensions_and_curp() -> None:
    f = features(
        patient(
            family="Ramírez Anchondo",
            fathers="Ramírez",
            mothers="Anchondo",
            given=["José", "Luis"],
            gender="male",
            birth_date="1985-04-12",
            curp=RAMIREZ,
            phones=["+52 656 123 4567"],
            country="MX",
            postal_code="32000",
            city="Cd. Juárez",
        )
    )
    assert f == Features(
        id="p1",
        given=("JOSE", "LUIS"),
        given_canonical=frozenset({"JOSE", "LUIS"}),
        paternal="RAMIREZ",
        maternal="ANCHONDO",
        surnames=frozenset({"RAMIREZ", "ANCHONDO"}),
        phonetic_paternal="RAMIRES",
        phonetic_maternal="ANCONDO",
        phonetic_given="LUIS",
        birth_date=dt.date(1985, 4, 12),
        sex="M",
        curp=RAMIREZ,
        curp_roots=frozenset({"RAAL850412HMNS"}),
        ssn="",
        phones=frozenset({"+526561234567"}),
        postal_code="32000",
        city="CIUDAD JUAREZ",
    )


def test_the_root_a_us_record_gives_equals_the_mexican_curps() -> None:
    us = features(patient(family="Ramirez", given=["Luis"], gender="male", birth_date="1985-04-12"))
    mx_root = curp_rules.root_of(RAMIREZ)
    assert us.curp == ""
    # The maternal surname is unknown on the US side: X, agreeing with any.
    assert "RAXL850412HMXS" in us.curp_roots
    assert curp_roots_agree(us.curp_roots, frozenset({mx_root}))


def test_a_nickname_still_gives_the_registered_names_root() -> None:
    us = features(
        patient(family="Ramirez-Anchondo", given=["Chuy"], gender="male", birth_date="1985-04-12")
    )
    mx = curp_rules.derive(
        paternal="Ramírez",
        maternal="Anchondo",
        given="Jesús",
        birth_date=dt.date(1985, 4, 12),
        sex="H",
        state="CH",
    )
    assert curp_rules.root_of(mx) in us.curp_roots


def test_a_dropped_enye_still_gives_the_curps_x() -> None:
    mx = curp_rules.derive(
        paternal="Peña",
        maternal="Núñez",
        given="Ana",
        birth_date=dt.date(1990, 1, 20),
        sex="M",
        state="CH",
    )
    us = features(
        patient(family="Pena Nunez", given=["Ana"], gender="female", birth_date="1990-01-20")
    )
    assert curp_rules.root_of(mx) in us.curp_roots


def test_a_misfiled_paternal_surname_gives_the_right_root() -> None:
    us = features(
        patient(
            family="Anchondo", given=["Luis", "Ramirez"], gender="male", birth_date="1985-04-12"
        )
    )
    assert curp_rules.root_of(RAMIREZ) in us.curp_roots


def test_unknown_sex_gives_both_roots() -> None:
    us = features(patient(family="Ramirez Anchondo", given=["Luis"], birth_date="1985-04-12"))
    assert {"RAAL850412HMNS", "RAAL850412MMNS"} <= us.curp_roots


def test_roots_with_different_known_maternal_surnames_do_not_agree() -> None:
    assert not curp_roots_agree(frozenset({"RAAL850412HMNS"}), frozenset({"RALL850412HMLS"}))
    assert not curp_roots_agree(frozenset({"RAAL850412HMNS"}), frozenset({"RAAL850413HMNS"}))


def test_an_invalid_curp_check_digit_is_rejected() -> None:
    wrong = RAMIREZ[:17] + str((int(RAMIREZ[17]) + 1) % 10)
    f = features(
        patient(
            family="Ramírez Anchondo",
            given=["José Luis"],
            gender="male",
            birth_date="1985-04-12",
            curp=wrong,
        )
    )
    assert f.curp == ""
    # Its roots are then the name's own, like any record without a CURP.
    assert "RAAL850412HMNS" in f.curp_roots


def test_a_sex_x_curp_is_accepted() -> None:
    body = "RAAL850412XCHMNS0"
    number = body + stdnum_curp.calc_check_digit(body)
    assert not stdnum_curp.is_valid(number)  # why Puente checks it itself
    f = features(patient(family="Ramírez Anchondo", given=["Luis"], curp=number, gender="other"))
    assert f.curp == number
    assert f.sex == "X"
    assert f.curp_roots == {"RAAL850412XMNS"}


@pytest.mark.parametrize(
    "number",
    [
        "RAAL850412HCHMNS0",  # 17 characters
        "RAAL851312HCHMNS05",  # month 13
        "RAAL850412HQQMNS05",  # no such state
        "BACA850412HCHMNS05",  # an inconvenient word RENAPO never issues
        "RAAL850412ZCHMNS05",  # sex Z
    ],
)
def test_malformed_curps_are_rejected(number: str) -> None:
    assert curp_rules.validate(number) == ""


@given(st.from_regex(r"[A-Z]{4}[0-9]{6}[HM](CH|DF|NE|QQ)[A-Z]{3}[0-9A-Z][0-9]", fullmatch=True))
def test_curp_validation_agrees_with_python_stdnum(number: str) -> None:
    assert bool(curp_rules.validate(number)) == stdnum_curp.is_valid(number)


def test_a_curp_written_with_spaces_and_lower_case_is_read() -> None:
    spaced = f"{RAMIREZ[:4].lower()} {RAMIREZ[4:10]}-{RAMIREZ[10:]}"
    assert features(patient(curp=spaced)).curp == RAMIREZ


def test_a_curp_without_the_curp_system_is_recognised_by_its_form() -> None:
    resource = patient()
    resource["identifier"] = [{"system": "urn:other:registry", "value": RAMIREZ}]
    assert features(resource).curp == RAMIREZ


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        ("123-45-6789", "123456789"),
        ("123 45 6789", "123456789"),
        ("000-12-3456", ""),  # area 000
        ("666-12-3456", ""),
        ("912-12-3456", ""),
        ("123-00-6789", ""),
        ("123-45-0000", ""),
        ("078-05-1120", ""),  # the Woolworth wallet card
        ("12345678", ""),
    ],
)
def test_ssn(value: str, digits: str) -> None:
    assert features(patient(ssn=value)).ssn == digits


@given(st.from_regex(r"[0-9]{9}", fullmatch=True))
def test_ssn_validation_agrees_with_python_stdnum(number: str) -> None:
    assert bool(valid_ssn(number)) == stdnum_ssn.is_valid(number)


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+52 656 123 4567", "", {"+526561234567"}),
        ("+52 1 656 123 4567", "", {"+526561234567"}),  # the mobile 1 Mexico dropped
        ("0052 656 123 4567", "", {"+526561234567"}),
        ("011 52 656 123 4567", "US", {"+526561234567"}),
        ("+1 (915) 555-2345", "", {"+19155552345"}),
        ("1-915-555-2345", "", {"+19155552345"}),
        ("(915) 555-2345", "MX", {"+19155552345"}),  # El Paso's area code wins
        ("656 123 4567", "US", {"+526561234567"}),  # Juárez's area code wins
        ("614 123 4567", "", {"+526141234567"}),
        ("212 555 2345", "MX", {"+522125552345"}),  # the address decides
        ("212 555 2345", "US", {"+12125552345"}),
        ("212 555 2345", "", {"+12125552345", "+522125552345"}),  # nothing decides
        ("555-2345", "US", set()),  # no area code
        ("+44 20 7946 0958", "", {"+442079460958"}),  # elsewhere: phonenumbers
        ("+44 20", "", set()),
        ("call me", "", set()),
    ],
)
def test_phones_in_e164(raw: str, country: str, expected: set[str]) -> None:
    assert set(e164(raw, country=country)) == expected


def test_phones_use_the_address_country_as_hint() -> None:
    f = features(patient(phones=["212 555 2345", "+52 656 123 4567"], country="México"))
    assert f.phones == {"+522125552345", "+526561234567"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985-04-12", dt.date(1985, 4, 12)),
        ("1985-04", None),  # partial: no day to compare
        ("1985", None),
        ("1985-02-30", None),
        (19850412, None),
    ],
)
def test_birth_date(text: object, expected: dt.date | None) -> None:
    resource = patient()
    resource["birthDate"] = text
    assert features(resource).birth_date == expected


@pytest.mark.parametrize(
    ("gender", "sex"), [("male", "M"), ("female", "F"), ("other", "X"), ("unknown", "")]
)
def test_sex(gender: str, sex: str) -> None:
    assert features(patient(gender=gender)).sex == sex


def test_postal_code_and_city_are_folded() -> None:
    us = features(patient(postal_code="79901-1234", city="El Paso", country="US"))
    assert (us.postal_code, us.city) == ("79901", "EL PASO")
    mx = features(patient(postal_code="32 000", city="Ciudad Juárez", country="MX"))
    assert (mx.postal_code, mx.city) == ("32000", "CIUDAD JUAREZ")


def test_features_round_trip_through_json() -> None:
    f = features(
        patient(
            family="Hernandez-Lopez",
            given=["Chuy"],
            gender="male",
            birth_date="1985-04-03",
            ssn="123-45-6789",
            phones=["(915) 555-2345"],
        )
    )
    stored = json.loads(json.dumps(to_json(f)))
    assert from_json(stored) == f
    assert stored["birth_date"] == "1985-04-03"
    assert stored["given_canonical"] == ["JESUS"]


def test_a_record_that_says_nothing_gives_empty_features() -> None:
    f = features({"resourceType": "Patient", "id": "x"})
    assert (f.given, f.surnames, f.birth_date) == ((), frozenset(), None)
    assert (f.paternal, f.curp, f.ssn, f.sex, f.postal_code) == ("", "", "", "", "")
    assert (f.curp_roots, f.phones) == (frozenset(), frozenset())


def test_odd_content_is_ignored_not_raised() -> None:
    odd = {
        "resourceType": "Patient",
        "id": 7,
        "name": ["Hernández", {"family": 3, "given": "José"}, {"given": [None, "Luis"]}],
        "gender": ["male"],
        "identifier": [None, {"value": 5}, {"type": "SS", "value": "123456789"}],
        "telecom": [{"system": "phone"}, {"system": "phone", "value": 6561234567}],
        "address": [{"postalCode": 79901, "city": None}],
    }
    f = features(odd)
    assert (f.id, f.given, f.ssn, f.phones) == ("", ("LUIS",), "", frozenset())


def test_a_name_given_only_as_text_is_read() -> None:
    f = features({"resourceType": "Patient", "name": [{"text": "Jesús Hernández López"}]})
    assert f.given == ("JESUS",)
    assert (f.paternal, f.maternal) == ("HERNANDEZ", "LOPEZ")


def test_other_names_add_surnames_and_given_names() -> None:
    resource = patient(family="García", given=["María"], gender="female")
    resource["name"].append({"use": "maiden", "family": "Hernández López", "given": ["Lupe"]})
    f = features(resource)
    assert f.paternal == "GARCIA"
    assert f.surnames == {"GARCIA", "HERNANDEZ", "LOPEZ"}
    assert f.given_canonical == {"MARIA", "GUADALUPE"}


def test_birth_date_and_sex_come_from_the_curp_when_the_record_leaves_them_out() -> None:
    f = features(patient(family="Ramírez Anchondo", given=["José Luis"], curp=RAMIREZ))
    assert (f.birth_date, f.sex) == (dt.date(1985, 4, 12), "M")
    said = features(
        patient(
            family="Ramírez Anchondo",
            given=["José Luis"],
            curp=RAMIREZ,
            gender="male",
            birth_date="1985-12-04",
        )
    )
    assert said.birth_date == dt.date(1985, 12, 4)  # the record's own word stands


def test_a_us_form_of_a_leading_jose_is_skipped_like_jose() -> None:
    mx = curp_rules.derive(
        paternal="Ponce",
        maternal="Flores",
        given="José Sebastián",
        birth_date=dt.date(2000, 7, 22),
        sex="H",
        state="CH",
    )
    us = features(
        patient(
            family="Ponce Flores",
            given=["Joe", "Sebastian"],
            gender="male",
            birth_date="2000-07-22",
        )
    )
    assert curp_rules.root_of(mx) in us.curp_roots
    assert us.phonetic_given == features(patient(given=["Sebastián"])).phonetic_given


def test_an_inconvenient_word_root_agrees_with_a_root_missing_its_maternal_surname() -> None:
    # Vargas Carmona Alma gives VACA, which RENAPO writes VXCA; Vargas alone gives VAXA.
    mx = curp_rules.derive(
        paternal="Vargas",
        maternal="Carmona",
        given="Alma",
        birth_date=dt.date(1980, 12, 7),
        sex="M",
        state="CH",
    )
    assert mx.startswith("VXCA")
    us = features(
        patient(family="Vargas", given=["Alma"], gender="female", birth_date="1980-12-07")
    )
    assert curp_roots_agree(us.curp_roots, frozenset({curp_rules.root_of(mx)}))


@given(st.from_regex(r"[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[0-9A-Z]", fullmatch=True))
def test_check_digit_agrees_with_python_stdnum(body: str) -> None:
    assert curp_rules.check_digit(body) == stdnum_curp.calc_check_digit(body)
