"""Sender-constrained tokens (DPoP, RFC 9449): the proof a client signs for every request, and
stateless nonces every worker accepts (:class:`DPoPNonces`, from :mod:`resource_server.dpop_nonces`).

A DPoP-bound access token carries ``cnf.jkt``, the RFC 7638 thumbprint of the client's public
key. Each request then carries a fresh proof, a JWS signed with that key over the method, the
URL, the time and the token's hash; a stolen token is useless without the key. This module
checks the proof, every step of RFC 9449 §4.3, and that its key is the one the token's
``cnf.jkt`` names, which the guard (:mod:`resource_server.guard`) gives it.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .dpop_claims import (
    NONCE,
    URI,
    htu_form,
    is_jti,
    is_method,
    matches,
    normalize_htu,
    same_ascii,
)
from .dpop_jws import (
    THUMBPRINT_MEMBERS,
    InvalidDPoPProof,
    canonical_jwk,
    jwk_thumbprint,
    proof_header,
    proof_parts,
    thumbprint_of,
)
from .dpop_jws import (
    access_token_hash as access_token_hash,  # re-exported: the client's proofs use it
)
from .dpop_nonces import DPoPNonces
from .state import MemoryReplayCache, PerKeyLimit, ReplayCache, replayed
from .telemetry import metrics
from .tokens.errors import InvalidToken, VerificationUnavailable
from .tokens.jwk import ASYMMETRIC_ALGORITHMS, KeySetError, VerificationKey, load_key, refuse_secrets
from .tokens.jws import decoded_object
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
#: Header members that would point at a key elsewhere: a proof carries its key, nothing else.
_REFUSED_HEADERS = ("jku", "x5u", "x5c", "x5t", "x5t#S256", "kid", "crit")
#: Each cache of what proofs repeat (header segments, keys, request URLs) holds this many
#: entries, and is emptied when full: a client's next proof fills its entry again.
_CACHED = 1024
#: Access tokens whose ``ath`` is kept (each entry holds the token: about 1 KiB).
_CACHED_TOKENS = 256
_REPLAY_ENTRIES = 100_000  # the default replay cache's size
#: The share of a MemoryReplayCache one key may hold by default (1/10), and the bound per key
#: for any other cache (per worker).
_SHARE_OF_CACHE = 10
_PROOFS_PER_KEY = 10_000


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

    What a client's proofs repeat is checked once and then found, in bounded caches keyed on
    the exact input: a header segment (its key checked and loaded), a public key (by the
    thumbprint's input, RFC 7638 §3), a request URL (its normalized form), an access token (its
    ``ath``). Nothing a proof says alone (its ``jti``, ``iat``, ``nonce``, signature) is cached.
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
        # (jkt, key) by header segment, and by (the thumbprint's input, alg).
        self._headers: _Bounded[str, tuple[str, VerificationKey]] = _Bounded(_CACHED)
        self._keys: _Bounded[tuple[str, str], tuple[str, VerificationKey]] = _Bounded(_CACHED)
        self._urls: _Bounded[str, str] = _Bounded(_CACHED)  # request URL → its htu_form(), or ""
        self._hashes: _Bounded[str, str] = _Bounded(_CACHED_TOKENS)  # access token → its ath

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
        claims, key_jkt, nonce, fresh = self._checked(proof, method, url, access_token, jkt)
        return DPoPProof(key_jkt, claims["jti"], claims["iat"], claims["htm"], claims["htu"], nonce, fresh)

    def check(
        self, proof: str, *, method: str, url: str, access_token: str | None, jkt: str | None = None
    ) -> str | None:
        """:meth:`verify`, every check and refusal alike, for a server that needs only its
        outcome: the newer nonce to send back (:attr:`DPoPProof.fresh_nonce`), or None. No
        :class:`DPoPProof` is built (a frozen dataclass of seven fields: 11,000 CPU
        instructions, about 2 µs a request), except when :meth:`verify` is overridden (by a
        subclass, or on the instance, to add a check of its own): it is asked through it."""
        if type(self).verify is not DPoPVerifier.verify or "verify" in self.__dict__:
            return self.verify(proof, method=method, url=url, access_token=access_token, jkt=jkt).fresh_nonce
        return self._checked(proof, method, url, access_token, jkt)[3]

    def _checked(
        self, proof: str, method: str, url: str, access_token: str | None, bound_to: str | None
    ) -> tuple[dict[str, Any], str, str | None, str | None]:
        """(the proof's claims, its key's thumbprint, its nonce, a newer nonce or None)."""
        header_b64, signing_input, payload, signature = proof_parts(proof)
        # A client signs every proof with one key and so one header: checked once, then found.
        checked = self._headers.get(header_b64)
        if checked is None:
            checked = self._headers.keep(header_b64, self._key(proof_header(header_b64)))
        jkt, key = checked
        if not key.verify(signing_input, signature):
            raise InvalidDPoPProof("the DPoP proof signature is invalid")
        try:  # read and dropped: its member names need not be the shared strings
            claims = decoded_object(payload, "payload", kept=False)
        except InvalidToken:
            raise InvalidDPoPProof("the DPoP proof payload is not a JSON object") from None
        nonce, fresh = self._claims(claims, jkt, method, url, access_token, bound_to)
        return claims, jkt, nonce, fresh

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
        canonical = canonical_jwk(jwk)
        # Keyed on the thumbprint's input itself, not its hash: only this very key is found.
        loaded = self._keys.get((canonical, alg))
        if loaded is None:
            loaded = self._keys.keep((canonical, alg), self._load(jwk, canonical, alg))
        return loaded

    @staticmethod
    def _load(jwk: Mapping[str, Any], canonical: str, alg: str) -> tuple[str, VerificationKey]:
        public = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
        try:
            key = load_key({**public, "alg": alg}, {alg})  # alg must fit the key type and curve
        except KeySetError:
            raise InvalidDPoPProof("the DPoP proof's jwk is not a usable public key for its alg") from None
        return thumbprint_of(canonical), key

    def _claims(
        self,
        claims: Mapping[str, Any],
        jkt: str,
        method: str,
        url: str,
        access_token: str | None,
        bound_to: str | None,
    ) -> tuple[str | None, str | None]:
        """Every claim checked (RFC 9449 §4.3), then the proof recorded: (its nonce, a newer
        nonce or None)."""
        now = self._clock()
        jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
        if not is_jti(jti):
            raise InvalidDPoPProof("the DPoP proof jti is missing or malformed")
        if not is_method(htm) or htm != method:
            raise InvalidDPoPProof("the DPoP proof is for another HTTP method")
        if not self._same_url(htu, url):
            raise InvalidDPoPProof("the DPoP proof is for another URL")
        if type(iat) is not int:  # RFC 7519 §2 NumericDate; bool, an int subclass, must not pass
            raise InvalidDPoPProof("the DPoP proof iat is missing or not an integer")
        if iat > now + self.leeway:
            raise InvalidDPoPProof("the DPoP proof was issued in the future")
        if iat < now - self.max_age:
            raise InvalidDPoPProof("the DPoP proof is too old")
        if access_token is not None:
            ath = claims.get("ath")
            # ASCII, compare_digest cannot raise; equal to the hash, ath has its grammar
            # (SHA256_B64URL) too, which need not be matched first (3,200 CPU instructions).
            if not (
                isinstance(ath, str) and ath.isascii() and hmac.compare_digest(ath, self._ath(access_token))
            ):
                raise InvalidDPoPProof("the DPoP proof is not bound to this access token (ath)")
        nonce, fresh = claims.get("nonce"), None
        if nonce is not None or self.nonces is not None:  # else nothing to check
            nonce, fresh = self._nonce(nonce, now)
        if bound_to is not None and not same_ascii(jkt, bound_to):
            raise DPoPKeyMismatch("the token is bound to another key")
        # Last, so a proof refused for another reason does not burn its jti.
        self._record(jkt, jti, iat + self.max_age + self.leeway)
        return nonce, fresh

    def _same_url(self, htu: object, url: str) -> bool:
        """Whether ``htu`` is a URI naming the request URL ``url`` (RFC 9449 §4.3): equal
        strings, or equal after RFC 3986 normalization. The request URL's own checks (its
        characters, an http(s) URL) and normalization are done once per URL, and an ``htu``
        equal to it has its characters: 15,400 CPU instructions a proof when both were checked
        and parsed each time, 1,300 now."""
        expected = self._urls.get(url)
        if expected is None:  # "" for a URL no htu can name
            expected = self._urls.keep(url, htu_form(url) if matches(url, URI) else "")
        if not expected:
            return False
        return htu == url or (matches(htu, URI) and htu_form(htu) == expected)

    def _ath(self, access_token: str) -> str:
        """RFC 9449 §4.2 ``ath`` for ``access_token``, found again for the same token: every
        proof of a warm token carries the same one (hashing a 500-byte token: 26,000 CPU
        instructions; finding its hash: 900)."""
        found = self._hashes.get(access_token)
        if found is None:
            found = self._hashes.keep(access_token, access_token_hash(access_token))
        return found

    def _record(self, jkt: str, jti: str, exp: int) -> None:
        """Remember the proof until ``exp`` (RFC 9449 §11.1), in this key's share of the cache;
        :class:`InvalidDPoPProof` if it was seen before."""
        try:
            self._per_key.take(jkt, exp)
        except VerificationUnavailable:
            metrics.replay_checked("dpop", "full")
            raise
        try:
            # Through replayed() whatever the cache: even the memory one reads a clock that can
            # fail, and a cache that raised has not answered (503), its place given back.
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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Bounded(dict[K, V]):
    """A dict of what a client's proofs repeat, keyed on the exact input, holding at most
    ``size`` entries: emptied when full, a client's next proof fills its entry again. Read as a
    dict (``get``, no lock: one C call); :meth:`keep` adds, under a lock."""

    __slots__ = ("_lock", "size")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._lock = threading.Lock()

    def keep(self, key: K, value: V) -> V:
        """``value``, kept under ``key``."""
        with self._lock:
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value
