"""Every message a person can see has both an English and a Spanish translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from translation.i18n import SUPPORTED, gettext
from translation.po import load

ROOT = Path(__file__).resolve().parents[2]
METHOD_MAP = [
    ("puente/**.py", "python"),
    ("exchange/**.py", "python"),
    ("consent/**.py", "python"),
    ("translation/**.py", "python"),
    ("demo/**.py", "python"),
    ("puente/auth/templates/**.html", "jinja2"),
]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _keys_in_source() -> set[str]:
    keys: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHOD_MAP, keywords={"N_": None, "_": None}
    ):
        if isinstance(message, str) and message:
            keys.add(message)
    return keys


def test_source_uses_symbolic_keys() -> None:
    keys = _keys_in_source()
    assert len(keys) > 30
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z0-9_]+)+", k) for k in keys), sorted(keys)


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_key_is_translated(locale: str) -> None:
    catalog = load(locale)
    untranslated = sorted(
        key
        for key in _keys_in_source()
        if (m := catalog.get(key)) is None or not m.string or m.fuzzy or m.string == key
    )
    assert untranslated == [], f"{locale} lacks translations for {untranslated}"


def test_translations_keep_their_placeholders() -> None:
    english, spanish = load("en_US"), load("es_MX")
    for message in english:
        if not message.id:
            continue
        other = spanish.get(message.id)
        assert other is not None, message.id
        assert set(PLACEHOLDER.findall(str(message.string))) == set(
            PLACEHOLDER.findall(str(other.string))
        ), message.id


def test_languages_differ_and_fill_parameters() -> None:
    en = gettext("en_US", "error.not_found", resource_type="Organization", res_id="x1")
    es = gettext("es_MX", "error.not_found", resource_type="Organization", res_id="x1")
    assert en == "Organization/x1 was not found."
    assert es == "No se encontró Organization/x1."


def test_unknown_locale_falls_back_to_english() -> None:
    assert gettext("fr_FR", "error.invalid") == gettext("en_US", "error.invalid")
