"""Hospital systems' public keys (JWKS) and the client assertions signed with them.

SMART Backend Services (SMART App Launch 2.x, "Backend Services"): a client authenticates
with a JWT (RFC 7523) signed RS384 or ES384 by a key in the JWK Set it registered. Pure
functions, no I/O: recording the `jti` against replay is the service's job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from puente.auth.errors import InvalidClient
from translation.i18n import N_

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
KTY_OF_ALG = {"RS384": "RSA", "ES384": "EC"}
# SMART Backend Services: the assertion's exp "SHALL be no more than five minutes in the
# future".
MAX_ASSERTION_LIFETIME = 300
MIN_RSA_BITS = 2048
MAX_JTI_LENGTH = 256
MAX_ASSERTION_LENGTH = 8192
# Members that only a private or symmetric key has (RFC 7518 section 6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

PublicKey = RSAPublicKey | EllipticCurvePublicKey


class JWKSError(ValueError):
    """A JWK Set that cannot be registered; `message_key` says why in catalog words."""

    def __init__(self, message_key: str) -> None:
        super().__init__(message_key)
        self.message_key = message_key


def _public_key(jwk: dict[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            rsa_key = RSAAlgorithm.from_jwk(jwk)
            if isinstance(rsa_key, RSAPublicKey) and rsa_key.key_size >= MIN_RSA_BITS:
                return rsa_key
        elif kty == "EC" and jwk.get("crv") == "P-384":
            ec_key = ECAlgorithm.from_jwk(jwk)
            if isinstance(ec_key, EllipticCurvePublicKey) and isinstance(ec_key.curve, SECP384R1):
                return ec_key
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        pass
    raise JWKSError(N_("account.jwks_invalid"))


def _check_key(jwk: Any) -> str:
    if not isinstance(jwk, dict):
        raise JWKSError(N_("account.jwks_invalid"))
    if PRIVATE_MEMBERS & jwk.keys():
        raise JWKSError(N_("account.jwks_private"))
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 200:
        raise JWKSError(N_("account.jwks_invalid"))
    if alg is not None and (alg not in ALGORITHMS or KTY_OF_ALG[alg] != jwk.get("kty")):
        raise JWKSError(N_("account.jwks_invalid"))
    if jwk.get("use", "sig") != "sig":
        raise JWKSError(N_("account.jwks_invalid"))
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise JWKSError(N_("account.jwks_invalid"))
    _public_key(jwk)
    return kid


def validate_jwks(jwks: Any) -> dict[str, Any]:
    """The JWK Set as it will be stored: public RSA (2048+ bits) or P-384 EC signing keys,
    each with a distinct `kid`. Raises JWKSError otherwise."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise JWKSError(N_("account.jwks_invalid"))
    kids = [_check_key(jwk) for jwk in jwks["keys"]]
    if len(set(kids)) != len(kids):
        raise JWKSError(N_("account.jwks_invalid"))
    return {"keys": [dict(jwk) for jwk in jwks["keys"]]}


def unverified_issuer(assertion: str) -> str | None:
    """Which client the assertion claims to come from, to find its keys; trusted only once
    the signature verifies."""
    if len(assertion) > MAX_ASSERTION_LENGTH:
        return None
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) and issuer else None


@dataclass(frozen=True)
class VerifiedAssertion:
    jti: str
    expires_at: dt.datetime


def _signing_key(jwks: dict[str, Any] | None, header: dict[str, Any]) -> PublicKey:
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        # Refuses `none`, HS* (a shared-secret MAC is not a private key) and the rest.
        raise InvalidClient(N_("auth.assertion_algorithm"))
    kid = header.get("kid")
    for jwk in (jwks or {}).get("keys", []):
        if jwk.get("kid") == kid and jwk.get("kty") == KTY_OF_ALG[alg]:
            return _public_key(jwk)
    raise InvalidClient(N_("auth.assertion_key_unknown"))


def verify_assertion(
    assertion: str,
    *,
    client_id: str,
    jwks: dict[str, Any] | None,
    audience: str,
    now: dt.datetime,
) -> VerifiedAssertion:
    """Check an RFC 7523 client assertion as SMART Backend Services requires; raise
    InvalidClient saying which rule it broke."""
    if len(assertion) > MAX_ASSERTION_LENGTH:
        raise InvalidClient(N_("auth.assertion_malformed"))
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise InvalidClient(N_("auth.assertion_malformed")) from exc
    key = _signing_key(jwks, header)
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=[str(header["alg"])],
            audience=audience,
            issuer=client_id,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidClient(N_("auth.assertion_expired")) from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidClient(N_("auth.assertion_audience"), token_url=audience) from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidClient(N_("auth.assertion_issuer")) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidClient(N_("auth.assertion_claims")) from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidClient(N_("auth.assertion_signature")) from exc
    except jwt.PyJWTError as exc:
        raise InvalidClient(N_("auth.assertion_malformed")) from exc
    if claims.get("sub") != client_id:
        raise InvalidClient(N_("auth.assertion_issuer"))
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) != 1:
        raise InvalidClient(N_("auth.assertion_audience"), token_url=audience)
    jti, exp = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidClient(N_("auth.assertion_claims"))
    if not isinstance(exp, int) or exp > now.timestamp() + MAX_ASSERTION_LIFETIME:
        raise InvalidClient(N_("auth.assertion_lifetime"))
    return VerifiedAssertion(jti, dt.datetime.fromtimestamp(exp, dt.UTC))
