"""Viewer context: a signed service-to-service header saying on whose behalf a request is made.

A front service that has already authenticated a user forwards ``X-Viewer-Context: <jwt>`` to an
internal service. The value is a JWT (RFC 7519) in compact JWS serialization (RFC 7515 §7.1),
signed with HMAC-SHA256 under a secret the two services share, with ``typ: viewer+jwt`` so it can
never pass as an access token or a capability token (RFC 8725 §3.11).

A bearer header copied from logs could be replayed against any endpoint, so the context is bound
to one request with claims borrowed from DPoP proofs (RFC 9449 §4.2): ``htm`` (the HTTP method),
``htu`` (the path and query string) and ``bh`` (base64url SHA-256 of the body, in the spirit of
DPoP's ``ath``). It lives for seconds, and its ``jti`` is accepted once.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy import InvalidScope, format_scope, parse_scope

from .bodies import BodyError
from .dpop_claims import SHA256_B64URL, matches, same_ascii
from .state import MemoryReplayCache, ReplayCache, replayed
from .telemetry import audit, metrics
from .tokens.errors import VerificationUnavailable
from .tokens.jws import (
    InvalidToken,
    b64encode,
    hmac_keys,
    hs256_sign,
    hs256_verify,
    integer_claim,
    is_printable_identifier,
    string_claim,
)

__all__ = [
    "HEADER",
    "ViewerContext",
    "ViewerContextSigner",
    "ViewerContextVerifier",
]

HEADER = "X-Viewer-Context"
VIEWER_TYPE = "viewer+jwt"
MAX_LIFETIME = 300  # seconds; a context is minted per request, so anything longer is a misuse
MAX_JTI = 128

logger = logging.getLogger("resource_server")


def body_hash(body: bytes) -> str:
    """The ``bh`` claim: base64url (RFC 7515 §2) of the SHA-256 of the request body."""
    return b64encode(hashlib.sha256(body).digest())


class ViewerContextSigner:
    """Mints one ``X-Viewer-Context`` header per outgoing request. ``keys`` maps kid → secret;
    ``signing_kid`` picks the one that signs. Without a usable secret the signer warns once and
    sends no header, so a service that is not configured yet degrades to anonymous calls."""

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        signing_kid: str | None,
        issuer: str,
        audience: str,
        ttl: int = 60,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 0 < ttl <= MAX_LIFETIME:
            raise ValueError(f"ttl must be 1 to {MAX_LIFETIME} seconds")
        self._keys = (
            hmac_keys(keys) if keys else {}
        )  # a short secret is a configuration error, even when unused
        if signing_kid is not None and self._keys and signing_kid not in self._keys:
            raise ValueError(f"signing_kid {signing_kid!r} is not one of the keys")
        self._secret = self._keys.get(signing_kid) if signing_kid is not None else None
        self._kid = signing_kid
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._clock = clock or time.time
        if self._secret is None:
            logger.warning("viewer context signer has no signing key; no X-Viewer-Context will be sent")

    def headers(
        self,
        *,
        user_id: str | None = None,
        org_id: str | None = None,
        scopes: Iterable[str] | None = None,
        method: str,
        path: str,
        body: bytes = b"",
    ) -> dict[str, str]:
        """``{"X-Viewer-Context": <jwt>}`` bound to this method, path (with query) and body."""
        if self._secret is None:
            return {}
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "htm": method.upper(),
            "htu": path,
            "bh": body_hash(body),
        }
        if user_id is not None:
            claims["user_id"] = user_id
        if org_id is not None:
            claims["org_id"] = org_id
        if scopes is not None:
            claims["scope"] = format_scope(scopes)  # RFC 6749 §3.3 string, validated here
        header = {"alg": "HS256", "typ": VIEWER_TYPE, "kid": self._kid}
        return {HEADER: hs256_sign(header, claims, self._secret)}


@dataclass(frozen=True, slots=True)
class ViewerContext:
    """Who the calling service acts for. ``scopes`` is None when the context carries no scope."""

    user_id: str | None
    org_id: str | None
    scopes: frozenset[str] | None
    issuer: str


class ViewerContextVerifier:
    """Verifies ``X-Viewer-Context`` headers. Every failure is ``None`` (logged with its reason,
    never the token): a missing or bad context means "no viewer", and the caller decides whether
    that is a 401. Keys rotate by kid: a context verifies while its kid is in ``keys``."""

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        audience: str,
        issuers: Collection[str],
        leeway: int = 5,
        max_age: int = 300,
        max_header_bytes: int = 4096,
        replay_cache: ReplayCache | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._keys = hmac_keys(keys)
        if not self._keys:
            raise ValueError("give at least one key")
        self.audience = audience
        self.issuers = frozenset(issuers)
        self.leeway = leeway
        self.max_age = max_age
        self.max_header_bytes = max_header_bytes
        self._clock = clock or time.time
        self.replay_cache = replay_cache if replay_cache is not None else MemoryReplayCache(clock=self._clock)

    def verify(
        self, headers: Any, *, method: str, path: str, body: bytes | Callable[[], bytes] = b""
    ) -> ViewerContext | None:
        """The verified context of this request, or None. ``body`` is the request body, or a
        function that reads it: called only once the header's signature and claims hold, so a
        forged header costs no body read. A :class:`~resource_server.bodies.BodyError` it raises
        propagates (the adapter answers 400), and so does
        :class:`~resource_server.VerificationUnavailable` from a replay cache that cannot be
        reached (503: never accepted unchecked); every other failure is None."""
        try:
            return self._verify(_lookup(headers), method, path, body)
        except (BodyError, VerificationUnavailable):
            raise
        except _Replayed as replay:
            _refused("viewer_context_replayed", replay.description, method, logging.WARNING)
        except InvalidToken as refused:
            _refused("viewer_context_refused", refused.description, method, logging.INFO)
        except Exception as error:  # hostile input must never become a 500
            _refused("viewer_context_refused", type(error).__name__, method, logging.INFO)
        return None

    def _verify(
        self, value: object, method: str, path: str, body: bytes | Callable[[], bytes]
    ) -> ViewerContext | None:
        if value is None:
            logger.debug("no viewer context header")
            return None
        if not isinstance(value, str):
            raise InvalidToken("the header is not text")
        # Size first: nothing is parsed, decoded or hashed before the bound is known to hold.
        if len(value) > self.max_header_bytes:
            raise InvalidToken("the header is too large")
        claims = hs256_verify(value, self._keys, VIEWER_TYPE)  # fixed alg, known kid, constant time
        return self._claims(claims, method, path, body)

    def _claims(
        self, claims: dict[str, Any], method: str, path: str, body: bytes | Callable[[], bytes]
    ) -> ViewerContext:
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            raise InvalidToken("unknown issuer")
        aud = claims.get("aud")  # RFC 7519 §4.1.3: a string or an array of strings
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("wrong audience")
        now = self._clock()
        exp = integer_claim(claims, "exp", required=True)
        iat = integer_claim(claims, "iat", required=True)
        if now >= exp + self.leeway:
            raise InvalidToken("expired")
        if iat > now + self.leeway:
            raise InvalidToken("issued in the future")
        if now - iat > self.max_age:
            raise InvalidToken("stale")
        if exp - iat > MAX_LIFETIME:
            raise InvalidToken("lifetime too long")
        # DPoP-style request binding (RFC 9449 §4.2): this method, this path, this body.
        if claims.get("htm") != method.upper() or claims.get("htu") != path:
            raise InvalidToken("bound to another request")
        bh = claims.get("bh")
        if not matches(bh, SHA256_B64URL):  # base64url of a SHA-256 digest, as body_hash makes
            raise InvalidToken("bound to another body")
        user_id = string_claim(claims, "user_id", required=False)
        org_id = string_claim(claims, "org_id", required=False)
        scopes = None
        if "scope" in claims:
            try:
                scopes = parse_scope(claims["scope"])
            except InvalidScope:
                raise InvalidToken("invalid scope claim") from None
        jti = claims.get("jti")
        # Checked before any store sees it: a lone surrogate cannot even be encoded for Redis.
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI or not is_printable_identifier(jti):
            raise InvalidToken("invalid jti")
        # The body is read only for a context sound in every other respect (a forged header costs
        # no read), and hashed last before the replay record.
        if not same_ascii(bh, body_hash(body() if callable(body) else body)):
            raise InvalidToken("bound to another body")
        # Recorded last, so a context refused for another reason does not burn its jti.
        try:
            seen = replayed(self.replay_cache, jti, exp + self.leeway)
        except VerificationUnavailable as exc:
            metrics.replay_checked("viewer_context", "full" if exc.cause == "replay_full" else "unavailable")
            raise
        metrics.replay_checked("viewer_context", "replay" if seen else "fresh")
        if seen:
            raise _Replayed("replayed jti")
        return ViewerContext(user_id=user_id, org_id=org_id, scopes=scopes, issuer=issuer)


class _Replayed(InvalidToken):
    """A context whose ``jti`` was accepted before: a captured request sent again."""


def _refused(event: str, reason: str, method: object, level: int) -> None:
    """The security event of a refused context (it was never trusted: nothing of it but why)."""
    audit.security(
        event,
        {"source": "viewer", "method": audit.request_text(method, 32), "details": {"reason": reason}},
        "viewer context refused: %s",
        reason,
        level=level,
    )


def _lookup(headers: Any) -> object:
    """The header from a dict, werkzeug ``Headers``/``EnvironHeaders`` or any mapping, by any case."""
    value = headers.get(HEADER)
    if value is None and isinstance(headers, Mapping):
        # Plain dicts are case-sensitive; HTTP field names are not (RFC 9110 §5.1).
        for name, candidate in headers.items():
            if isinstance(name, str) and name.lower() == HEADER.lower():
                return candidate
    return value
