"""One JWK (RFC 7517 §4) → one :class:`VerificationKey`: the key and the one algorithm it verifies.

The algorithm is decided here from the key itself (its ``alg`` member, or its type and curve), so
a token's header can never choose how it is verified (RFC 8725 §3.1). Symmetric (``oct``) keys and
private key material are refused, and so are RSA keys whose size or public exponent is out of
bounds and the weak Infineon RSA keys (:mod:`resource_server.tokens.rsa_keys`). The signature check
calls ``cryptography`` directly, with the padding and hash objects built once per key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from .rsa_keys import rsa_key_problem

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "KeySetError",
    "VerificationKey",
    "is_signing_key",
    "load_key",
    "refuse_secrets",
]

#: Public-key JWS algorithms (RFC 7518 §3, RFC 8037 §3.1) this package verifies.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_EC_CURVE_OF = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_EC_ALGORITHM_OF = {curve: alg for alg, curve in _EC_CURVE_OF.items()}
# RFC 7517 §9.2 / RFC 7518 §6: members that only a private or symmetric key has.
_KTY_OF = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}  # by the algorithm name's prefix
_SECRET_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class KeySetError(ValueError):
    """A JWK or JWK Set that cannot be used to verify tokens."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key and the one algorithm it verifies.

    ``verify(signing_input, signature)`` checks a JWS signature (RFC 7515 §5.2, RFC 7518 §3)
    over ``signing_input``: the check built for this key, called directly (no method between)."""

    kid: str | None
    algorithm: str
    key: Any
    verify: Callable[[bytes, bytes], bool]


# RFC 7518 §3.1: the hash each algorithm's number names.
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def _signature_check(algorithm: str, key: Any) -> Callable[[bytes, bytes], bool]:
    """``check(signing_input, signature)`` for one key, calling ``cryptography`` directly with
    the padding and hash objects built once here (PyJWT's ``Algorithm.verify`` builds them on
    every call, which costs about as much as the rest of the claims checks)."""
    if algorithm == "EdDSA":  # RFC 8037 §3.1: the signature is verified as is

        def check(data: bytes, signature: bytes) -> bool:
            try:
                key.verify(signature, data)
            except InvalidSignature:
                return False
            return True

        return check
    digest = _HASHES[algorithm[2:]]()
    if algorithm.startswith("ES"):
        return _ecdsa_check(key, digest)
    # RFC 7518 §3.3 (RSASSA-PKCS1-v1_5) and §3.5 (RSASSA-PSS: MGF1 with the same hash, a salt as
    # long as the hash output).
    scheme = (
        padding.PKCS1v15()
        if algorithm.startswith("RS")
        else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    )

    def check_rsa(data: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, data, scheme, digest)
        except InvalidSignature:
            return False
        return True

    return check_rsa


def _ecdsa_check(key: Any, digest: hashes.HashAlgorithm) -> Callable[[bytes, bytes], bool]:
    """RFC 7518 §3.4: the JWS signature is R || S, each exactly as long as the curve's order;
    ``cryptography`` takes DER, so it is re-encoded (any other length is refused here)."""
    half = (key.curve.key_size + 7) // 8
    ecdsa = ec.ECDSA(digest)
    der = _der_signature(half)

    def check(data: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * half:
            return False
        try:
            key.verify(der(signature), data, ecdsa)
        except InvalidSignature:
            return False
        return True

    return check


def _der_signature(half: int) -> Callable[[bytes], bytes]:
    """R || S (each ``half`` bytes) → the DER ``SEQUENCE`` of two ``INTEGER`` values that
    ``cryptography`` verifies (RFC 3279 §2.2.3).

    When neither R nor S starts with a zero byte (all but about 2 signatures in 256) and every
    length fits DER's one-byte form (P-256, P-384), the encoding is the two halves as they are
    behind headers made here, one per pair of top bits: an ``INTEGER`` is minimal and
    positive, so a set top bit takes a zero byte before it (X.690 §8.3.2). That costs 2,300 CPU
    instructions a signature, against 11,600 for two ``int.from_bytes`` and
    ``encode_dss_signature``, which encodes every other case."""

    def general(signature: bytes) -> bytes:
        r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        return encode_dss_signature(r, s)

    if 2 * (2 + half + 1) > 127:  # P-521: a long-form length
        return general
    heads: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    for r_top in (0, 1):
        for s_top in (0, 1):
            r_length, s_length = half + r_top, half + s_top
            sequence = bytes((0x30, 2 + r_length + 2 + s_length, 0x02, r_length)) + b"\0" * r_top
            heads[r_top, s_top] = (sequence, bytes((0x02, s_length)) + b"\0" * s_top)

    def encode(signature: bytes) -> bytes:
        r_first, s_first = signature[0], signature[half]
        if not (r_first and s_first):  # a zero byte to drop: not the minimal encoding as it is
            return general(signature)
        sequence, s_head = heads[r_first >> 7, s_first >> 7]
        return b"".join((sequence, signature[:half], s_head, signature[half:]))

    return encode


def _algorithm_of(jwk: Mapping[str, Any]) -> str:
    """The key's one algorithm: its ``alg`` member, else implied by ``kty``/``crv`` (RFC 7518 §6)."""
    alg, kty, crv = jwk.get("alg"), jwk.get("kty"), jwk.get("crv")
    if alg is not None:
        if not isinstance(alg, str):
            raise KeySetError("the JWK 'alg' member is not a string")
        if _KTY_OF.get(alg[:2]) != kty or (kty == "EC" and _EC_CURVE_OF.get(alg) != crv):
            raise KeySetError(f"the JWK says {alg} but it is a kty={kty!r} crv={crv!r} key")
        if kty == "OKP" and crv not in ("Ed25519", "Ed448"):
            raise KeySetError(f"the JWK says {alg} but its curve is {crv!r}")
        return alg
    if kty == "RSA":
        return "RS256"
    if kty == "EC" and crv in _EC_ALGORITHM_OF:
        return _EC_ALGORITHM_OF[crv]
    if kty == "OKP" and crv in ("Ed25519", "Ed448"):
        return "EdDSA"
    raise KeySetError(f"no public-key signature algorithm fits kty={kty!r} crv={crv!r}")


def load_key(jwk: object, algorithms: Collection[str]) -> VerificationKey:
    """Build a :class:`VerificationKey` from one JWK (RFC 7517 §4), refusing anything unsafe."""
    if not isinstance(jwk, Mapping):
        raise KeySetError("a JWK must be a JSON object")
    refuse_secrets(jwk)
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise KeySetError("the JWK 'kid' member must be a non-empty string")
    algorithm = _algorithm_of(jwk)
    if algorithm not in algorithms:
        raise KeySetError(f"key {kid!r} is for {algorithm}, which is not an accepted algorithm")
    try:
        parsed = PyJWK(dict(jwk), algorithm=algorithm)
    except (PyJWTError, ValueError, TypeError) as exc:
        raise KeySetError(f"key {kid!r} is not a valid {algorithm} public key: {exc}") from None
    if jwk.get("kty") == "RSA":
        problem = rsa_key_problem(parsed.key.public_numbers())
        if problem is not None:
            raise KeySetError(f"key {kid!r} {problem}")
    return VerificationKey(kid, algorithm, parsed.key, _signature_check(algorithm, parsed.key))


def refuse_secrets(jwk: Mapping[str, Any]) -> None:
    """``KeySetError`` for a symmetric key or one with private members (RFC 7518 §6)."""
    if jwk.get("kty") == "oct":
        raise KeySetError("symmetric (oct) keys are not accepted; tokens are verified with public keys")
    if any(member in jwk for member in _SECRET_MEMBERS):
        raise KeySetError("the JWK holds private key material; publish only the public key")


def is_signing_key(jwk: object) -> bool:
    """RFC 7517 §4.2/§4.3: skip keys published for encryption only."""
    if not isinstance(jwk, Mapping):
        return True  # let load_key report it
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        return False
    return not (isinstance(ops, list) and "verify" not in ops)
