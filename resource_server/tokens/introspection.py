"""Opaque access tokens, checked by asking the authorization server (RFC 7662, OAuth 2.0 Token
Introspection).

The answer is trusted only as far as it is well-formed: a bounded, strict JSON object whose
``active`` is exactly ``true`` and whose claims pass the same checks a JWT access token's would
(RFC 9068 §4: audience, issuer, lifetime, type, confirmation). Only such an answer, or a strict
RFC 6749 §5.2 error that names the token, can refuse a token; anything else (an answer that
cannot be had or cannot be read, a proxy's error page) is :class:`VerificationUnavailable`
(503), never a 401: the token may well be good.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import quote_plus, urlencode

from ..expiring import ExpiringCache
from ..strict_json import parse_object, strict_json_decoder
from ..telemetry import audit, metrics, spans
from .claims import check_auth_time, org_of, scopes_of
from .client_auth import B64TOKEN, BearerAuth, ClientAuth, ClientAuthenticator, Credentials
from .errors import InvalidToken, VerificationUnavailable
from .http import check_uri
from .jws import integer_claim, string_claim
from .verified import VerifiedToken

__all__ = ["MAX_RESPONSE_BYTES", "BearerAuth", "ClientAuth", "IntrospectionVerifier"]


#: The largest introspection response read. Real ones are a few hundred bytes; more is refused
#: after reading one byte past this, never read whole.
MAX_RESPONSE_BYTES = 64 * 1024
#: Seconds an answer's ``auth_time`` may lie ahead of this server's clock, as the JWT verifier's
#: default leeway allows: the person signed in at the authorization server a moment ago by its
#: clock, and a fast clock there must not refuse the token a step-up just produced (RFC 9470 §4).
AUTH_TIME_LEEWAY = 30
# RFC 7662 §2.2 token_type holds an RFC 6749 §7.1 type; access tokens for this API are these.
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "dpop"})
# RFC 6749 §5.2: a 400 with these codes is about our request, not about the token.
_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_request"})
# A 400 with these codes is about the token (RFC 6750 §3.1, RFC 7009 §2.2.1): RFC 7662 §2.2 wants
# {"active": false} instead, but some servers answer so, and it refuses the token all the same.
_TOKEN_ERRORS = frozenset({"invalid_token", "unsupported_token_type"})
_MAX_RETRY_AFTER = 300
# RFC 7662 §2.1: a form, answered in JSON. The credentials' own headers are added to these.
_HEADERS = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}

_DECODER = strict_json_decoder(
    lambda: ValueError("duplicate JSON members"), lambda: ValueError("a non-standard JSON number")
)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """An answer that refuses the token; cached for ``negative_ttl``."""

    description: str


@dataclass(frozen=True, slots=True)
class _Unavailable:
    """No answer; shared with the callers that waited for it, never cached."""

    description: str
    retry_after: int


_Outcome = VerifiedToken | _Refusal | _Unavailable


class _Flight:
    """One introspection call in progress: callers presenting the same token wait for its outcome.

    ``done`` is made by the first caller that waits, under the verifier's flights lock, under
    which the caller making the request reads it once its outcome is set: most flights have no
    waiter, and an Event costs 4 µs to make and 1 µs to set."""

    __slots__ = ("done", "outcome", "waiters")

    def __init__(self) -> None:
        self.done: threading.Event | None = None
        self.waiters = 0  # callers waiting besides the one making the request
        self.outcome: _Outcome = _Refusal("the token could not be verified")


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after: str | None


class IntrospectionVerifier:
    """Verifies opaque access tokens at an RFC 7662 introspection ``endpoint``.

    The token is POSTed as a form (RFC 7662 §2.1), authenticated as ``client_auth`` says:
    ``"client_secret_basic"`` (the default: ``client_id`` and ``client_secret`` in HTTP Basic,
    RFC 6749 §2.3.1), ``"client_secret_post"`` (the same two in the form), or
    ``BearerAuth(token)`` (a bearer token, or a callable returning one, obtained again when the
    endpoint refuses it; see :class:`~resource_server.tokens.client_auth.BearerAuth`; give no
    ``client_id`` or ``client_secret`` with it). ``endpoint`` must be ``https``; plain ``http`` is
    accepted for loopback hosts only. ``audience`` is this API's identifier, which the answer's
    ``aud`` must contain; ``None`` skips that check, which accepts tokens minted for any API the
    authorization server serves (RFC 8707, RFC 9068 §4). ``issuer``, when given, must equal ``iss``.
    The subject is the answer's ``subject_claim`` (``sub``; ``username`` for a server that names
    the user only so, as django-oauth-toolkit does), else its ``client_id``: a client-credentials
    token's subject is the client itself (RFC 9068 §2.2).
    An answer with ``cnf.jkt`` makes the token DPoP-bound whatever its ``token_type`` says (a
    confirmation is a condition of use, RFC 7800 §3.1); one whose ``token_type`` is ``DPoP`` but
    names no ``cnf.jkt`` is refused (RFC 9449 §6.2), and so is any other ``cnf``. An answer's
    ``act``, ``acr`` and ``auth_time`` are read as a JWT's are (RFC 8693 §4.1, RFC 9068 §2.2.1;
    :class:`~resource_server.tokens.VerifiedToken`), and an ``auth_time`` after now is refused.

    Answers are cached by the token's SHA-256: an active one until the token's ``exp`` or
    ``cache_ttl`` seconds, whichever is sooner (so ``cache_ttl`` bounds how long a revoked token
    keeps working here), a refusal for ``negative_ttl`` seconds; ``cache_size`` entries at most.
    ``timeout`` bounds the whole exchange (connect, send, and the complete answer). Concurrent
    calls for the same uncached token share one request. ``clock`` is the Unix-time clock.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        audience: str | None,
        client_auth: ClientAuth = "client_secret_basic",
        issuer: str | None = None,
        subject_claim: str = "sub",
        scope_claim: str = "scope",
        org_claim: str = "org_id",
        issuer_org: str | None = None,
        cache_ttl: float = 60.0,
        negative_ttl: float = 5.0,
        cache_size: int = 4096,
        timeout: float = 3.0,
        clock: Callable[[], float] | None = None,
        max_token_bytes: int = 8192,
    ) -> None:
        self.endpoint = check_uri(endpoint)
        self._auth = ClientAuthenticator(client_auth, client_id, client_secret)
        self.client_id = client_id
        self.audience = _text("audience", audience, optional=True)
        self.issuer = _text("issuer", issuer, optional=True)
        self.subject_claim = _text("subject_claim", subject_claim)
        self.scope_claim = _text("scope_claim", scope_claim)
        self.org_claim = _text("org_claim", org_claim)
        self.issuer_org = _text("issuer_org", issuer_org, optional=True)
        self.cache_ttl = _seconds("cache_ttl", cache_ttl)
        self.negative_ttl = _seconds("negative_ttl", negative_ttl)
        self.timeout = _seconds("timeout", timeout, positive=True)
        self.max_token_bytes = _count("max_token_bytes", max_token_bytes, positive=True)
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a callable returning the Unix time")
        self._clock: Callable[[], float] = clock or time.time
        # The headers and the form after the token, built for the credentials of the last
        # request, which stay the same until a token callable's token is replaced: merging the
        # headers and encoding the form on every call took 6 µs.
        self._prepared: tuple[Credentials, dict[str, str], bytes] | None = None
        self._span_attributes = {
            "url.full": self.endpoint,
            **({"resource_server.issuer": self.issuer} if self.issuer else {}),
        }
        # Keyed on the token's SHA-256, so no token text is kept.
        self._cache: ExpiringCache[bytes, VerifiedToken | _Refusal] = ExpiringCache(
            _count("cache_size", cache_size), self._clock
        )
        self._flights: dict[bytes, _Flight] = {}
        self._flights_lock = threading.Lock()
        # The leader's exchange ends within about ``timeout``; twice that leaves room for DNS
        # and scheduling without letting a waiter hang.
        self._wait_limit = 2 * self.timeout
        from .pool import ERRORS, NO_RETRIES, endpoint_pool  # urllib3: loaded by the first client built

        self._pool, self._target = endpoint_pool(self.endpoint, self.timeout)
        self._no_retries = NO_RETRIES
        self._http_errors = ERRORS

    @property
    def clock(self) -> Callable[[], float]:
        """The clock answers are checked against (Unix time); the guard's caches use it too."""
        return self._clock

    def verify(self, token: str) -> VerifiedToken:
        """Verify ``token`` and return what the authorization server says of it.

        Raises :class:`InvalidToken` for a token that is malformed, inactive or not acceptable
        here, and :class:`VerificationUnavailable` when the authorization server cannot answer.
        ``expires_at`` of the result is when this verification stops being reusable:
        ``min(exp, now + cache_ttl)``, floored.
        """
        if not isinstance(token, str) or not token:
            raise InvalidToken("the token must be a non-empty string")
        if len(token) > self.max_token_bytes:  # before any regular expression or hashing work
            raise InvalidToken("the token is too large")
        if B64TOKEN.fullmatch(token) is None:
            raise InvalidToken("the token holds characters a bearer token cannot have")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            return _settle(cached)
        flight, done = self._join(digest)
        if done is not None:  # another caller is asking for this token: its outcome is ours
            if not done.wait(self._wait_limit):
                raise self._tagged(
                    VerificationUnavailable(
                        "the authorization server has not answered in time", cause="introspection"
                    )
                )
            return self._settled(flight.outcome)
        try:
            outcome = flight.outcome = self._timed(token)
            if isinstance(outcome, VerifiedToken):
                self._cache.put(digest, outcome, outcome.expires_at)
            else:
                self._cache.put(digest, outcome, self._clock() + self.negative_ttl)
        except VerificationUnavailable as exc:
            flight.outcome = _Unavailable(exc.description, exc.retry_after)
        finally:
            # After the cache is filled: a caller arriving now finds the cache or a new flight.
            # On an unexpected error the waiters get the default outcome, a refusal.
            with self._flights_lock:
                del self._flights[digest]
                done = flight.done
            if done is not None:
                done.set()
        return self._settled(flight.outcome)

    def _join(self, digest: bytes) -> tuple[_Flight, threading.Event | None]:
        """The flight for ``digest``, with the Event to wait on when another caller leads it, or
        None when this caller is to make the request.

        A caller that missed the cache just as a flight ended makes a request of its own: rare
        and harmless, and it keeps the (injected) clock out of this lock."""
        with self._flights_lock:
            flight = self._flights.get(digest)
            if flight is None:
                flight = self._flights[digest] = _Flight()
                return flight, None
            flight.waiters += 1
            if flight.done is None:
                flight.done = threading.Event()
            return flight, flight.done

    def _settled(self, outcome: _Outcome) -> VerifiedToken:
        try:
            return _settle(outcome)
        except (InvalidToken, VerificationUnavailable) as exc:
            raise self._tagged(exc) from None

    def _tagged(
        self, error: InvalidToken | VerificationUnavailable
    ) -> InvalidToken | VerificationUnavailable:
        """``error`` naming the configured issuer, if any (for telemetry)."""
        error.issuer = self.issuer
        return error

    def _timed(self, token: str) -> VerifiedToken | _Refusal:
        """:meth:`_introspect` in a span, its duration and result recorded."""
        started = time.perf_counter()
        result = "error"
        attributes = self._span_attributes
        with spans.span("resource_server.introspection", client=True, attributes=attributes) as span:
            try:
                outcome = self._introspect(token)
            except VerificationUnavailable as exc:
                spans.error(span, "temporarily_unavailable", exc.description)
                raise
            else:
                result = "active" if isinstance(outcome, VerifiedToken) else "inactive"
                if span is not None:
                    span.set_attribute("resource_server.introspection.result", result)
                return outcome
            finally:
                metrics.introspected(time.perf_counter() - started, result, self.issuer)

    # -- the exchange ------------------------------------------------------------------------------

    def _introspect(self, token: str) -> VerifiedToken | _Refusal:
        """One introspection request and what its answer means (RFC 7662 §2.2, §2.3). A 401 to
        a bearer token from a callable is tried once more with the callable's next token."""
        credentials = self._auth.credentials()
        answer = self._exchange(token, credentials)
        if answer.status == 401:
            fresh = self._auth.after_refusal(credentials)
            if fresh is not None:
                answer = self._exchange(token, fresh)
        if answer.status == 200:
            claims = self._json_object(answer.body)
            if not isinstance(claims.get("active"), bool):
                # RFC 7662 §2.2: "active" is REQUIRED and a boolean. Without it this is no
                # introspection answer (a health check's JSON, a misrouted endpoint): nothing
                # is known about the token, so it is not refused, nor is the refusal cached.
                raise self._unavailable("the answer has no boolean active member: not an RFC 7662 answer")
            try:
                return self._verified(claims)
            except InvalidToken as exc:
                return _Refusal(exc.description)
        error = _error_code(answer.body) if answer.status == 400 else None
        if error in _TOKEN_ERRORS:
            # Nothing here makes the token acceptable: a refusal, remembered like one.
            return _Refusal("the token is not active")
        if answer.status in (401, 403) or error in _CLIENT_ERRORS:
            # Our own client authentication or request was refused: configuration to fix, not
            # the caller's fault, and no reason to tell the caller its token is bad.
            raise self._unavailable(
                f"the introspection endpoint refused this resource server's request or credentials "
                f"(HTTP {answer.status}); check endpoint, {self._auth.settings}",
                level=logging.ERROR,
            )
        if answer.status == 400:
            # Empty, HTML (a proxy's page), not strict JSON, or an error about something else:
            # no answer about the token, so never a refusal, and never remembered as one.
            raise self._unavailable(
                "the introspection endpoint answered HTTP 400 without an OAuth error about the "
                "token (RFC 6749, section 5.2)",
                answer.retry_after,
            )
        raise self._unavailable(
            f"the introspection endpoint answered HTTP {answer.status}", answer.retry_after
        )

    def _exchange(self, token: str, credentials: Credentials) -> _Answer:
        headers, form_rest = self._request_for(credentials)
        trace: dict[str, str] = {}
        spans.inject(trace)  # traceparent: the authorization server's trace joins ours
        if trace:
            headers = {**headers, **trace}
        # The token is a b64token (checked in verify), so it is ASCII; its "+", "/" and "=" are
        # escaped as urlencode would (RFC 7662 §2.1, application/x-www-form-urlencoded).
        body = b"token=" + quote_plus(token).encode("ascii") + form_rest
        try:
            response = self._pool.urlopen(
                "POST",
                self._target,
                body=body,
                headers=headers,
                retries=self._no_retries,
                redirect=False,  # RFC 7662 names one endpoint; the token goes nowhere else
                preload_content=False,
                decode_content=False,  # no decompression: a small gzip body can inflate to gigabytes
            )
        except self._http_errors as exc:
            # Only the error's class is logged: a message can quote what the server sent back.
            raise self._unavailable(f"the request failed ({type(exc).__name__})") from None
        # Only the bodies of 200 and 400 answers mean anything here (RFC 7662 §2.2, §2.3).
        wanted = response.status in (200, 400)
        data = None
        try:
            data = response.read(MAX_RESPONSE_BYTES + 1) if wanted else b""
        except self._http_errors as exc:
            raise self._unavailable(f"the answer could not be read ({type(exc).__name__})") from None
        finally:
            if not wanted or data is None or len(data) > MAX_RESPONSE_BYTES:
                # The connection is closed, not reused: bytes left unread (or sent after a 204)
                # would be read as the next request's answer.
                response.close()
            response.release_conn()
        if len(data) > MAX_RESPONSE_BYTES:
            raise self._unavailable(f"the introspection answer is larger than {MAX_RESPONSE_BYTES} bytes")
        status = response.status
        return _Answer(status, data, response.headers.get("Retry-After") if status != 200 else None)

    def _request_for(self, credentials: Credentials) -> tuple[dict[str, str], bytes]:
        """The headers (never changed once built: copied to add to them) and the form after the
        token, for ``credentials``: built again only when the credentials change."""
        prepared = self._prepared
        if prepared is None or prepared[0] is not credentials:
            form = (("token_type_hint", "access_token"), *credentials.form)
            prepared = (
                credentials,
                {**_HEADERS, **credentials.headers},
                b"&" + urlencode(form).encode("ascii"),
            )
            self._prepared = prepared
        return prepared[1], prepared[2]

    def _json_object(self, body: bytes) -> dict[str, Any]:
        """The answer as one JSON object (RFC 7662 §2.2, RFC 8259 UTF-8), strictly."""
        try:  # bad UTF-8 or JSON, duplicates, NaN, deep nesting, not an object
            return parse_object(body, _DECODER, ValueError, what="introspection answer")
        except ValueError:
            raise self._unavailable("the introspection answer is not a strict JSON object") from None

    def _unavailable(
        self, reason: str, retry_after: str | None = None, *, level: int = logging.WARNING
    ) -> VerificationUnavailable:
        audit.security(
            "introspection_failed",
            {"issuer": self.issuer, "details": {"uri": self.endpoint, "reason": reason}},
            "token introspection at %s: %s",
            self.endpoint,
            reason,
            level=level,
        )
        return VerificationUnavailable(reason, retry_after=_retry_after(retry_after), cause="introspection")

    # -- the answer --------------------------------------------------------------------------------

    def _verified(self, claims: dict[str, Any]) -> VerifiedToken:
        """The checks of RFC 7662 §2.2 and RFC 9068 §4 on an answer's members."""
        if claims["active"] is not True:  # false: the JSON value true is the only yes
            raise InvalidToken("the token is not active")
        now = self._clock()
        exp = integer_claim(claims, "exp")
        nbf = integer_claim(claims, "nbf")
        integer_claim(claims, "iat")
        if exp is not None and now >= exp:
            raise InvalidToken("the token has expired")
        if nbf is not None and now < nbf:
            raise InvalidToken("the token is not valid yet")
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise InvalidToken("the token issuer is not accepted")
        token_type = claims.get("token_type")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() not in _ACCESS_TOKEN_TYPES
        ):
            raise InvalidToken("the token is not an access token")
        # Some servers (Ory Hydra) tell refresh tokens apart by token_use instead.
        if claims.get("token_use", "access_token") != "access_token":
            raise InvalidToken("the token is not an access token")
        if self.audience is not None and not _has_audience(claims.get("aud"), self.audience):
            raise InvalidToken("the token audience is not this server")
        client_id = string_claim(claims, "client_id", required=False)
        # RFC 9068 §2.2: a client-credentials token's subject is the client itself.
        subject = string_claim(claims, self.subject_claim, required=False) or client_id
        if subject is None:
            raise InvalidToken(f"the token has neither {self.subject_claim} nor client_id")
        # Compared, not added to: exp may be any JSON integer, 10**400 included.
        reuse_until = min(exp, now + self.cache_ttl) if exp is not None else now + self.cache_ttl
        verified = VerifiedToken(  # reads cnf, act, acr and auth_time strictly (claims.py)
            subject=subject,
            scopes=scopes_of(claims, self.scope_claim),
            org=org_of(claims, self.org_claim, self.issuer_org),
            client_id=client_id,
            expires_at=math.floor(reuse_until),
            claims=MappingProxyType(claims),
        )
        if verified.jkt is None and isinstance(token_type, str) and token_type.lower() == "dpop":
            # RFC 9449 §6.2: a DPoP token's answer carries the key it is bound to. Without one,
            # accepting it would turn it into a bearer token.
            raise InvalidToken(
                "the token is a DPoP token, but the answer names no key (cnf.jkt) to bind it to"
            )
        # RFC 9068 §2.2.1 applies to answers as to JWTs, with the JWT verifier's default leeway.
        check_auth_time(verified.auth_time, now, AUTH_TIME_LEEWAY)
        return verified


def _settle(outcome: _Outcome) -> VerifiedToken:
    """The outcome as a result or a fresh exception (each caller raises its own instance)."""
    if isinstance(outcome, VerifiedToken):
        return outcome
    if isinstance(outcome, _Refusal):
        raise InvalidToken(outcome.description)
    raise VerificationUnavailable(outcome.description, retry_after=outcome.retry_after, cause="introspection")


def _has_audience(aud: object, audience: str) -> bool:
    """RFC 7519 §4.1.3 / RFC 7662 §2.2: a string, or an array of strings one of which is ours."""
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and all(isinstance(a, str) for a in aud) and audience in aud


def _error_code(body: bytes) -> str | None:
    """The RFC 6749 §5.2 ``error`` of an error answer: a strict JSON object (as strict as an
    answer, duplicates and all) whose ``error`` is a string; None for anything else."""
    try:
        value = parse_object(body, _DECODER, ValueError, what="error answer")
    except ValueError:
        return None
    error = value.get("error")
    return error if isinstance(error, str) else None


def _retry_after(value: str | None) -> int:
    """The server's own ``Retry-After`` in seconds (RFC 9110 §10.2.3), within bounds, or 5."""
    if value is not None and value.isascii() and value.isdigit():
        return max(1, min(int(value), _MAX_RETRY_AFTER))
    return 5


# -- construction checks ---------------------------------------------------------------------------


def _text(name: str, value: object, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string" + (" or None" if optional else ""))
    return value


def _seconds(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'more than 0' if positive else '0 or more'}")
    return float(value)


def _count(name: str, value: object, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        raise ValueError(f"{name} must be an integer, {'1' if positive else '0'} or more")
    return value
