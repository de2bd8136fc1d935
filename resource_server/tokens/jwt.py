"""JWT access-token verification (RFC 9068) with the checks PyJWT leaves to the caller.

PyJWT does the signature work. Everything around it is checked here, strictly and before trust
(RFC 8725, JWT Best Current Practices): size and serialization first, duplicate JSON members,
the algorithm taken from the key we hold, ``crit``, ``typ``, and every claim's JSON type.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..expiring import ExpiringCache
from .claims import check_auth_time, org_of, scopes_of, shared_identifier
from .discovery import DiscoveredKeySet
from .errors import VerificationUnavailable, loggable
from .jws import (
    InvalidToken,
    b64decode,
    decoded_object,
    integer_claim,
    json_object,
    split_compact,
    string_claim,
)
from .keys import ASYMMETRIC_ALGORITHMS, KeySet, RemoteKeySet, VerificationKey
from .payload import PayloadClaims
from .verified import VerifiedToken

__all__ = ["InvalidToken", "JWTVerifier", "VerifiedToken"]

log = logging.getLogger(__name__)

#: Distinct JOSE headers remembered as checked; more are simply parsed again.
_CHECKED_HEADERS = 64
# RFC 9068 §4: "at+jwt"; media types compare case-insensitively (RFC 7515 §4.1.9).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


_ABSENT: Any = object()  # a claim the token does not carry (null is carried, and refused)


class JWTVerifier:
    """Verifies JWT access tokens (RFC 9068) signed with a key from a JWK Set.

    Give exactly one of ``jwks`` (a JWK Set dict), ``jwks_uri`` (fetched, cached, refetched on
    an unknown ``kid`` at most once per 5 s, see :class:`~resource_server.tokens.keys.RemoteKeySet`)
    or ``discover=True`` (the ``jwks_uri`` found in the issuer's RFC 8414 or OpenID Connect
    metadata, see :class:`~resource_server.tokens.discovery.DiscoveredKeySet`). ``issuer_org``
    binds every token of this issuer to one organization (a per-customer issuer);
    ``scope_claim`` may hold a scope string or an array of scope tokens.
    ``clock`` returns the current Unix time; ``max_lifetime`` caps ``exp - iat``;
    ``cache_size`` bounds the verified-token cache.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Collection[str],
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = ("RS256", "ES256", "EdDSA"),
        leeway: int = 30,
        max_token_bytes: int = 8192,
        org_claim: str = "org_id",
        scope_claim: str = "scope",
        require_typ: str | None = "at+jwt",
        clock: Callable[[], float] | None = None,
        max_lifetime: int = 86400,
        cache_size: int = 4096,
        issuer_org: str | None = None,
        discover: bool = False,
    ) -> None:
        if (jwks is not None) + (jwks_uri is not None) + bool(discover) != 1:
            raise ValueError("give exactly one of jwks, jwks_uri or discover=True")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must be a non-empty string or a collection of them")
        if isinstance(algorithms, str):
            raise TypeError("algorithms must be a collection of names, not a string")
        unsupported = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if unsupported or not algorithms:
            # "none" and the HS* family are refused here, so no key or header can bring them back.
            raise ValueError(f"unsupported algorithms {sorted(unsupported)}; use public-key algorithms")
        if require_typ is not None and require_typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise ValueError('require_typ must be "at+jwt" (RFC 9068 §2.1) or None')
        if issuer_org is not None and (not isinstance(issuer_org, str) or not issuer_org):
            raise ValueError("issuer_org must be a non-empty string (the organization this issuer serves)")
        self.issuer = issuer
        self.issuer_org = issuer_org
        self.audiences = audiences
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.max_lifetime = max_lifetime
        self.org_claim = org_claim
        self.scope_claim = scope_claim
        self.require_typ = require_typ
        self._clock = clock or time.time
        self._keys: KeySet | RemoteKeySet | DiscoveredKeySet
        if jwks is not None:
            self._keys = KeySet.from_jwks(jwks, self.algorithms)
        elif jwks_uri is not None:
            self._keys = RemoteKeySet(
                jwks_uri, algorithms=self.algorithms, clock=self._clock, leeway=leeway, issuer=issuer
            )
        else:  # nothing is fetched before the first token needs a key
            self._keys = DiscoveredKeySet(
                issuer, algorithms=self.algorithms, clock=self._clock, leeway=leeway
            )
        # Keyed on the token's SHA-256, so the cache holds no token text; never answers at or
        # after a token's exp (the leeway never extends a cached token).
        self._cache: ExpiringCache[bytes, VerifiedToken] = ExpiringCache(cache_size, self._clock)
        self._headers: dict[str, tuple[str | None, str]] = {}  # header segment → (kid, alg), checked

    @property
    def clock(self) -> Callable[[], float]:
        """The clock tokens are checked against (Unix time); the guard's caches use it too."""
        return self._clock

    @property
    def discovers(self) -> bool:
        """Whether the keys come from the issuer's metadata (``discover=True``)."""
        return isinstance(self._keys, DiscoveredKeySet)

    def verify(self, token: str) -> VerifiedToken:
        """Verify ``token`` and return what it says; raise :class:`InvalidToken` otherwise."""
        digest = hashlib.sha256(self._bounded(token).encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        verified = self._verified(token)
        self._cache.put(digest, verified, verified.expires_at)
        return verified

    def verify_uncached(self, token: str, *, wait: bool = True) -> VerifiedToken:
        """:meth:`verify` without this verifier's cache, neither read nor filled: for a caller
        that keeps what it verified itself (the guard, under the ``Authorization`` value), so a
        token is remembered once, not twice, and costs no SHA-256 of its text. With
        ``wait=False`` no key set or metadata is fetched: :class:`~.errors.WouldWait` where one would be
        (an async adapter then verifies in a worker thread)."""
        if type(token) is not str or len(token) > self.max_token_bytes:
            self._bounded(token)  # raises, saying which
        try:
            return self._verify(token, wait)
        except (InvalidToken, VerificationUnavailable) as exc:
            exc.issuer = self.issuer  # which configured issuer refused it, for telemetry
            raise

    def _bounded(self, token: str) -> str:
        if not isinstance(token, str):
            raise InvalidToken("the token must be a string")
        if len(token) > self.max_token_bytes:  # before any hashing, base64 or JSON work
            raise InvalidToken("the token is too large")
        return token

    def _verified(self, token: str, wait: bool = True) -> VerifiedToken:
        try:
            return self._verify(token, wait)
        except (InvalidToken, VerificationUnavailable) as exc:
            exc.issuer = self.issuer  # which configured issuer refused it, for telemetry
            raise

    def _verify(self, token: str, wait: bool = True) -> VerifiedToken:
        header_b64, payload_b64, signature_b64 = split_compact(token)
        # What needs no key is checked before the key is looked up: a malformed token is a 401
        # at once, not a 503 while a refetch for its unknown kid may not start yet. The payload
        # is only parsed here; no claim is read before the signature holds.
        checked = self._headers.get(header_b64) or self._checked_header(header_b64)
        payload = b64decode(payload_b64)
        claims = decoded_object(payload, "payload", kept=False)
        key = self._key_for(checked, claims.get("iat"), wait)
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not key.verify(signing_input, b64decode(signature_b64)):
            raise InvalidToken("the token signature is invalid")
        return self._claims(claims, payload)

    def _checked_header(self, header_b64: str) -> tuple[str | None, str]:
        """(kid, alg) of this header segment. An authorization server signs with a handful of
        headers; each is parsed and checked once (kept in a small bounded dict)."""
        checked = self._headers.get(header_b64)
        if checked is None:
            checked = self._check_header(json_object(header_b64, "header"))
            if len(self._headers) >= _CHECKED_HEADERS:
                self._headers.clear()
            self._headers[header_b64] = checked
        return checked

    def _key_for(self, checked: tuple[str | None, str], iat: object, wait: bool = True) -> VerificationKey:
        """The key for a checked header's (kid, alg), looked up every time, so a rotated or
        retired key is seen at once. ``iat``, not yet verified, only tells a key set whether a
        fetch could still find a kid it lacks (a forged one changes only this token's answer)."""
        kid, alg = checked
        issued_at = iat if type(iat) is int else None
        # jku, x5u, jwk and x5c are never consulted: keys come only from our configured set.
        key = self._keys.find(kid, issued_at, wait=wait)
        if key is None:
            raise InvalidToken("the token is signed with an unknown key")
        if alg != key.algorithm:
            raise InvalidToken("the token algorithm does not match its key")
        return key

    def _check_header(self, header: Mapping[str, Any]) -> tuple[str | None, str]:
        """(kid, alg) of a JOSE header this server accepts (RFC 7515 §4.1, RFC 9068 §2.1)."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise InvalidToken("the token is not signed with an accepted algorithm")
        if "crit" in header:
            # RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST reject.
            raise InvalidToken("the token uses critical header extensions this server does not support")
        if self.require_typ is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
                raise InvalidToken("the token is not an access token (typ must be at+jwt, RFC 9068)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token kid is not a string")
        return kid, alg

    def _claims(self, claims: dict[str, Any], payload: bytes) -> VerifiedToken:
        """The checked claims as a :class:`VerifiedToken`, which keeps their JSON (``payload``)
        rather than the parsed dict: it is parsed again only if something reads the claims
        (:class:`~.payload.PayloadClaims`)."""
        now = self._clock()
        exp: Any = claims.get("exp")
        nbf: Any = claims.get("nbf", _ABSENT)
        iat: Any = claims.get("iat", _ABSENT)
        if (
            type(exp) is not int  # RFC 7519 §2 NumericDate: bool is an int subclass, and not one
            or (nbf is not _ABSENT and type(nbf) is not int)
            or (iat is not _ABSENT and type(iat) is not int)
        ):
            for name in ("exp", "nbf", "iat"):  # raises, naming the first claim at fault
                integer_claim(claims, name, required=name == "exp")
        if nbf is _ABSENT:
            nbf = None
        if iat is _ABSENT:
            iat = None
        if now >= exp + self.leeway:
            raise InvalidToken("the token has expired")
        if nbf is not None and now + self.leeway < nbf:
            raise InvalidToken("the token is not valid yet")
        if iat is not None and iat > now + self.leeway:
            raise InvalidToken("the token was issued in the future")
        # Compared, not subtracted: int and float compare exactly, while 10**400 - 1.5 overflows.
        if exp > (iat if iat is not None else now) + self.max_lifetime:
            raise InvalidToken("the token lifetime is longer than this server accepts")
        if claims.get("iss") != self.issuer:  # exact, case-sensitive (RFC 7519 §4.1.1)
            received = loggable(claims.get("iss"))
            raise InvalidToken(
                "the token issuer is not accepted",
                reason=f"the token issuer {received} is not the expected {loggable(self.issuer)}",
            )
        aud = claims.get("aud")
        if type(aud) is not str or aud not in self.audiences:  # the common case, inline
            self._check_audience(aud)
        claims["iss"] = self.issuer  # equal to ours, so ours: the token's issuer, shared
        subject = string_claim(claims, "sub", required=True)
        org = shared_identifier(
            string_claim(claims, self.org_claim, required=False)  # org_of() without an issuer_org
            if self.issuer_org is None
            else org_of(claims, self.org_claim, self.issuer_org)
        )
        client_id = shared_identifier(string_claim(claims, "client_id", required=False))
        # subject, scopes, org, client_id, expires_at, claims; reads cnf, act, acr and auth_time
        # strictly (claims.py)
        verified = VerifiedToken(subject, scopes_of(claims, self.scope_claim), org, client_id, exp, claims)
        if verified.auth_time is not None:
            check_auth_time(verified.auth_time, now, self.leeway)
        # Read by now: what the guard needs is in the token's fields. The claims stay as their
        # JSON, parsed again only if something reads them; set as __post_init__ sets the
        # fields it reads, once, on a token nobody else holds yet.
        object.__setattr__(verified, "claims", PayloadClaims(payload))
        return verified

    def _check_audience(self, aud: object) -> None:
        """RFC 7519 §4.1.3: a string, or an array of strings one of which identifies us."""
        if isinstance(aud, str):
            accepted = aud in self.audiences
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            accepted = not self.audiences.isdisjoint(aud)
        else:
            accepted = False
        if not accepted:
            raise InvalidToken("the token audience is not this server")
