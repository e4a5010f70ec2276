"""Hashes of what Puente must recognise but never keep: passwords, client secrets, codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    """An argon2id hash (salted, memory-hard) of a password or client secret."""
    return _hasher.hash(secret)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Whether `secret` matches; with no stored hash (unknown account or client) a decoy is
    checked anyway, so the answer takes as long and does not reveal who exists."""
    try:
        return _hasher.verify(stored_hash or _decoy_hash(), secret) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def sha256_hex(value: str) -> str:
    """For one-time codes: random and long, so a plain SHA-256 cannot be reversed."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def keyed_sha256_hex(key: str, value: str) -> str:
    """For e-mail addresses kept for rate limiting: keyed (HMAC-SHA-256 over the server's
    secret) because a plain hash of a guessable address is a dictionary lookup away."""
    return hmac.new(key.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()
