"""What the guard records of each request, at one point: the answer it returns.

A :class:`~resource_server.guard.Guard` (and every adapter through it) calls :meth:`Observer.begin`
before its pipeline and :meth:`Observer.end` with the :class:`~resource_server.guard.Granted` or
:class:`~resource_server.denials.Denial` it answers; an adapter's own refusals (a bad ``Host``, a
body it could not read, a path no route covers) go through :meth:`Observer.refused`. From these
come the metrics (:mod:`.metrics`: the authentication histogram, authorization attempts,
refusals, the token cache's hits and misses) and the audit events (:mod:`.audit`: one decision
per refusal, and per sampled allowed request; the security event a refusal is).

Without the OpenTelemetry API and with allowed requests not sampled, a granted request costs
``begin`` returning None and ``end`` two comparisons: nothing is allocated. A refusal builds its
event only when the audit logger is enabled or a hook is set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..denials import About, Denial
from ..granted import Granted
from ..tokens.errors import loggable
from . import audit, metrics
from .failures import failed
from .metrics import AUTHENTICATION_RESULT, ERROR_TYPE, ISSUER, SCHEME, method_attribute

if TYPE_CHECKING:
    from policy import Access, ScopeMap

    from ..capability import CapabilityVerifier
    from ..expiring import ExpiringCache
    from ..granted import Credential
    from ..tokens import VerifiedToken

__all__ = ["WARM", "Observer"]

#: What :meth:`Observer.begin` answers for a bearer token the guard had cached: counted, not timed.
WARM = 0.0
#: Refusals of a request whose credential was accepted: the decision said no.
_AUTHORIZATION_ERRORS = frozenset({"forbidden", "insufficient_scope", "insufficient_user_authentication"})
#: A 401 for a request without credentials (RFC 6750 §3.1: its challenge names no error).
_NO_CREDENTIALS = "unauthorized"
_NOTHING_KNOWN = About()
# The duration's attribute sets built so far (see Observer._attributes); bounded all the same.
_ATTRIBUTES: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}
_ATTRIBUTE_SETS = 256
_perf_counter = time.perf_counter


class Observer:
    """Records the requests of one guard. ``issuers`` are the configured issuers, the only
    values the ``resource_server.issuer`` attribute takes."""

    __slots__ = ("_cache", "_capabilities", "_default_scheme", "_dpop", "issuers")

    def __init__(
        self,
        *,
        cache: ExpiringCache[str, Credential],
        issuers: Iterable[str],
        dpop: bool,
        dpop_required: bool,
        capabilities: CapabilityVerifier | None,
    ) -> None:
        self._cache = cache
        self.issuers = frozenset(issuers)
        self._dpop = dpop
        self._default_scheme = "dpop" if dpop_required else "bearer"
        self._capabilities = capabilities
        metrics.current()  # loads the API, if installed, here rather than on a request
        metrics.track_cache(cache)

    # -- the guard's two calls ----------------------------------------------------------------------

    def begin(self, authorization: str | None, token_elsewhere: bool) -> float | None:
        """Before the pipeline: None when no metric is recorded, :data:`WARM` for a bearer token
        the guard has cached (a hit, not timed), else the time it starts."""
        found = metrics.active
        # Nothing to record to: no API, or the API's proxies while no SDK is set (they would
        # drop every point; counting for them cost 0.6 µs a warm request).
        if found is None or not found.live():
            return None
        try:
            if authorization is not None and not token_elsewhere:
                cached = self._cache.peek(authorization)
                if cached is not None:
                    found.cache_hits.add(())
                    if cached.jkt is None:
                        return WARM
                elif self._cacheable(authorization):
                    found.cache_misses.add(())
        except Exception:  # never a request's failure (telemetry.failures)
            failed("observer.begin")
        return _perf_counter()

    def end(
        self,
        begun: float | None,
        outcome: Granted | Denial,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
        scope_map: ScopeMap | None,
    ) -> Granted | Denial:
        """After the pipeline, with its answer (returned as it is) and the scope map it was
        decided on, if any. Every request whose credential was accepted is an authorization
        attempt: allowed, or refused by the decision (or the membership it rests on)."""
        try:
            if type(outcome) is Denial:
                self._refused(begun, outcome, route, method, authorization, org, scope_map)
            elif begun is not None or audit.sampler.every:
                self._granted(begun, outcome, route, method, authorization, org, scope_map)
        except Exception:  # never a request's failure (telemetry.failures)
            failed("observer.end")
        return outcome

    def refused(
        self,
        denial: Denial,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
    ) -> Denial:
        """An adapter's own refusal, made before or after the guard's pipeline: counted and
        audited like the guard's."""
        try:
            self._refused(None, denial, route, method, authorization, org, None)
        except Exception:  # never a request's failure (telemetry.failures)
            failed("observer.refused")
        return denial

    # -- inside ---------------------------------------------------------------------------------

    def _granted(
        self,
        begun: float | None,
        granted: Granted,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
        scope_map: ScopeMap | None,
    ) -> None:
        found = metrics.active
        if found is not None and begun is not None:
            if begun != WARM:
                token = granted.token
                found.duration.record(
                    _perf_counter() - begun,
                    self._attributes(
                        self._scheme_of(token, granted.source), "success", None, self._issuer(token)
                    ),
                )
            found.attempts.add((route, method_attribute(method), "success"))
        sampler = audit.sampler
        if sampler.every and sampler.take() and audit.wanted():  # every == 0: none sampled
            facts = self._facts(
                granted.token,
                granted.access,
                granted.source,
                None,
                route,
                method,
                authorization,
                org,
                scope_map,
            )
            facts["outcome"] = "allowed"
            audit.decision(
                facts, "allowed %s %s for %s", facts["method"], route or "-", loggable(facts["subject"])
            )

    def _refused(
        self,
        begun: float | None,
        denial: Denial,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
        scope_map: ScopeMap | None,
    ) -> None:
        about = denial.about or _NOTHING_KNOWN
        token = about.token
        error = denial.error
        authenticated = error in _AUTHORIZATION_ERRORS
        issuer = (
            self._issuer(token)
            if token is not None
            else (about.issuer if about.issuer in self.issuers else None)
        )
        found = metrics.active
        if found is not None:
            if begun is not None:
                if begun != WARM:
                    result = "success" if authenticated else "none" if error == _NO_CREDENTIALS else "failure"
                    scheme = self._scheme(denial, about, authorization)
                    attributes = self._attributes(
                        scheme, result, error if result == "failure" else None, issuer
                    )
                    found.duration.record(_perf_counter() - begun, attributes)
                if authenticated:
                    found.attempts.add((route, method_attribute(method), "failure"))
            found.refusals.add((denial.status, error, about.cause, issuer, route))
        event = about.event
        if event is not None and audit.wanted(True):
            facts = self._refusal_facts(denial, about, route, method, authorization, org, scope_map)
            facts["details"] = (
                {"jkt": token.jkt} if event == "dpop_proof_replayed" and token is not None else None
            )
            audit.security(
                event,
                facts,
                "%s: %s on %s %s (%s)",
                event,
                loggable(facts["subject"]),
                facts["method"],
                route or "-",
                denial.reason,
            )
        if audit.wanted():
            facts = self._refusal_facts(denial, about, route, method, authorization, org, scope_map)
            audit.decision(
                facts, "%d %s %s %s: %s", denial.status, error, facts["method"], route or "-", denial.reason
            )

    def _refusal_facts(
        self,
        denial: Denial,
        about: About,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
        scope_map: ScopeMap | None,
    ) -> dict[str, Any]:
        facts = self._facts(
            about.token, about.access, about.source, denial, route, method, authorization, org, scope_map
        )
        facts.update(
            outcome="refused",
            status=denial.status,
            error=denial.error,
            reason=denial.reason or None,
            cause=about.cause,
        )
        if facts["issuer"] is None:
            facts["issuer"] = about.issuer
        return facts

    def _facts(
        self,
        token: VerifiedToken | None,
        access: Access | None,
        source: str | None,
        denial: Denial | None,
        route: str | None,
        method: str | None,
        authorization: str | None,
        org: str | None,
        scope_map: ScopeMap | None,
    ) -> dict[str, Any]:
        """The keys every event shares, from what is known of the request."""
        subject = access.subject if access is not None else token.subject if token is not None else None
        held = access.scopes if access is not None else token.scopes if token is not None else None
        required = scope_map.alternatives(method) if scope_map is not None and method is not None else None
        scheme = (
            self._scheme_of(token, source or "token")
            if token is not None or source in ("session", "viewer")
            else self._scheme(denial, _NOTHING_KNOWN, authorization)
            if denial is not None
            else None
        )
        return {
            "subject": audit.text(subject),
            "org": audit.request_text(org),
            "token_org": audit.text(token.org) if token is not None else None,
            "client_id": audit.text(token.client_id) if token is not None else None,
            "issuer": audit.text(token.issuer) if token is not None else None,
            "actors": audit.actors_of(token) if token is not None else None,
            "route": route,
            "method": audit.request_text(method, 32),
            "required": [sorted(alternative) for alternative in required] if required else None,
            "scopes": sorted(held) if held is not None else None,
            "source": scheme,
            "token_id": _token_id(token, authorization),
        }

    def _scheme(self, denial: Denial | None, about: About, authorization: str | None) -> str:
        """The kind of credential a refusal was about, from what it knows or the header."""
        if about.token is not None:
            return self._scheme_of(about.token, about.source or "token")
        if about.source in ("session", "viewer"):
            return about.source
        if authorization is None:
            return self._default_scheme
        scheme, _, raw = authorization.strip().partition(" ")
        lowered = scheme.lower()
        if lowered == "dpop" and self._dpop:
            return "dpop"
        capabilities = self._capabilities
        if lowered == "bearer" and capabilities is not None and capabilities.handles(raw.strip()):
            return "capability"
        return "bearer"

    @staticmethod
    def _scheme_of(token: VerifiedToken | None, source: str) -> str:
        if token is None:
            return source if source in ("session", "viewer") else "bearer"
        if token.kind == "capability":
            return "capability"
        return "dpop" if token.jkt is not None else "bearer"

    def _issuer(self, token: VerifiedToken | None) -> str | None:
        """The token's (verified) issuer when it is a configured one: never a value that could
        add a series."""
        if token is None:
            return None
        issuer = token.issuer
        return issuer if issuer in self.issuers else None

    @staticmethod
    def _attributes(scheme: str, result: str, error: str | None, issuer: str | None) -> dict[str, Any]:
        """The duration's attributes, one dict per set of values (their values come from fixed
        sets and the configured issuers): built once, not per new token."""
        key = (scheme, result, error, issuer)
        attributes = _ATTRIBUTES.get(key)
        if attributes is None:
            attributes = {SCHEME: scheme, AUTHENTICATION_RESULT: result}
            if error is not None:
                attributes[ERROR_TYPE] = error
            if issuer is not None:
                attributes[ISSUER] = issuer
            if len(_ATTRIBUTES) < _ATTRIBUTE_SETS:
                _ATTRIBUTES[key] = attributes
        return attributes

    def _cacheable(self, authorization: str) -> bool:
        """Whether this ``Authorization`` value carries a token the guard's cache would hold (a
        bearer or DPoP access token, not a capability token, which is never cached)."""
        scheme = authorization[:6].lower()
        if scheme.startswith("dpop"):
            return self._dpop
        if scheme != "bearer":
            return False
        capabilities = self._capabilities
        return capabilities is None or not capabilities.handles(authorization[7:].strip())


def _token_id(token: VerifiedToken | None, authorization: str | None) -> str | None:
    """The ``jti`` of a verified token, else the token itself, as :func:`audit.token_id`."""
    if token is not None:
        jti = token.claims.get("jti")
        if isinstance(jti, str) and jti:
            return audit.token_id(jti)
    if authorization is None:
        return None
    raw = authorization.strip().partition(" ")[2].strip()
    return audit.token_id(raw) if raw else None
