"""Small catalog chores for the Makefile: add translations for new keys, list gaps.

`python -m translation.po missing` prints every extracted key that lacks a translation in
either catalog (exit 1 if any); `python -m translation.po add KEY "English" "Español"`
appends one entry to both catalogs.
"""

from __future__ import annotations

import sys

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from translation.i18n import DOMAIN, LOCALE_DIR, SUPPORTED

TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"


def _path(locale: str) -> str:
    return str(LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po")


def load(locale: str) -> Catalog:
    with open(_path(locale), "rb") as fh:
        return read_po(fh, locale=locale)


def save(locale: str, catalog: Catalog) -> None:
    with open(_path(locale), "wb") as fh:
        write_po(fh, catalog, sort_output=True, omit_header=False, width=100)


def template_keys() -> list[str]:
    with TEMPLATE.open("rb") as fh:
        return [str(m.id) for m in read_po(fh) if m.id]


def missing() -> dict[str, list[str]]:
    """Keys of the template with no (or a fuzzy) translation, per locale."""
    gaps: dict[str, list[str]] = {}
    keys = template_keys()
    for locale in SUPPORTED:
        catalog = load(locale)
        for key in keys:
            message = catalog.get(key)
            if message is None or not message.string or message.fuzzy:
                gaps.setdefault(locale, []).append(key)
    return gaps


def add(key: str, english: str, spanish: str) -> None:
    for locale, text in (("en_US", english), ("es_MX", spanish)):
        catalog = load(locale)
        catalog.add(key, text)
        save(locale, catalog)


def main(argv: list[str]) -> int:
    if argv[:1] == ["missing"]:
        gaps = missing()
        for locale, keys in gaps.items():
            for key in keys:
                print(f"{locale}: {key}")
        return 1 if gaps else 0
    if argv[:1] == ["add"] and len(argv) == 4:
        add(argv[1], argv[2], argv[3])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
