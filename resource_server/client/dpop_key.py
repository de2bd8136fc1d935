"""DPoP keys for clients (RFC 9449 §4): generated or loaded, and the proofs they sign."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from ..dpop import access_token_hash, jwk_thumbprint
from ..tokens.keys import ASYMMETRIC_ALGORITHMS
from ..tokens.rsa_keys import MIN_RSA_BITS, rsa_key_problem

__all__ = ["DPoPKey"]


_EC_ALGORITHM_OF = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
#: RFC 7638 §3.2: the members of a public JWK that a proof's ``jwk`` header carries, and nothing more.
_PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NOT_A_DPOP_KEY = "a DPoP key must be an EC, RSA or Ed25519/Ed448 private key"
_PrivateKey = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)


class DPoPKey:
    """A client's DPoP key pair: signs the proof of each request (RFC 9449 §4.2).

    ``DPoPKey.generate("ES256")``, or load one with :meth:`from_jwk` / :meth:`from_pem` (the
    algorithm is implied by the key: ES256/384/512 by the curve, EdDSA for Ed25519/Ed448, RS256
    for RSA unless ``alg`` says a PS or another RS algorithm). RSA keys are those a resource
    server verifies with (RFC 7518 §3.3): a modulus of 2048 to 8192 bits, an odd public exponent
    from 3 to 2**32 - 1, not a weak Infineon key (ROCA).
    ``jkt`` is the RFC 7638 thumbprint an authorization server puts in the token's ``cnf.jkt``,
    computed by the same function the resource server uses. ``clock`` gives the proofs' ``iat``.

    A token bound to this key is useless without it, and with it: keep the key as secret as a
    refresh token, and :meth:`private_pem` it somewhere safe if the tokens must outlive the process.
    """

    __slots__ = ("_alg", "_clock", "_jkt", "_key", "_public_jwk")

    def __init__(
        self, private_key: _PrivateKey, alg: str | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._alg = _check_algorithm(private_key, alg)
        self._key = private_key
        self._clock = clock or time.time
        full = _ALGORITHM_CLASS[self._alg[:2]].to_jwk(private_key.public_key(), as_dict=True)
        self._public_jwk = {name: full[name] for name in _PUBLIC_MEMBERS[full["kty"]]}
        self._jkt = jwk_thumbprint(self._public_jwk)

    @classmethod
    def generate(cls, alg: str = "ES256", *, clock: Callable[[], float] | None = None) -> DPoPKey:
        """A new key for ``alg`` (RSA keys: 2048 bits; Ed25519 for EdDSA)."""
        if alg in _EC_CURVES:
            key: _PrivateKey = ec.generate_private_key(_EC_CURVES[alg]())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        elif alg in ASYMMETRIC_ALGORITHMS:
            key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        else:
            raise ValueError(
                f"unsupported DPoP algorithm {alg!r}; use one of {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return cls(key, alg, clock=clock)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any], alg: str | None = None, *, clock: Callable[[], float] | None = None
    ) -> DPoPKey:
        """Load a private JWK (RFC 7517; ``d`` and, for RSA, the other private members). The
        algorithm is ``alg``, else the JWK's ``alg`` member, else implied by the key."""
        if not isinstance(jwk, Mapping) or "d" not in jwk:
            raise ValueError("a DPoP key JWK must be a private key (with 'd')")
        member = jwk.get("alg")
        if alg is not None and member is not None and member != alg:
            raise ValueError(f"the JWK is for {member}, not {alg}")
        try:
            # Without its alg: whether the algorithm fits the key is checked below, with a clearer word.
            key = jwt.PyJWK({name: value for name, value in jwk.items() if name != "alg"}).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a usable private JWK: {exc}") from None
        return cls(key, alg or member, clock=clock)

    @classmethod
    def from_pem(
        cls,
        pem: bytes,
        password: bytes | None = None,
        *,
        alg: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> DPoPKey:
        """Load a PEM private key (PKCS#8, or the traditional EC/RSA forms), encrypted with
        ``password`` or not."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a usable PEM private key: {exc}") from None
        if not isinstance(key, _PrivateKey):  # a DSA, DH or X25519 key: no JWS algorithm signs with it
            raise ValueError(_NOT_A_DPOP_KEY)
        return cls(key, alg, clock=clock)

    @property
    def alg(self) -> str:
        """The JWS algorithm of every proof (RFC 7518 §3.1)."""
        return self._alg

    @property
    def jkt(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key, base64url: the token's ``cnf.jkt``."""
        return self._jkt

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as the proof's ``jwk`` header carries it: the RFC 7638 members only."""
        return dict(self._public_jwk)

    def private_jwk(self) -> dict[str, Any]:
        """The private key as a JWK (with ``alg``), for :meth:`from_jwk`. A secret."""
        full = _ALGORITHM_CLASS[self.alg[:2]].to_jwk(self._key, as_dict=True)
        return {**full, "alg": self.alg}

    def private_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when ``password`` is given, for :meth:`from_pem`."""
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def proof(
        self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None
    ) -> str:
        """A DPoP proof (RFC 9449 §4.2) for one request: ``typ`` ``dpop+jwt``, the public key in
        ``jwk``; a random ``jti``, ``htm``, ``htu`` (the URL without query and fragment), ``iat``
        from the clock, ``ath`` (§4.2: base64url SHA-256 of the token) when ``access_token`` is
        given and the server's ``nonce`` (§9) when there is one. Never reuse a proof."""
        if not isinstance(method, str) or not method:
            raise ValueError("a DPoP proof needs the request's method")
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method,
            "htu": _htu(url),
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": "dpop+jwt", "jwk": self._public_jwk}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.jkt!r})"


_EC_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_ALGORITHM_CLASS: dict[str, type[Algorithm]] = {
    "ES": ECAlgorithm,
    "RS": RSAAlgorithm,
    "PS": RSAAlgorithm,
    "Ed": OKPAlgorithm,
}


def _check_algorithm(key: object, alg: str | None) -> str:
    """The algorithm ``key`` signs with: ``alg`` if it fits the key, else the one the key implies.
    ``ValueError`` for a public, symmetric or too small key, or an algorithm that does not fit."""
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"unsupported DPoP algorithm {alg!r}; use one of {sorted(ASYMMETRIC_ALGORITHMS)}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        implied = _EC_ALGORITHM_OF.get(key.curve.name)
        if implied is None:
            raise ValueError(f"the EC curve {key.curve.name} has no JWS algorithm; use P-256, P-384 or P-521")
        allowed: tuple[str, ...] = (implied,)
    elif isinstance(key, rsa.RSAPrivateKey):
        # The resource server's own rule (resource_server.tokens.rsa_keys): a key it would refuse
        # makes proofs no server of this package accepts, so it is refused here, at load time.
        problem = rsa_key_problem(key.public_key().public_numbers())
        if problem is not None:
            raise ValueError(f"this RSA DPoP key {problem}")
        implied = "RS256"  # the one every JOSE implementation has; PS256 when asked for
        allowed = tuple(sorted(a for a in ASYMMETRIC_ALGORITHMS if a[:2] in ("RS", "PS")))
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        implied, allowed = "EdDSA", ("EdDSA",)
    else:
        raise ValueError(_NOT_A_DPOP_KEY)
    if alg is not None and alg not in allowed:
        raise ValueError(f"{alg} does not fit this key; it signs with {' or '.join(allowed)}")
    return alg or implied


def _htu(url: str) -> str:
    """RFC 9449 §4.2 ``htu``: the target URI without query and fragment (and without userinfo,
    which is never sent); an empty path is ``/``, the path requested (RFC 9110 §7.1)."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("a DPoP proof needs the request's absolute http(s) URL")
    return urlunsplit((scheme, parts.netloc.rpartition("@")[2], parts.path or "/", "", ""))
