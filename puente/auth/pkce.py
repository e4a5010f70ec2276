"""Proof Key for Code Exchange (RFC 7636), S256 only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# RFC 7636 section 4.1: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# An S256 challenge is BASE64URL(SHA-256(verifier)) without padding: 43 characters.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    return bool(_S256_CHALLENGE.match(challenge))


def valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.match(verifier))


def matches(verifier: str, challenge: str) -> bool:
    return valid_verifier(verifier) and hmac.compare_digest(s256(verifier), challenge)
