"""The CURP (Clave Única de Registro de Población) a person's name, birth date and sex give.

RENAPO's rules (Instructivo normativo para la asignación de la CURP): position 1 the first
letter of the paternal surname, 2 its first inner vowel, 3 the first letter of the maternal
surname (X if none), 4 the first letter of the given name, skipping a leading José or María
(and J., MA.) when a second name follows; 5-10 the birth date YYMMDD; 11 sex (H, M; X since
2023); 12-13 the state (NE born abroad); 14-16 the first inner consonants of paternal
surname, maternal surname and given name; 17 a homonym character (a digit for births
before 2000, a letter from 2000); 18 the check digit. Particles (DE, DEL, LA, ...) are
skipped, Ñ becomes X, and a word from RENAPO's list of inconvenient words in positions 1-4
gets its second letter replaced by X.

From a US record's name, birth date and sex one derives positions 1-11 and 14-16 only: the
state, homonym character and check digit need the registry (DOMAIN.md, "Identifiers").
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache

from stdnum.mx import curp as stdnum_curp

PARTICLES = frozenset(
    {
        "DA",
        "DAS",
        "DE",
        "DEL",
        "DER",
        "DI",
        "DIE",
        "DD",
        "EL",
        "LA",
        "LOS",
        "LAS",
        "LE",
        "LES",
        "MAC",
        "MC",
        "VAN",
        "VON",
        "Y",
    }
)
SKIPPED_FIRST_NAMES = frozenset({"JOSE", "J", "J.", "MARIA", "MA", "MA.", "M", "M."})
VOWELS = frozenset("AEIOU")
# RENAPO's inconvenient words (Anexo 2 of the Instructivo): the second letter becomes X.
INCONVENIENT = frozenset(
    {
        "BACA",
        "BAKA",
        "BUEI",
        "BUEY",
        "CACA",
        "CACO",
        "CAGA",
        "CAGO",
        "CAKA",
        "CAKO",
        "COGE",
        "COGI",
        "COJA",
        "COJE",
        "COJI",
        "COJO",
        "COLA",
        "CULO",
        "FALO",
        "FETO",
        "GETA",
        "GUEI",
        "GUEY",
        "JETA",
        "JOTO",
        "KACA",
        "KACO",
        "KAGA",
        "KAGO",
        "KAKA",
        "KAKO",
        "KOGE",
        "KOGI",
        "KOJA",
        "KOJE",
        "KOJI",
        "KOJO",
        "KOLA",
        "KULO",
        "LILO",
        "LOCA",
        "LOCO",
        "LOKA",
        "LOKO",
        "MAME",
        "MAMO",
        "MEAR",
        "MEAS",
        "MEON",
        "MIAR",
        "MION",
        "MOCO",
        "MOKO",
        "MULA",
        "MULO",
        "NACA",
        "NACO",
        "PEDA",
        "PEDO",
        "PENE",
        "PIPI",
        "PITO",
        "POPO",
        "PUTA",
        "PUTO",
        "QULO",
        "RATA",
        "ROBA",
        "ROBE",
        "ROBO",
        "RUIN",
        "SENO",
        "TETA",
        "VACA",
        "VAGA",
        "VAGO",
        "VAKA",
        "VUEI",
        "VUEY",
        "WUEI",
        "WUEY",
    }
)


def fold(text: str) -> str:
    """Upper case without accents; Ñ becomes X as in the CURP (NÚÑEZ -> NUXEZ)."""
    upper = text.upper()
    if upper.isascii():
        return upper  # the common case, and the matcher's already folded names
    upper = upper.replace("Ñ", "X")
    decomposed = unicodedata.normalize("NFKD", upper)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(name: str | None) -> list[str]:
    return [w for w in fold(name or "").replace("-", " ").split() if w.isalpha() or w.endswith(".")]


@lru_cache(maxsize=1 << 14)
def _significant(name: str | None) -> str:
    """The first word that is not a particle (`de la Cruz` -> CRUZ)."""
    words = [w.rstrip(".") for w in _words(name)]
    for word in words:
        if word not in PARTICLES:
            return word
    return words[-1] if words else ""


@lru_cache(maxsize=1 << 14)
def _given(name: str) -> str:
    words = _words(name)
    if len(words) > 1 and words[0] in SKIPPED_FIRST_NAMES:
        words = words[1:]
    return next((w.rstrip(".") for w in words if w.rstrip(".") not in PARTICLES), "")


def _inner(word: str, wanted: frozenset[str] | None) -> str:
    for char in word[1:]:
        is_vowel = char in VOWELS
        if char.isalpha() and (is_vowel if wanted is VOWELS else not is_vowel):
            return char
    return "X"


@lru_cache(maxsize=1 << 15)
def _part(name: str | None, *, given: bool = False) -> tuple[str, str, str]:
    """First letter, first inner vowel and first inner consonant of one name ("" when no
    name), cached per name: the matcher derives roots for every record without a CURP,
    and names repeat far more than their combinations."""
    word = _given(name or "") if given else _significant(name)
    if not word:
        return "", "", ""
    return word[:1], _inner(word, VOWELS), _inner(word, None)


def name_letters(paternal: str, maternal: str | None, given: str) -> tuple[str, str]:
    """Positions 1-4 and 14-16: the part of the CURP the name alone gives."""
    p_first, p_vowel, p_consonant = _part(paternal)
    m_first, _, m_consonant = _part(maternal)
    g_first, _, g_consonant = _part(given, given=True)
    letters = (p_first or "X") + (p_vowel or "X") + (m_first or "X") + (g_first or "X")
    if letters in INCONVENIENT:
        letters = letters[0] + "X" + letters[2:]
    consonants = (p_consonant or "X") + (m_consonant or "X") + (g_consonant or "X")
    return letters, consonants


def root(
    *, paternal: str, maternal: str | None, given: str, birth_date: dt.date, sex: str
) -> tuple[str, str]:
    """Positions 1-11 and 14-16: what anyone's name, birth date and sex give."""
    letters, consonants = name_letters(paternal, maternal, given)
    return letters + birth_date.strftime("%y%m%d") + sex, consonants


# RENAPO's state codes (Instructivo normativo, Anexo 1): the 32 entities and NE (born
# abroad); the same list python-stdnum checks.
STATES = frozenset(
    [
        "AS",
        "BC",
        "BS",
        "CC",
        "CH",
        "CL",
        "CM",
        "CS",
        "DF",
        "DG",
        "GR",
        "GT",
        "HG",
        "JC",
        "MC",
        "MN",
        "MS",
        "NE",
        "NL",
        "NT",
        "OC",
        "PL",
        "QR",
        "QT",
        "SL",
        "SP",
        "SR",
        "TC",
        "TL",
        "TS",
        "VZ",
        "YN",
        "ZS",
    ]
)
_FORM = re.compile(r"[A-Z]{4}[0-9]{6}[HMX][A-Z]{5}[0-9A-Z][0-9]")


def validate(number: str) -> str:
    """The CURP in its compact form if valid, else "": form, an inconvenient word in
    positions 1-4 (RENAPO never issues one), birth date, state, and the check digit
    (python-stdnum's algorithm). stdnum's own `validate` checks the same but knows sex H
    and M only, while RENAPO has assigned X (non-binary) since 2023; it also spends about
    10 µs cleaning Unicode, which the matcher pays for every record."""
    compact = number.replace(" ", "").replace("-", "").upper()
    if len(compact) != 18 or not _FORM.fullmatch(compact) or compact[:4] in INCONVENIENT:
        return ""
    if compact[11:13] not in STATES:
        return ""
    try:
        birth_date_of(compact)
    except ValueError:
        return ""
    return compact if compact[17] == check_digit(compact) else ""


# RENAPO's check-digit alphabet (Ñ, written &, between N and O), as python-stdnum has it.
_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ")}


def check_digit(number: str) -> str:
    """Position 18 from positions 1-17: python-stdnum's `calc_check_digit` with a table
    lookup instead of its `str.index` per character (a third of the time)."""
    total = sum(_VALUES[c] * (18 - i) for i, c in enumerate(number[:17]))
    return str((10 - total % 10) % 10)


def birth_date_of(number: str) -> dt.date:
    """The birth date a CURP carries: positions 5-10, the century from position 17 (a digit
    before 2000, a letter from 2000). Raises ValueError for an impossible date."""
    century = 1900 if number[16].isdigit() else 2000
    return dt.date(century + int(number[4:6]), int(number[6:8]), int(number[8:10]))


def root_of(number: str) -> str:
    """Positions 1-11 and 14-16 of a valid CURP, as one 14-character string: what a
    record without a CURP can be checked against (`root()` joined)."""
    return number[:11] + number[13:16]


def derive(
    *,
    paternal: str,
    maternal: str | None,
    given: str,
    birth_date: dt.date,
    sex: str,
    state: str,
    homonym: str | None = None,
) -> str:
    """A whole CURP, with the registry's parts (state, homonym character) supplied."""
    head, consonants = root(
        paternal=paternal, maternal=maternal, given=given, birth_date=birth_date, sex=sex
    )
    differentiator = homonym or ("0" if birth_date.year < 2000 else "A")
    body = head + state + consonants + differentiator
    return body + stdnum_curp.calc_check_digit(body)
