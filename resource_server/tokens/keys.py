"""Verification keys: a JWK Set held in memory, or fetched from a ``jwks_uri`` and cached.

Every key carries exactly one algorithm, decided from the key itself (its ``alg`` member, or its
type and curve: :mod:`~resource_server.tokens.jwk`, which builds each key), so a token's header
can never choose how it is verified (RFC 8725 §3.1). Symmetric (``oct``) keys and private key
material are refused: a resource server that verifies with public keys has no business holding
either. So are RSA keys whose size or public exponent
is out of bounds and the weak Infineon RSA keys (ROCA, CVE-2017-15361), whose private keys can
be computed from the public ones (:mod:`resource_server.tokens.rsa_keys`).

Which protections are ours and which are PyJWT's (checked against PyJWT 2.15's source):

- Ours, here, in :mod:`~resource_server.tokens.jwk` and in :mod:`~resource_server.tokens.rsa_keys`:
  the algorithm taken from the key; refusing ``oct`` keys, private members, RSA moduli outside 2048 to 8192 bits, public exponents
  other than odd ones in [3, 2**32) (PyJWT only warns about short RSA keys, in ``jwt.encode`` and
  ``jwt.decode``, and bounds neither), and ROCA keys; skipping encryption keys; refusing (configured) or dropping (fetched)
  keys that share a ``kid``; and the cache around fetching (:class:`RemoteKeySet`): ``max_age``,
  a bounded, single-flight refetch on an unknown ``kid``, the last good set served through
  failures, ``Cache-Control: max-age`` honoured within [60 s, 24 h], and a clock that steps
  back. The fetch itself is :mod:`resource_server.tokens.http` (``urllib3``): https only (http
  on loopback), no redirects, a timeout, at most 256 KiB, strict JSON. PyJWT's ``PyJWKClient``
  is not used: it exposes no response headers and parses bodies of any size.
- Ours, in :mod:`resource_server.tokens.jwt`: the header ``alg`` must equal the key's algorithm, and
  ``crit``, ``typ``, the size and the JSON are checked before any key is used; ``jwt.decode`` is
  never called, so its own checks (``crit`` since 2.12) are not what protects these tokens.
- ``cryptography``'s: the signature primitives, called directly with padding and hash objects
  built once per key (RFC 7518 §3; the raw R || S of an ECDSA signature is length-checked in
  :mod:`~resource_server.tokens.jwk` and re-encoded as DER, as PyJWT does).
- PyJWT's: the HMAC-SHA256 of :mod:`resource_server.tokens.jws` for the tokens this server mints
  itself, and building key objects from JWKs (``PyJWK``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ..telemetry import audit, metrics, spans
from .errors import VerificationUnavailable, WouldWait, loggable
from .http import FetchError, JSONFetcher, check_uri

# One key's rules are in .jwk; these names are imported from here too, as before.
from .jwk import ASYMMETRIC_ALGORITHMS, KeySetError, VerificationKey, is_signing_key
from .jwk import load_key as load_key
from .jwk import refuse_secrets as refuse_secrets

__all__ = ["ASYMMETRIC_ALGORITHMS", "KeySet", "KeySetError", "RemoteKeySet", "VerificationKey"]

log = logging.getLogger(__name__)


class KeySet:
    """An immutable JWK Set (RFC 7517 §5), indexed by ``kid``."""

    __slots__ = ("_by_kid", "_only")

    def __init__(self, keys: Collection[VerificationKey]) -> None:
        by_kid: dict[str, VerificationKey] = {}
        for key in keys:
            if key.kid is not None:
                if key.kid in by_kid:
                    raise KeySetError(f"two keys share the kid {key.kid!r}")
                by_kid[key.kid] = key
        self._by_kid = by_kid
        # A token without a kid is only acceptable when there is no choice to make.
        self._only = next(iter(keys)) if len(keys) == 1 else None

    @classmethod
    def from_jwks(cls, jwks: object, algorithms: Collection[str], *, strict: bool = True) -> KeySet:
        """Load a JWK Set. ``strict`` refuses the whole set over one bad key (configuration);
        otherwise unusable keys are logged and skipped (a remote set may list keys for others)."""
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise KeySetError('a JWK Set must be a JSON object with a "keys" array')
        loaded: list[VerificationKey] = []
        for jwk in jwks["keys"]:
            try:
                if not is_signing_key(jwk):
                    refuse_secrets(jwk)  # a secret is a leak to fix, whatever "use" it claims
                    continue
                loaded.append(load_key(jwk, algorithms))
            except KeySetError as exc:
                if strict:
                    raise
                log.warning("skipping a key of the fetched JWK Set: %s", exc)
        if not loaded:
            raise KeySetError("the JWK Set holds no usable signing key")
        if not strict:
            loaded = _drop_ambiguous(loaded)
        return cls(loaded)

    def find(
        self, kid: str | None, issued_at: int | None = None, *, wait: bool = True
    ) -> VerificationKey | None:
        """The key named ``kid`` (a plain dict lookup, RFC 7515 §4.1.4), or the only key.
        ``issued_at`` and ``wait`` are for sets that are fetched; a set held in memory has no use
        for them."""
        if kid is None:
            return self._only
        return self._by_kid.get(kid)

    def __len__(self) -> int:
        return len(self._by_kid) or (1 if self._only else 0)

    @property
    def kids(self) -> frozenset[str]:
        """The key ids of the set."""
        return frozenset(self._by_kid)


def _drop_ambiguous(keys: list[VerificationKey]) -> list[VerificationKey]:
    """Keys sharing a kid cannot be told apart; use none of them rather than guess."""
    counts: dict[str | None, int] = {}
    for key in keys:
        counts[key.kid] = counts.get(key.kid, 0) + 1
    kept = [key for key in keys if key.kid is None or counts[key.kid] == 1]
    if len(kept) < len(keys):
        log.warning("skipping fetched keys whose kid is not unique")
    return kept


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A fetched set, with the number of the fetch that brought it (fetches are counted as they
    start), when that fetch started, and how long the set may be trusted."""

    keys: KeySet
    attempt: int
    at: float
    max_age: float


class RemoteKeySet:
    """A JWK Set fetched from a ``jwks_uri`` (RFC 8414 §2) and cached.

    Freshness. The set is trusted for the ``max-age`` its response declares (``Cache-Control``,
    clamped to [60 s, 24 h]), or ``max_age`` seconds when it declares none, then fetched again.
    A failed fetch keeps the last good set in service (logged), so a flaky authorization server
    does not turn into an outage; while no set has ever been fetched,
    :class:`VerificationUnavailable` (503) says so rather than call every token invalid.

    Rotation (OpenID Connect Core §10.1.1). An authorization server may sign with a new key as
    soon as it publishes it, and the verifier is to fetch the set again on an unfamiliar
    ``kid``. A ``kid`` the set lacks is answered ``None`` (the token is refused, 401) once a
    fetch has shown it absent that started after the token was signed: after this lookup began,
    or ``leeway`` seconds (the clocks' allowed difference) after the token's ``issued_at`` (its
    ``iat``, read before verification: a forged one changes only its own token's answer). Its
    key was published before that fetch, so it is not the authorization server's. A token
    signed long ago with a retired or made-up key is refused at once, with no fetch; a token
    signed just now waits for the next fetch: :class:`VerificationUnavailable` (503), its
    ``retry_after`` the seconds until that fetch may start, never longer than ``leeway`` plus
    ``refetch_interval`` whatever other traffic does. A token without a ``kid`` causes no fetch: it is matched only by a set of exactly
    one key (OpenID Connect Core §10.1: with several keys a ``kid`` is required), else refused.

    Bounds. One fetch at a time (single flight: a lookup that needs a fetch waits for the one
    under way; one that holds a stale but usable set goes on with it), and at most one fetch per
    ``refetch_interval`` seconds after a successful fetch, per ``cooldown`` seconds after a
    failed one, whatever the cause: a flood of tokens with made-up kids costs the authorization
    server one request per interval. Should ``clock`` step backwards, the time since the last
    fetch counts as long ago: the set is fetched again rather than trusted as fresh.

    ``issuer`` (given by :class:`~resource_server.tokens.JWTVerifier`) names the authorization
    server in metrics, spans and audit events: each fetch is counted and traced, a failed one
    and a set whose key ids changed (a rotation) are security events, and the age of the set in
    use is reported (:mod:`resource_server.telemetry`).
    """

    def __init__(
        self,
        uri: str,
        *,
        algorithms: Collection[str],
        cooldown: float = 30.0,
        refetch_interval: float = 5.0,
        max_age: float = 300.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fetcher: JSONFetcher | None = None,
        leeway: float = 30.0,
        issuer: str | None = None,
    ) -> None:
        try:
            self.uri = check_uri(uri, "jwks_uri")
        except ValueError as exc:
            raise KeySetError(str(exc)) from None
        if not (cooldown > 0 and refetch_interval > 0):
            raise KeySetError("cooldown and refetch_interval must be positive numbers of seconds")
        self._fetcher = fetcher or JSONFetcher(timeout=timeout)
        self._algorithms = frozenset(algorithms)
        self._cooldown = cooldown
        self._refetch_interval = refetch_interval
        self._leeway = leeway
        self._default_max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        # Replaced whole, never changed in place: lookups read it without the lock.
        self._fetched: _Fetched | None = None
        self._attempts = 0  # fetches started so far
        self._last_attempt: float | None = None
        self._pause = refetch_interval  # from the last attempt to the next: longer after a failure
        self.issuer = issuer
        metrics.track_key_set(self)

    def age(self) -> float | None:
        """Seconds since the set in service was fetched (on ``clock``); None before the first."""
        fetched = self._fetched
        return None if fetched is None else max(0.0, self._clock() - fetched.at)

    def find(
        self, kid: str | None, issued_at: int | None = None, *, wait: bool = True
    ) -> VerificationKey | None:
        """The key for ``kid``, fetching the set when it is missing, stale, or lacks ``kid``;
        ``issued_at`` is the token's ``iat`` (Unix time, unverified), when it has one and the
        clock is a Unix-time clock (the JWT verifier's). With ``wait=False`` nothing is fetched:
        :class:`~resource_server.tokens.errors.WouldWait` where a fetch would be."""
        before = self._attempts  # a fetch that had started already cannot vouch for an absence
        fetched = self._fetched
        if not wait:
            return self._in_hand(fetched, kid, before, issued_at)
        if fetched is None:
            fetched = self._refresh(wait=True)
            if fetched is None:
                raise self._unavailable("the authorization server's keys have never been fetched")
        elif not within(self._clock(), fetched.at, fetched.max_age):
            fetched = self._refresh(wait=False) or fetched
        key = fetched.keys.find(kid)
        if key is not None or kid is None or self._shows_absent(fetched, before, issued_at):
            return key
        fetched = self._refresh(wait=True) or fetched
        key = fetched.keys.find(kid)
        if key is not None or self._shows_absent(fetched, before, issued_at):
            return key
        # The kid is the token's: in this event, kept out of the description, which is the cause
        # the refusal's ERROR line is paced by (a flood of made-up kids is one cause).
        audit.security(
            "jwks_unknown_key",
            {"issuer": self.issuer, "details": {"uri": self.uri, "kid": loggable(kid)}},
            "the token's key %s is not in the JWK Set of %s as last fetched",
            loggable(kid),
            self.uri,
            level=logging.INFO,
        )
        raise self._unavailable(
            f"a token's key is not in the JWK Set of {self.uri} as last fetched, and the set"
            " cannot be fetched again yet"
        )

    def _in_hand(
        self, fetched: _Fetched | None, kid: str | None, before: int, issued_at: int | None
    ) -> VerificationKey | None:
        """What :meth:`find` answers without fetching, or :class:`WouldWait`."""
        if fetched is None or not within(self._clock(), fetched.at, fetched.max_age):
            raise WouldWait("the key set must be fetched")
        key = fetched.keys.find(kid)
        if key is not None or kid is None or self._shows_absent(fetched, before, issued_at):
            return key
        raise WouldWait("the key set may be fetched again for this kid")

    def _unavailable(self, description: str) -> VerificationUnavailable:
        unavailable = VerificationUnavailable(description, retry_after=self._retry_after(), cause="jwks")
        unavailable.issuer = self.issuer
        return unavailable

    def _shows_absent(self, fetched: _Fetched, before: int, issued_at: int | None) -> bool:
        """Whether ``fetched``, which lacks the token's key, was fetched after the token was
        signed: it started after this lookup began, or after ``issued_at`` plus ``leeway``."""
        if fetched.attempt > before:
            return True
        return issued_at is not None and fetched.at >= issued_at + self._leeway

    def _retry_after(self) -> int:
        """Seconds until the next fetch may start."""
        if self._last_attempt is None:
            return 1
        return max(1, math.ceil(self._pause - (self._clock() - self._last_attempt)))

    def _refresh(self, *, wait: bool) -> _Fetched | None:
        """Fetch the set, unless the last fetch started too recently or (``wait`` false) one is
        under way; the set in service afterwards."""
        if not self._lock.acquire(blocking=wait):
            return self._fetched
        try:
            # Read under the lock, so the times compared below come in the order the attempts
            # were made: a thread that read the clock earlier but got the lock later would
            # otherwise see a negative elapsed time, count it as long ago, and fetch again.
            now = self._clock()
            if self._last_attempt is not None and within(now, self._last_attempt, self._pause):
                return self._fetched
            self._last_attempt = now
            self._attempts += 1
            attributes = {
                "url.full": self.uri,
                **({"resource_server.issuer": self.issuer} if self.issuer else {}),
            }
            with spans.span("resource_server.jwks.fetch", client=True, attributes=attributes) as span:
                try:
                    document = self._fetcher.get(self.uri)
                    keys = KeySet.from_jwks(document.document, self._algorithms, strict=False)
                except (FetchError, KeySetError) as exc:  # the cached set stays; an event, not raised
                    spans.error(span, type(exc).__name__, str(exc))
                    self._pause = self._cooldown
                    self._failed(exc)
                    return self._fetched
            metrics.fetched("jwks", self.issuer, True)
            self._pause = self._refetch_interval
            max_age = document.max_age if document.max_age is not None else self._default_max_age
            previous, self._fetched = self._fetched, _Fetched(keys, self._attempts, now, max_age)
            if previous is not None and previous.keys.kids != keys.kids:
                self._rotated(previous.keys.kids, keys.kids)
            return self._fetched
        finally:
            self._lock.release()

    def _failed(self, error: Exception) -> None:
        metrics.fetched("jwks", self.issuer, False)
        audit.security(
            "jwks_fetch_failed",
            {"issuer": self.issuer, "details": {"uri": self.uri, "reason": str(error)}},
            "could not refresh the JWK Set from %s: %s",
            self.uri,
            error,
        )

    def _rotated(self, before: frozenset[str], after: frozenset[str]) -> None:
        """A fetched set whose key ids differ from the set it replaces: counted, and an event
        naming the ids added and removed (the authorization server's, at most 20 each)."""
        metrics.rotated(self.issuer)
        added = [audit.text(kid) for kid in sorted(after - before)[:_LISTED_KIDS]]
        removed = [audit.text(kid) for kid in sorted(before - after)[:_LISTED_KIDS]]
        audit.security(
            "jwks_rotated",
            {"issuer": self.issuer, "details": {"uri": self.uri, "added": added, "removed": removed}},
            "the JWK Set of %s rotated: keys %s added, %s removed",
            self.uri,
            ", ".join(map(loggable, added)) or "none",
            ", ".join(map(loggable, removed)) or "none",
            level=logging.INFO,
        )


#: The most key ids a rotation event names, added and removed each.
_LISTED_KIDS = 20


def within(now: float, then: float, seconds: float) -> bool:
    """Whether ``then`` lies less than ``seconds`` before ``now``. A clock that stepped backwards
    (an NTP correction of a wall clock) makes ``now - then`` negative: that counts as long ago,
    never as just now, or the cache would look fresh and the cooldown active until the clock
    caught up again, refusing every token signed with a newly rotated key meanwhile."""
    return 0 <= now - then < seconds
