"""A DPoP proof as a JWS (RFC 9449 §4.2): its three parts, its header, and the public key it
carries, named by its RFC 7638 thumbprint. Everything here reads bounded input before the
proof's signature is checked (by :class:`~resource_server.dpop.DPoPVerifier`, which re-exports
:class:`InvalidDPoPProof` and :func:`jwk_thumbprint`); every refusal is
:class:`InvalidDPoPProof`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .tokens.errors import InvalidToken
from .tokens.jws import b64decode, b64encode, json_object

__all__ = ["InvalidDPoPProof", "access_token_hash", "jwk_thumbprint"]

#: A proof is a few hundred bytes (a P-256 key) to about 1.5 KiB (RSA-4096); more is refused.
MAX_PROOF_BYTES = 4096
#: RFC 7638 §3.2: the members of each key type that its thumbprint covers.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


class InvalidDPoPProof(InvalidToken):
    """The ``DPoP`` proof cannot be accepted: ``401`` with ``error="invalid_dpop_proof"``
    (RFC 9449 §7.1). ``description`` is safe to send; it never holds the proof."""


def proof_parts(proof: object) -> tuple[str, bytes, bytes, bytes]:
    """(the header segment, the signing input, the payload, the signature) of a compact JWS
    (RFC 7515 §7.1) of at most 4 KiB: three non-empty segments of base64url without padding
    (§2), the last two decoded. Each character is checked by the strict decoding of its segment
    (the header's when it is first seen: a cached header is the very text checked then), and
    ``=`` here, as strict decoding takes padding: 25,000 CPU instructions a proof, most of them
    decoding, where a regular expression over the whole proof made it 45,000."""
    if not isinstance(proof, str) or not proof:
        raise InvalidDPoPProof("the DPoP proof is missing")
    if len(proof) > MAX_PROOF_BYTES:
        raise InvalidDPoPProof("the DPoP proof is too large")
    header, _, rest = proof.partition(".")
    payload, _, signature = rest.partition(".")
    if not (header and payload and signature) or "." in signature or "=" in proof or not proof.isascii():
        raise InvalidDPoPProof("the DPoP proof is not a compact-serialized JWS")
    signing_input = proof[: len(header) + 1 + len(payload)].encode("ascii")
    try:
        return header, signing_input, b64decode(payload), b64decode(signature)
    except InvalidToken:
        raise InvalidDPoPProof("the DPoP proof is not valid base64url") from None


def proof_header(segment: str) -> dict[str, Any]:
    """The header segment's JSON object, strictly (RFC 7515 §4)."""
    try:
        return json_object(segment, "header")
    except InvalidToken as exc:
        raise InvalidDPoPProof(exc.description.replace("the token", "the DPoP proof")) from None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: base64url(SHA-256) of the key's required members, sorted, without
    whitespace. :class:`InvalidDPoPProof` for a key type or member that is not a public key's."""
    return thumbprint_of(canonical_jwk(jwk))


def canonical_jwk(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3.1-3.3: the key's required members (and nothing else), sorted, as JSON without
    whitespace: the thumbprint's input, and so the same text for the same public key."""
    kty = jwk.get("kty")
    members = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        raise InvalidDPoPProof("the proof's jwk is not a supported public key")
    return json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)


def thumbprint_of(canonical: str) -> str:
    """The RFC 7638 thumbprint of a key given by :func:`canonical_jwk`."""
    return b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url(SHA-256(the ASCII access token))."""
    return b64encode(hashlib.sha256(access_token.encode("ascii", "replace")).digest())
