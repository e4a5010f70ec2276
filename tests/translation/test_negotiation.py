"""Locale negotiation from Accept-Language and a person's stored preference."""

from __future__ import annotations

import pytest

from translation.i18n import negotiate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("es", "es_MX"),
        ("es-MX", "es_MX"),
        ("es-US", "es_MX"),
        ("es_US", "es_MX"),
        ("en", "en_US"),
        ("en-US", "en_US"),
        ("en-GB", "en_US"),
        ("fr-FR, es;q=0.8, en;q=0.5", "es_MX"),
        ("en;q=0.4, es;q=0.9", "es_MX"),
        ("es;q=0.5, en;q=0.5", "es_MX"),  # equal quality: the client's order decides
        ("es;q=0, en", "en_US"),  # q=0 means "not this one"
        ("fr, de", "en_US"),
        ("*", "en_US"),
        ("", "en_US"),
        ("garbage;;;q=x", "en_US"),
        (None, "en_US"),
    ],
)
def test_accept_language(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_default_locale_applies_when_nothing_matches() -> None:
    assert negotiate("fr", default="es_MX") == "es_MX"
    assert negotiate(None, default="es_MX") == "es_MX"


def test_a_persons_preference_wins_over_the_header() -> None:
    assert negotiate("en-US", preference="es-MX") == "es_MX"
    assert negotiate("es", preference="en") == "en_US"
    assert negotiate("es", preference="klingon") == "es_MX"
