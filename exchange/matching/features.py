"""A Patient resource as the features the matcher compares (pure: no I/O).

The contract between normalisation (`names`, `features()` below), blocking and scoring:
every text field is folded (upper case, no accents, Ñ kept as N for comparison), empty
string or empty set when the record does not say. `features()` is the only way to build
one from FHIR JSON.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeGuard

import phonenumbers

from exchange import curp as curp_rules
from exchange.matching import names as names_


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


CURP_SYSTEM = "https://www.gob.mx/curp"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
SEX = {"male": "M", "female": "F", "other": "X"}
CURP_TO_SEX = {"H": "M", "M": "F", "X": "X"}
CURP_SEX = {"M": ("H",), "F": ("M",), "X": ("X",), "": ("H", "M")}
# Area codes read without a country code: Juárez and Chihuahua city are Mexican, El Paso
# is American, whatever the address says (the same person gives either phone). NANP has
# also assigned 656 (Tampa, 2022): a border record's 656 is Juárez.
MX_AREAS = frozenset({"656", "614"})
US_AREAS = frozenset({"915"})
MAX_ROOTS = 32
# SSNs printed on sample cards and in advertising (python-stdnum's list).
SSN_PUBLISHED = frozenset({"078051120", "457555462", "219099999"})
_NON_DIGITS = re.compile(r"[^0-9]+")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]+")
_CURP_FORM = re.compile(r"^[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[0-9A-Z][0-9]$")


def features(patient: Mapping[str, Any]) -> Features:
    """The match features of a FHIR R4 Patient (JSON). Never raises on odd content: what
    cannot be read is left empty, as if the record did not say."""
    curp, ssn = _identifiers(patient.get("identifier"))
    # What the record leaves out, its CURP says (positions 5-10 and 11).
    sex = SEX.get(_text(patient.get("gender")), "") or (CURP_TO_SEX[curp[10]] if curp else "")
    birth_date = _date(patient.get("birthDate"))
    if birth_date is None and curp:
        birth_date = curp_rules.birth_date_of(curp)
    names = [n for n in _list(patient.get("name")) if _is_map(n)]
    parsed = [_parse(n, female=sex == "F") for n in _ordered(names)]
    said = [p for p in parsed if p.given or p.family.paternal]
    main = said[0] if said else names_.parse_name("", ())
    given = main.given
    paternal, maternal = main.family.paternal, main.family.maternal
    canonical: set[str] = set()
    surnames: set[str] = set()
    for p in parsed:
        surnames |= p.surnames
        for word in p.given:
            canonical |= names_.canonical_given(word)
    address = _address(patient.get("address"))
    hint = _country(address)
    own_root = frozenset({curp_rules.root_of(curp)}) if curp else frozenset()
    roots = own_root or _derived_roots(main, birth_date, sex)
    return Features(
        id=_text(patient.get("id")),
        given=given,
        given_canonical=frozenset(canonical),
        paternal=paternal,
        maternal=maternal,
        surnames=frozenset(surnames),
        phonetic_paternal=names_.phonetic(names_.significant(paternal)),
        phonetic_maternal=names_.phonetic(names_.significant(maternal)),
        phonetic_given=names_.phonetic(names_.first_significant_given(given)),
        birth_date=birth_date,
        sex=sex,
        curp=curp,
        curp_roots=roots,
        ssn=ssn,
        phones=_phones(patient.get("telecom"), hint),
        postal_code=_postal_code(address),
        city=_city(address),
    )


def curp_roots_agree(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two sets of CURP roots (`Features.curp_roots`) share one. A root without a
    maternal surname (X in positions 3 and 15) agrees with any maternal surname: DOMAIN.md
    reads that X as unknown, not a contradiction; and then an X in position 2 agrees with
    any vowel, as it may be RENAPO's replacement in an inconvenient word (`VACA` -> `VXCA`)
    that the missing letter would have made."""
    if a & b:
        return True
    return any(_roots_agree(x, y) for x in a for y in b if _no_maternal(x) or _no_maternal(y))


def _roots_agree(x: str, y: str) -> bool:
    if len(x) != 14 or len(y) != 14 or x[0] != y[0] or x[3:12] != y[3:12] or x[13] != y[13]:
        return False
    return x[1] == y[1] or "X" in (x[1], y[1])


def to_json(f: Features) -> dict[str, Any]:
    """Features as JSON (sets sorted, the date ISO), for a table column."""
    out: dict[str, Any] = {}
    for name in Features.__slots__:
        value = getattr(f, name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[name] = value
    return out


def from_json(d: Mapping[str, Any]) -> Features:
    born = d.get("birth_date")
    return Features(
        id=d["id"],
        given=tuple(d["given"]),
        given_canonical=frozenset(d["given_canonical"]),
        paternal=d["paternal"],
        maternal=d["maternal"],
        surnames=frozenset(d["surnames"]),
        phonetic_paternal=d["phonetic_paternal"],
        phonetic_maternal=d["phonetic_maternal"],
        phonetic_given=d["phonetic_given"],
        birth_date=dt.date.fromisoformat(born) if born else None,
        sex=d["sex"],
        curp=d["curp"],
        curp_roots=frozenset(d["curp_roots"]),
        ssn=d["ssn"],
        phones=frozenset(d["phones"]),
        postal_code=d["postal_code"],
        city=d["city"],
    )


# --- names ------------------------------------------------------------------------------


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    # A JSON object is a dict: tested first, as an ABC check costs several times more.
    return isinstance(value, (dict, Mapping))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _ordered(names: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The official (else usual, else first current) name first; the others follow, as a
    maiden or nickname record may be what the other side holds."""
    rank = {"official": 0, "usual": 1, "old": 3, "maiden": 2}
    return sorted(names, key=lambda n: rank.get(_text(n.get("use")), 2))


def _extensions(element: object) -> dict[str, str]:
    found: dict[str, str] = {}
    if _is_map(element):
        for ext in _list(element.get("extension")):
            if _is_map(ext) and isinstance(ext.get("valueString"), str):
                found.setdefault(_text(ext.get("url")), ext["valueString"])
    return found


def _parse(name: Mapping[str, Any], *, female: bool) -> names_.ParsedName:
    ext = _extensions(name.get("_family"))
    for url, value in _extensions(name).items():
        ext.setdefault(url, value)
    given = tuple(g for g in _list(name.get("given")) if isinstance(g, str))
    family = _text(name.get("family"))
    if not family and not given and isinstance(name.get("text"), str):
        words = name["text"].split()
        given, family = tuple(words[:1]), " ".join(words[1:])
    return names_.parse_name(
        family,
        given,
        fathers=ext.get(names_.FATHERS, ""),
        mothers=ext.get(names_.MOTHERS, ""),
        partner=ext.get(names_.PARTNER, ""),
        female=female,
    )


# --- CURP -------------------------------------------------------------------------------


def _derived_roots(name: names_.ParsedName, birth_date: dt.date | None, sex: str) -> frozenset[str]:
    """Every root the record's name could give (`names.curp_parts`) with its birth date
    and sex (both H and M when the sex is unknown), at most MAX_ROOTS."""
    if birth_date is None:
        return frozenset()
    date = f"{birth_date.year % 100:02d}{birth_date.month:02d}{birth_date.day:02d}"
    roots = [
        letters + date + letter + consonants
        for letters, consonants in name.curp_parts
        for letter in CURP_SEX[sex]
    ]
    return frozenset(roots[:MAX_ROOTS])


def _no_maternal(root: str) -> bool:
    return root[2] == "X" and root[12] == "X"


def _identifiers(identifiers: object) -> tuple[str, str]:
    curp = ssn = ""
    for ident in _list(identifiers):
        if not _is_map(ident):
            continue
        value, system = _text(ident.get("value")), _text(ident.get("system"))
        codes = (
            {
                _text(c.get("code"))
                for c in _list((ident.get("type") or {}).get("coding"))
                if _is_map(c)
            }
            if _is_map(ident.get("type"))
            else set()
        )
        if not curp:
            compact = value.replace(" ", "").replace("-", "").upper()
            if system == CURP_SYSTEM or _CURP_FORM.match(compact):
                curp = curp_rules.validate(compact)
        if not ssn and (system == SSN_SYSTEM or "SS" in codes):
            ssn = valid_ssn(value)
    return curp, ssn


def valid_ssn(value: str) -> str:
    """The nine digits of a valid SSN, else "": python-stdnum's `us.ssn` rules (no area
    000, 666 or 9xx, no group 00, no serial 0000, not a number published in
    advertising), without its Unicode cleaning (a few µs a record)."""
    digits = value.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not (digits.isascii() and digits.isdigit()):
        return ""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return ""
    return "" if digits in SSN_PUBLISHED else digits


def _date(value: object) -> dt.date | None:
    text = _text(value)
    if len(text) != 10:
        return None  # a partial date (1985, 1985-04) gives no day to compare
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# --- phones and address -----------------------------------------------------------------


def _address(addresses: object) -> Mapping[str, Any]:
    current = [
        a for a in _list(addresses) if _is_map(a) and _text(a.get("use")) not in ("old", "billing")
    ]
    return current[0] if current else {}


def _country(address: Mapping[str, Any]) -> str:
    country = names_.fold_cached(_text(address.get("country")))
    state = names_.fold_cached(_text(address.get("state")))
    if country in ("MX", "MEX", "MEXICO") or state in ("CHH", "CHIH", "CHIHUAHUA"):
        return "MX"
    if country in ("US", "USA", "UNITED STATES") or state in ("TX", "TEXAS", "NM"):
        return "US"
    return ""


def _postal_code(address: Mapping[str, Any]) -> str:
    code = _NOT_ALNUM.sub("", _text(address.get("postalCode")).upper())
    if len(code) == 9 and code.isdigit() and _country(address) != "MX":
        return code[:5]  # ZIP+4: the ZIP is what both sides write
    return code


def _city(address: Mapping[str, Any]) -> str:
    words = names_.fold_cached(_text(address.get("city"))).split()
    if words and words[0] == "CD":
        words[0] = "CIUDAD"  # "Cd. Juárez"
    return " ".join(words)


def _phones(telecoms: object, hint: str) -> frozenset[str]:
    found: set[str] = set()
    for telecom in _list(telecoms):
        if _is_map(telecom) and _text(telecom.get("system")) in ("phone", "sms"):
            found.update(e164(_text(telecom.get("value")), country=hint))
    return frozenset(found)


def e164(raw: str, *, country: str = "") -> tuple[str, ...]:
    """The E.164 forms a written phone number may stand for (usually one).

    With a country code (`+52`, `+1`, `00`/`011` prefixes) the number says where it is
    (`+52 1 656 ...`, the mobile prefix Mexico dropped in 2019, loses its 1). Ten digits
    without one are read by area code first (656 and 614 Mexican, 915 American), then by
    the address country (`country`, "MX" or "US"), and when neither tells, as both: a
    false agreement between two people needs the same ten digits. Seven-digit local
    numbers are dropped (no area to compare). The common forms are read without
    `phonenumbers` (about 20 µs a parse); others go through it, cached."""
    text = raw.strip()
    digits = _NON_DIGITS.sub("", text)
    international = text.startswith("+")
    if not international and digits.startswith("00"):
        digits, international = digits[2:], True
    elif not international and digits.startswith("011"):
        digits, international = digits[3:], True
    if international:
        if digits.startswith("52") and len(digits) in (12, 13):
            rest = digits[3:] if len(digits) == 13 and digits[2] == "1" else digits[2:]
            return (f"+52{rest}",) if len(rest) == 10 and rest[0] != "0" else ()
        if digits.startswith("1") and len(digits) == 11:
            return (f"+{digits}",) if _nanp(digits[1:]) else ()
        return _parsed(f"+{digits}", "")
    if len(digits) == 11 and digits[0] == "1" and _nanp(digits[1:]):
        return (f"+{digits}",)
    if len(digits) in (12, 13) and digits.startswith("52"):
        return e164("+" + digits)
    if len(digits) != 10 or digits[0] == "0":
        return ()
    area = digits[:3]
    mexican, american = f"+52{digits}", f"+1{digits}"
    if area in MX_AREAS or (country == "MX" and area not in US_AREAS):
        return (mexican,)
    if area in US_AREAS or country == "US":
        return (american,) if _nanp(digits) else ()
    return (american, mexican) if _nanp(digits) else (mexican,)


def _nanp(ten: str) -> bool:
    """A North American number: area code and exchange both start 2-9, area code not N11."""
    return len(ten) == 10 and ten[0] in "23456789" and ten[3] in "23456789" and ten[1:3] != "11"


@lru_cache(maxsize=4096)
def _parsed(text: str, region: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return ()
    if not phonenumbers.is_valid_number(number):
        return ()
    return (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),)
