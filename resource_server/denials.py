"""Refusals, ready to send: status, ``WWW-Authenticate`` and a JSON body, per the status table in
DESIGN.md, for Bearer (RFC 6750 §3) and DPoP (RFC 9449 §7.1, §9, §12.2) requests alike."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, final

from policy import Access, bearer_challenge, dpop_challenge

from .bodies import BodyError
from .credentials import MalformedHost
from .telemetry import audit
from .tokens.errors import VerificationUnavailable
from .tokens.verified import VerifiedToken

__all__ = ["About", "Denial", "Refusals"]

log = logging.getLogger("resource_server")

# RFC 6750 §3: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ); no quote, no backslash.
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
#: The most characters of a description a challenge carries; the JSON body keeps it whole.
_CHALLENGE_DESCRIPTION = 256


def _challenge_description(description: str) -> str | None:
    """``description`` as an ``error_description`` may carry it (RFC 6750 §3): every other
    character (non-ASCII, controls, ``"`` and ``\\``) replaced with ``?``, at most 256
    characters; None when nothing is left. A custom verifier's text is then as safe in a header
    as the library's own, and the challenge builders stay strict for everything else."""
    shown = _NOT_IN_DESCRIPTION.sub("?", description[:_CHALLENGE_DESCRIPTION])
    return shown or None


#: A 503's cause is an ERROR event the first time, then at most once per this many seconds (with
#: how many refusals had none), beside each refusal's decision event at INFO: a flood of requests
#: that cannot be checked (made-up kids while a refetch waits, a replay cache down) writes one
#: ERROR a minute, not one a request.
_ERROR_EVERY = 60.0
#: Distinct causes remembered; beyond, new ones share one line per interval (a custom verifier's
#: descriptions could be anything).
_CAUSES = 64
_OTHER_CAUSES = "(other causes)"
#: The description of an RFC 9470 refusal, in the challenge and the body.
_STEP_UP_DESCRIPTION = "a stronger or more recent authentication of the person is required"
#: Retry-After when a custom verifier's ``retry_after`` is not a number; and its upper bound.
_RETRY_AFTER, _MAX_RETRY_AFTER = 5, 86400


@dataclass(slots=True)
class _Cause:
    logged_at: float
    not_logged: int = 0


class _ErrorLines:
    """Which 503 causes get an ERROR line now (a cause is the error's description)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._causes: dict[str, _Cause] = {}
        self._lock = threading.Lock()

    def due(self, cause: str) -> int | None:
        """None when ``cause`` had its ERROR line less than an interval ago (this one is counted);
        else the number of refusals for it that had none since that line."""
        try:
            now = float(self._clock())
        except Exception:  # a failing clock: every line at ERROR rather than a 500
            return 0
        with self._lock:
            if cause not in self._causes and len(self._causes) >= _CAUSES:
                cause = _OTHER_CAUSES
            found = self._causes.get(cause)
            if found is not None and 0 <= now - found.logged_at < _ERROR_EVERY:
                found.not_logged += 1
                return None
            self._causes[cause] = _Cause(now)
            return 0 if found is None else found.not_logged


#: What a 503 can wait on (``VerificationUnavailable.cause``); anything else is "other".
_CAUSES_KNOWN = frozenset({"jwks", "discovery", "introspection", "replay_store", "replay_full"})


def _cause(error: VerificationUnavailable) -> str:
    """The error's ``cause`` when it is one of the known ones: a metric attribute's value, so a
    custom verifier's own value cannot add series."""
    cause = getattr(error, "cause", None)
    return cause if cause in _CAUSES_KNOWN else "other"


def _retry_after(seconds: Any) -> str:
    """``Retry-After`` in whole seconds (RFC 9110 §10.2.3), 1 to a day; 5 for a custom
    verifier's value that is not a finite number. ``seconds`` is whatever the verifier gave
    (hence ``Any``): ``int()`` decides what it is worth."""
    try:
        return str(min(max(1, int(seconds)), _MAX_RETRY_AFTER))
    except (TypeError, ValueError, OverflowError):
        return str(_RETRY_AFTER)


@final
@dataclass(frozen=True, slots=True)
class About:
    """What a refusal is about, for metrics and audit events (:mod:`resource_server.telemetry`);
    never sent. ``token`` is the verified token refused (with ``access``, what it had here, when
    that was assembled), ``source`` the kind of credential (``session``, ``viewer``) when no token
    says it, ``issuer`` the configured issuer whose verifier refused a token that did not verify,
    ``cause`` what a 503 could not reach (:class:`~resource_server.tokens.VerificationUnavailable`),
    and ``event`` the security event the refusal is (``org_binding_violation``, ...)."""

    token: VerifiedToken | None = None
    access: Access | None = None
    source: str | None = None
    issuer: str | None = None
    cause: str | None = None
    event: str | None = None


_NOTHING_KNOWN = About()


@final
@dataclass(frozen=True, slots=True)
class Denial:
    """A refusal, ready to send: status, ``WWW-Authenticate`` value and a JSON body.

    ``reason`` is the sentence for logs and tooling (``flask scopes explain``); it is never sent.
    ``extra_headers`` carries ``Retry-After`` (a 503) or ``DPoP-Nonce`` (RFC 9449 §9).
    ``about`` (:class:`About`) is for telemetry; it takes no part in comparisons.
    """

    status: int
    error: str
    description: str
    www_authenticate: str | None
    reason: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()
    about: About | None = field(default=None, compare=False, repr=False)

    def noting(self, **facts: Any) -> Denial:
        """This refusal, with ``facts`` (fields of :class:`About`) added to what it is about."""
        return replace(self, about=replace(self.about or _NOTHING_KNOWN, **facts))

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.error, "error_description": self.description}).encode()

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        if self.www_authenticate is not None:
            headers.append(("WWW-Authenticate", self.www_authenticate))
        headers.extend(self.extra_headers)
        return headers


class Refusals:
    """Builds the :class:`Denial` for each row of the status table, with the challenges this
    server's configuration calls for: a ``Bearer`` one, a ``DPoP`` one (with ``algs``) when DPoP
    is accepted, and only the ``DPoP`` one when it is required. ``clock`` paces the ERROR lines
    of 503s (one per cause a minute)."""

    def __init__(
        self,
        *,
        realm: str,
        resource_metadata: str | None,
        dpop_algs: Sequence[str] | None = None,
        dpop_required: bool = False,
        scope_on_401: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if dpop_required and not dpop_algs:
            raise ValueError("dpop_required=True needs a DPoP verifier (dpop=DPoPVerifier(...))")
        self.realm = realm
        self.resource_metadata = resource_metadata
        self.dpop_algs = tuple(dpop_algs or ())
        self.dpop_required = dpop_required
        # The scope a client should ask for first, named in 401 challenges (RFC 6750 §3; the MCP
        # authorization specification asks servers to, so clients start with the least scope).
        self.scope_on_401 = scope_on_401
        self._error_lines = _ErrorLines(clock)
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        self.no_credentials = Denial(
            401,
            "unauthorized",
            "DPoP-bound credentials are required" if dpop_required else "bearer credentials are required",
            self._challenges(dpop=dpop_required, scope=scope_on_401),
            "the request carries no credentials",
        )

    def _challenges(
        self,
        *,
        dpop: bool,
        error: str | None = None,
        error_description: str | None = None,
        scope: str | Iterable[str] | None = None,
        **extra: str,
    ) -> str:
        """The ``WWW-Authenticate`` value: for a DPoP request (or a server that requires DPoP)
        the DPoP challenge; for a Bearer one the Bearer challenge, followed by a bare DPoP
        challenge when DPoP is accepted too and there were no credentials (RFC 9449 §7.1).
        ``extra`` are further parameters (RFC 9470 §3's ``acr_values`` and ``max_age``)."""
        description = _challenge_description(error_description) if error_description is not None else None
        if dpop or self.dpop_required:
            return dpop_challenge(
                algs=self.dpop_algs,
                realm=self.realm,
                error=error,
                error_description=description,
                scope=scope,
                resource_metadata=self.resource_metadata,
                **extra,
            )
        bearer = bearer_challenge(
            realm=self.realm,
            error=error,
            error_description=description,
            scope=scope,
            resource_metadata=self.resource_metadata,
            **extra,
        )
        if self.dpop_algs and error is None:
            return f"{bearer}, {dpop_challenge(algs=self.dpop_algs, realm=self.realm)}"
        return bearer

    def invalid_request(self, description: str) -> Denial:
        return Denial(
            400,
            "invalid_request",
            description,
            bearer_challenge(
                realm=self.realm,
                error="invalid_request",
                error_description=_challenge_description(description),
            ),
            description,
        )

    def invalid_token(self, description: str, *, dpop: bool = False, reason: str | None = None) -> Denial:
        """``description`` is sent; ``reason`` (for logs and ``explain`` only) defaults to it.
        A description that is not a string (a custom verifier's ``InvalidToken(exc)``) is not
        sent: its text could hold anything, the token too."""
        if not isinstance(description, str):
            description = "the token is not valid"
        challenge = self._challenges(
            dpop=dpop, error="invalid_token", error_description=description, scope=self.scope_on_401
        )
        return Denial(401, "invalid_token", description, challenge, reason or description)

    def invalid_dpop_proof(self, description: str) -> Denial:
        """RFC 9449 §7.1: the proof, not the token, is the problem."""
        challenge = self._challenges(dpop=True, error="invalid_dpop_proof", error_description=description)
        return Denial(401, "invalid_dpop_proof", description, challenge, description)

    def use_dpop_nonce(self, nonce: str) -> Denial:
        """RFC 9449 §9: retry with this nonce."""
        description = "resend the request with a DPoP proof carrying the nonce in DPoP-Nonce"
        challenge = self._challenges(dpop=True, error="use_dpop_nonce", error_description=description)
        return Denial(401, "use_dpop_nonce", description, challenge, description, (("DPoP-Nonce", nonce),))

    def insufficient_scope(self, scope: str | Iterable[str], reason: str, *, dpop: bool) -> Denial:
        challenge = self._challenges(dpop=dpop, error="insufficient_scope", scope=scope)
        return Denial(
            403, "insufficient_scope", "the token lacks the scope this request needs", challenge, reason
        )

    def insufficient_user_authentication(
        self, acr_values: Sequence[str], max_age: int | None, reason: str, *, dpop: bool
    ) -> Denial:
        """RFC 9470 §3: the token is good and holds the scopes, but the person must authenticate
        again, with one of ``acr_values`` and/or within ``max_age`` seconds: ``401`` with those
        in the challenge (``acr_values`` space-separated), so the client asks the authorization
        server for such a token (RFC 9470 §4) instead of throwing this one away."""
        extra = {"acr_values": " ".join(acr_values)} if acr_values else {}
        if max_age is not None:
            extra["max_age"] = str(max_age)
        challenge = self._challenges(
            dpop=dpop,
            error="insufficient_user_authentication",
            error_description=_STEP_UP_DESCRIPTION,
            **extra,
        )
        return Denial(401, "insufficient_user_authentication", _STEP_UP_DESCRIPTION, challenge, reason)

    @staticmethod
    def forbidden(reason: str, public: str) -> Denial:
        return Denial(403, "forbidden", public, None, reason)

    @staticmethod
    def bad_body(error: BodyError) -> Denial:
        """``400`` for a request body the library had to read and could not accept."""
        return Denial(400, "invalid_request", error.description, None, error.description)

    @staticmethod
    def bad_host(error: MalformedHost) -> Denial:
        """``400`` for a ``Host`` that is not a valid host[:port] (RFC 9110 §7.2, RFC 9112 §3.2),
        or a request whose URL cannot be named: a request error, so no challenge."""
        return Denial(400, "invalid_request", error.description, None, error.description)

    def unavailable(
        self,
        error: VerificationUnavailable,
        public: str = "the credentials cannot be verified right now; retry later",
    ) -> Denial:
        """``503`` with ``Retry-After`` when a credential cannot be checked now (the authorization
        server or a shared store is unreachable). Not the client's fault and not the
        credential's: no challenge, nothing for the client to throw away. ``public`` is the
        body's description. Each refusal is a decision event; the error's description is also a
        security event at ERROR (``verification_unavailable``), once a minute per description,
        counting the refusals since the last."""
        cause = error.description if isinstance(error.description, str) else "(no description)"
        about = About(cause=_cause(error), issuer=getattr(error, "issuer", None))
        not_logged = self._error_lines.due(cause)
        if not_logged is not None:
            audit.security(
                "verification_unavailable",
                {
                    "cause": about.cause,
                    "issuer": about.issuer,
                    "details": {"reason": cause, "since": not_logged},
                },
                "503 temporarily_unavailable: %s"
                + (" (and %d more since the last line)" if not_logged else ""),
                cause,
                *((not_logged,) if not_logged else ()),
                level=logging.ERROR,
            )
        return Denial(
            503,
            "temporarily_unavailable",
            public,
            None,
            cause,
            (("Retry-After", _retry_after(error.retry_after)),),
            about,
        )
