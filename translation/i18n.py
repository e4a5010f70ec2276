"""Message catalogs and locale negotiation.

Messages are symbolic keys (`error.not_found`) translated in both catalogs, so a missing
translation is visible in either language (tests/translation checks it).
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED = ("en_US", "es_MX")
DOMAIN = "messages"
log = logging.getLogger(__name__)


def N_(key: str) -> str:  # noqa: N802 - the gettext convention extractors look for
    """Mark a message key for extraction without translating it here."""
    return key


@lru_cache(maxsize=len(SUPPORTED))
def translations(locale: str) -> Translations:
    mo = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if mo.exists():
        with mo.open("rb") as fh:
            return Translations(fh, domain=DOMAIN)
    # A checkout installed without `make install` has no compiled catalogs: compile in
    # memory so that people still read words, and say how to do it properly.
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    log.warning("catalog_not_compiled", extra={"locale": locale})
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def gettext(locale: str, key: str, **params: Any) -> str:
    """The text of `key` in `locale`, with `{name}` placeholders filled from params."""
    text = translations(locale if locale in SUPPORTED else SUPPORTED[0]).gettext(key)
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def _parse_accept_language(header: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for position, part in enumerate(header.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip()
        if not tag:
            continue
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if 0 < quality <= 1:
            # Stable order: by quality, then as the client listed them.
            ranges.append((tag, quality - position * 1e-6))
    return sorted(ranges, key=lambda item: item[1], reverse=True)


def match_locale(tag: str | None) -> str | None:
    """The supported catalog for one language tag (`es`, `es-US`, `en_GB`...), if any."""
    if not tag or tag == "*":
        return None
    try:
        language = Locale.parse(tag.replace("-", "_")).language
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    for supported in SUPPORTED:
        if supported.split("_")[0] == language:
            return supported
    return None


def negotiate(
    accept_language: str | None, *, preference: str | None = None, default: str = "en_US"
) -> str:
    """The catalog for a request: a user's stored preference, else Accept-Language."""
    preferred = match_locale(preference)
    if preferred:
        return preferred
    if accept_language:
        for tag, _quality in _parse_accept_language(accept_language):
            found = match_locale(tag)
            if found:
                return found
    return default if default in SUPPORTED else SUPPORTED[0]


def bcp47(locale: str) -> str:
    """`es_MX` -> `es-MX`, for Content-Language headers and HTML lang attributes."""
    return locale.replace("_", "-")
