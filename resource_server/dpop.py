"""Sender-constrained tokens (DPoP, RFC 9449): the proof a client signs for every request, and
stateless nonces every worker accepts (:class:`DPoPNonces`, from :mod:`resource_server.dpop_nonces`).

A DPoP-bound access token carries ``cnf.jkt``, the RFC 7638 thumbprint of the client's public
key. Each request then carries a fresh proof, a JWS signed with that key over the method, the
URL, the time and the token's hash; a stolen token is useless without the key. This module
checks the proof, every step of RFC 9449 §4.3, and that its key is the one the token's
``cnf.jkt`` names, which the guard (:mod:`resource_server.guard`) gives it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .dpop_claims import (
    METHOD,
    NONCE,
    SHA256_B64URL,
    is_jti,
    matches,
    normalize_htu,
    same_ascii,
    same_url,
)
from .dpop_nonces import DPoPNonces
from .state import MemoryReplayCache, PerKeyLimit, ReplayCache, replayed
from .telemetry import metrics
from .tokens.errors import InvalidToken, VerificationUnavailable
from .tokens.jwk import ASYMMETRIC_ALGORITHMS, KeySetError, VerificationKey, load_key, refuse_secrets
from .tokens.jws import b64decode, b64encode, integer_claim, json_object, split_compact
from .tokens.verified import VerifiedToken

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPKeyMismatch",
    "DPoPNonceRequired",
    "DPoPNonces",
    "DPoPProof",
    "DPoPRequest",
    "DPoPVerifier",
    "InvalidDPoPProof",
    "ReplayedDPoPProof",
    "bound_key",
    "dpop_request",
    "jwk_thumbprint",
    "normalize_htu",
]

#: The default allow-list: asymmetric algorithms clients commonly hold keys for.
DPOP_ALGORITHMS = ("ES256", "EdDSA", "PS256", "RS256")
#: A proof is a few hundred bytes (a P-256 key) to about 1.5 KiB (RSA-4096); more is refused.
MAX_PROOF_BYTES = 4096
#: RFC 7638 §3.2: the members of each key type that its thumbprint covers.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
#: Header members that would point at a key elsewhere: a proof carries its key, nothing else.
_REFUSED_HEADERS = ("jku", "x5u", "x5c", "x5t", "x5t#S256", "kid", "crit")
_CACHED_KEYS = 1024
_REPLAY_ENTRIES = 100_000  # the default replay cache's size
#: The share of a MemoryReplayCache one key may hold by default (1/10), and the bound per key
#: for any other cache (per worker).
_SHARE_OF_CACHE = 10
_PROOFS_PER_KEY = 10_000


class InvalidDPoPProof(InvalidToken):
    """The ``DPoP`` proof cannot be accepted: ``401`` with ``error="invalid_dpop_proof"``
    (RFC 9449 §7.1). ``description`` is safe to send; it never holds the proof."""


class ReplayedDPoPProof(InvalidDPoPProof):
    """The proof was accepted before (RFC 9449 §11.1): ``401 invalid_dpop_proof``, and a security
    event (``dpop_proof_replayed``): a request was captured and sent again."""


class DPoPKeyMismatch(InvalidToken):
    """The proof is good but signed by a key the token is not bound to (RFC 9449 §7.1): the token
    is the problem, ``401`` with ``error="invalid_token"``."""


class DPoPNonceRequired(InvalidDPoPProof):
    """The proof lacks the server's current nonce, or holds a stale one (RFC 9449 §9): ``401``
    with ``error="use_dpop_nonce"`` and ``nonce`` in a ``DPoP-Nonce`` header."""

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified proof: the key's thumbprint (``jkt``, to compare with the token's ``cnf.jkt``)
    and what the proof says. ``fresh_nonce`` is a newer nonce to send back, when there is one."""

    jkt: str
    jti: str
    iat: int
    htm: str
    htu: str
    nonce: str | None = None
    fresh_nonce: str | None = None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: base64url(SHA-256) of the key's required members, sorted, without
    whitespace. :class:`InvalidDPoPProof` for a key type or member that is not a public key's."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        raise InvalidDPoPProof("the proof's jwk is not a supported public key")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url(SHA-256(the ASCII access token))."""
    return b64encode(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


@dataclass(frozen=True, slots=True)
class DPoPRequest:
    """What a request's proof is checked against (RFC 9449 §4.3), as an adapter found it: the
    ``DPoP`` header value as the server gave it (servers join repeated headers with commas, which
    a JWS never holds), the method, and the request URL, computed only when a proof is checked."""

    proof: str | None
    method: str
    url: Callable[[], str]


def dpop_request(
    authorization: str | None, proof: str | None, method: str, url: Callable[[], str]
) -> DPoPRequest | None:
    """What a request's proof is checked against, when its ``Authorization`` uses the DPoP
    scheme (RFC 9449 §7.1); None otherwise, so bearer requests build nothing for DPoP."""
    if not authorization or authorization[:4].lower() != "dpop":
        return None
    return DPoPRequest(proof, method, url)


def bound_key(token: VerifiedToken) -> str | None:
    """The thumbprint a token is bound to (``cnf.jkt``, RFC 9449 §6.1), or None for a bearer
    token: :attr:`VerifiedToken.jkt`, read strictly once, when the token was verified (a ``cnf``
    this server cannot enforce never gets this far)."""
    return token.jkt


class DPoPVerifier:
    """Verifies DPoP proofs (RFC 9449 §4.3), every step:

    one well-formed compact JWS, at most 4 KiB; ``typ`` exactly ``dpop+jwt``; ``alg`` from the
    allow-list (asymmetric only: never ``none`` or a MAC); the public key in the ``jwk`` header,
    nothing private in it and no ``jku``/``x5c``/``kid``/``crit`` beside it; the signature with
    that key; ``jti`` 1 to 256 printable characters; ``htm`` an HTTP method equal to the
    request's; ``htu`` a URI equal to the request URL (without query and fragment, after RFC 3986
    normalization); ``iat`` at most ``max_age`` seconds in the past and ``leeway`` in the future;
    ``ath`` 43 base64url characters equal to the access token's hash; a ``nonce``, when there is
    one, of RFC 9449 §8.1's characters, and the server's when ``nonces`` is given; the key the
    token is bound to, when :meth:`verify` is told it; and last, ``jti`` unseen for this key.
    Every value is checked for type and characters before it is compared or stored.

    Replay (RFC 9449 §11.1): an accepted proof's ``jkt:jti`` is kept in ``replay_cache`` until
    the proof could no longer be accepted (``iat + max_age + leeway``, 65 s by default). By
    default that is a fresh :class:`~resource_server.state.MemoryReplayCache` of 100,000
    entries, never "no replay check"; full, it answers 503 rather than forget a proof; with
    several workers, give a :class:`~resource_server.state.RedisReplayCache`. One key (and so one
    token, which is bound to one key) holds at most ``max_proofs_per_key`` entries at once
    (:class:`~resource_server.state.PerKeyLimit`; by default a tenth of a ``MemoryReplayCache``,
    10,000 per worker with any other cache): past that its proofs get 503 with
    ``Retry-After`` and every other key's are still accepted, so one client cannot fill the
    cache and lock the others out.

    ``max_age`` is 60 s by default. RFC 9449 §11.1 asks a server to accept a proof only for a
    brief period after its creation, seconds or minutes, and to remember its ``jti`` for as long,
    so this one number is both how long a captured proof can be replayed and how much the
    replay cache must hold. A client signs each proof just before its request, so the window
    needs room only for clock skew: a minute covers clocks kept by NTP, and holds a fifth of
    what 300 s would (100,000 entries then hold about 1,500 proofs a second, sustained, per
    worker).

    Parsed keys are cached by thumbprint (bounded), so a client's key is loaded once.
    """

    def __init__(
        self,
        *,
        algorithms: Collection[str] = DPOP_ALGORITHMS,
        max_age: int = 60,
        leeway: int = 5,
        replay_cache: ReplayCache | None = None,
        max_proofs_per_key: int | None = None,
        nonces: DPoPNonces | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(algorithms, str) or not algorithms:
            raise ValueError("algorithms must be a non-empty collection of names")
        unsupported = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if unsupported:
            raise ValueError(f"unsupported DPoP algorithms {sorted(unsupported)}; use public-key algorithms")
        for name, value in (("max_age", max_age), ("leeway", leeway)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer number of seconds")
        self.algorithms = tuple(dict.fromkeys(algorithms))
        self.max_age = max_age
        self.leeway = leeway
        self.nonces = nonces
        self._clock = clock or time.time
        # Every accepted proof stays max_age + leeway (65 s): 100,000 entries (about 25 MB) hold
        # about 1,500 proofs a second, sustained, per worker.
        self.replay_cache: ReplayCache = (
            replay_cache
            if replay_cache is not None
            else MemoryReplayCache(max_entries=_REPLAY_ENTRIES, clock=self._clock)
        )
        if max_proofs_per_key is None:
            cache = self.replay_cache
            max_proofs_per_key = (
                max(1, cache.max_entries // _SHARE_OF_CACHE)
                if isinstance(cache, MemoryReplayCache)
                else _PROOFS_PER_KEY
            )
        try:
            self._per_key = PerKeyLimit(max_proofs_per_key, self._clock)
        except ValueError:
            raise ValueError("max_proofs_per_key must be a positive integer") from None
        self.max_proofs_per_key = max_proofs_per_key
        self._keys: dict[tuple[str, str], VerificationKey] = {}  # (thumbprint, alg) → key
        self._headers: dict[str, tuple[str, VerificationKey]] = {}  # header segment → (jkt, key)
        self._keys_lock = threading.Lock()

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def verify(
        self, proof: str, *, method: str, url: str, access_token: str | None, jkt: str | None = None
    ) -> DPoPProof:
        """Check ``proof`` for a request with ``method`` to ``url`` carrying ``access_token``
        (its hash must be the proof's ``ath``); :class:`InvalidDPoPProof` otherwise. With ``jkt``
        (the token's ``cnf.jkt``, RFC 9449 §6), a proof by another key is
        :class:`DPoPKeyMismatch`, found before its ``jti`` is recorded: a token's holder cannot
        fill the replay cache with proofs of keys the token is not bound to.
        :class:`~resource_server.VerificationUnavailable` when the replay cache cannot answer,
        or this key already has ``max_proofs_per_key`` proofs in it."""
        if not isinstance(proof, str) or not proof:
            raise InvalidDPoPProof("the DPoP proof is missing")
        if len(proof) > MAX_PROOF_BYTES:
            raise InvalidDPoPProof("the DPoP proof is too large")
        try:
            header_b64, payload_b64, signature_b64 = split_compact(proof)
        except InvalidToken:
            raise InvalidDPoPProof("the DPoP proof is not a compact-serialized JWS") from None
        # A client signs every proof with one key and so one header: checked once, then found.
        checked = self._headers.get(header_b64)
        if checked is None:
            checked = self._key(_header(header_b64))
            with self._keys_lock:
                if len(self._headers) >= _CACHED_KEYS:
                    self._headers.clear()
                self._headers[header_b64] = checked
        key_jkt, key = checked
        if not key.verify(f"{header_b64}.{payload_b64}".encode("ascii"), _signature(signature_b64)):
            raise InvalidDPoPProof("the DPoP proof signature is invalid")
        try:
            claims = json_object(payload_b64, "payload")
        except InvalidToken:
            raise InvalidDPoPProof("the DPoP proof payload is not a JSON object") from None
        return self._claims(claims, key_jkt, method, url, access_token, jkt)

    def _key(self, header: Mapping[str, Any]) -> tuple[str, VerificationKey]:
        if header.get("typ") != "dpop+jwt":  # RFC 9449 §4.2: explicit typing, exactly
            raise InvalidDPoPProof('the DPoP proof typ is not "dpop+jwt"')
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidDPoPProof("the DPoP proof is not signed with an accepted algorithm")
        if any(name in header for name in _REFUSED_HEADERS):
            raise InvalidDPoPProof("the DPoP proof header may carry its key in jwk only")
        jwk = header.get("jwk")
        if not isinstance(jwk, Mapping):
            raise InvalidDPoPProof("the DPoP proof has no jwk header")
        if jwk.get("alg", alg) != alg:
            raise InvalidDPoPProof("the DPoP proof's jwk is for another algorithm")
        try:
            # Private members are refused, not ignored, whether or not the public key is known:
            # a client that sends its private key has leaked it, and its proofs prove nothing.
            refuse_secrets(jwk)
        except KeySetError:
            raise InvalidDPoPProof("the DPoP proof's jwk holds private key material") from None
        jkt = jwk_thumbprint(jwk)
        key = self._keys.get((jkt, alg))
        if key is None:
            key = self._load(jwk, jkt, alg)
        return jkt, key

    def _load(self, jwk: Mapping[str, Any], jkt: str, alg: str) -> VerificationKey:
        public = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
        try:
            key = load_key({**public, "alg": alg}, {alg})  # alg must fit the key type and curve
        except KeySetError:
            raise InvalidDPoPProof("the DPoP proof's jwk is not a usable public key for its alg") from None
        with self._keys_lock:
            if len(self._keys) >= _CACHED_KEYS:
                self._keys.clear()
            self._keys[(jkt, alg)] = key
        return key

    def _claims(
        self,
        claims: Mapping[str, Any],
        jkt: str,
        method: str,
        url: str,
        access_token: str | None,
        bound_to: str | None,
    ) -> DPoPProof:
        now = self._clock()
        jti, htm, htu = claims.get("jti"), claims.get("htm"), claims.get("htu")
        if not is_jti(jti):
            raise InvalidDPoPProof("the DPoP proof jti is missing or malformed")
        if not matches(htm, METHOD) or htm != method:
            raise InvalidDPoPProof("the DPoP proof is for another HTTP method")
        if not same_url(htu, url):
            raise InvalidDPoPProof("the DPoP proof is for another URL")
        try:
            iat = integer_claim(claims, "iat", required=True)
        except InvalidToken:
            raise InvalidDPoPProof("the DPoP proof iat is missing or not an integer") from None
        if iat > now + self.leeway:
            raise InvalidDPoPProof("the DPoP proof was issued in the future")
        if iat < now - self.max_age:
            raise InvalidDPoPProof("the DPoP proof is too old")
        if access_token is not None:
            ath = claims.get("ath")
            if not matches(ath, SHA256_B64URL) or not same_ascii(ath, access_token_hash(access_token)):
                raise InvalidDPoPProof("the DPoP proof is not bound to this access token (ath)")
        nonce, fresh = self._nonce(claims.get("nonce"), now)
        if bound_to is not None and not same_ascii(jkt, bound_to):
            raise DPoPKeyMismatch("the token is bound to another key")
        # Last, so a proof refused for another reason does not burn its jti.
        self._record(jkt, jti, iat + self.max_age + self.leeway)
        return DPoPProof(jkt=jkt, jti=jti, iat=iat, htm=htm, htu=htu, nonce=nonce, fresh_nonce=fresh)

    def _record(self, jkt: str, jti: str, exp: int) -> None:
        """Remember the proof until ``exp`` (RFC 9449 §11.1), in this key's share of the cache;
        :class:`InvalidDPoPProof` if it was seen before."""
        try:
            self._per_key.take(jkt, exp)
        except VerificationUnavailable:
            metrics.replay_checked("dpop", "full")
            raise
        try:
            seen = replayed(self.replay_cache, f"{jkt}:{jti}", exp)
        except VerificationUnavailable as exc:
            self._per_key.give_back(jkt, exp)  # nothing recorded: the place is not held
            metrics.replay_checked("dpop", "full" if exc.cause == "replay_full" else "unavailable")
            raise
        if seen:
            self._per_key.give_back(jkt, exp)
            metrics.replay_checked("dpop", "replay")
            raise ReplayedDPoPProof("the DPoP proof has been used before")
        metrics.replay_checked("dpop", "fresh")

    def _nonce(self, nonce: object, now: float) -> tuple[str | None, str | None]:
        """(the proof's nonce, a newer one to send back or None)."""
        if nonce is None:
            checked = None
        elif matches(nonce, NONCE):
            checked = nonce
        else:
            raise InvalidDPoPProof("the DPoP proof nonce is malformed")
        if self.nonces is None:
            return checked, None
        current = self.nonces.current(now)
        if checked is None or not self.nonces.accepts(checked, now):
            raise DPoPNonceRequired("the DPoP proof must carry the server's current nonce", current)
        return checked, (None if self.nonces.is_current(checked, now) else current)


def _header(segment: str) -> dict[str, Any]:
    try:
        return json_object(segment, "header")
    except InvalidToken as exc:
        raise InvalidDPoPProof(exc.description.replace("the token", "the DPoP proof")) from None


def _signature(segment: str) -> bytes:
    try:
        return b64decode(segment)
    except InvalidToken:
        raise InvalidDPoPProof("the DPoP proof is not valid base64url") from None
