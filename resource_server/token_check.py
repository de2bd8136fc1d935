"""The guard's check of a token its cache does not hold: credentials → a verified, bound token.

Once per token (the guard caches what passes): the ``Authorization`` value parsed (RFC 6750 §2.1,
RFC 9449 §7), the token verified (an access token by the verifier, a capability token by its
own), and its binding checked (RFC 9449 §7.1, §7.2): a DPoP-bound token only under the DPoP
scheme, the DPoP scheme only with a bound token. The proof of a DPoP request is checked on every
request, cached token or not, by the guard itself.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .credentials import MalformedCredentials, access_token
from .denials import Denial, Refusals
from .dpop import DPoPVerifier
from .expiring import ExpiringCache
from .granted import Credential
from .telemetry import spans
from .tokens import InvalidToken, TokenVerifier, VerificationUnavailable, VerifiedToken
from .tokens.errors import WouldWait
from .tokens.issuers import uncached_verify

if TYPE_CHECKING:
    from .capability import CapabilityVerifier

__all__ = ["TokenCheck"]

log = logging.getLogger("resource_server")


class TokenCheck:
    """Verifies the token of a request whose ``Authorization`` value the guard has not cached,
    and caches the credential under that value when it is spelt canonically."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        capabilities: CapabilityVerifier | None,
        dpop: DPoPVerifier | None,
        dpop_required: bool,
        refusals: Refusals,
        credentials: ExpiringCache[str, Credential],
    ) -> None:
        self.verifier = verifier
        self.capabilities = capabilities
        self.dpop = dpop
        self.dpop_required = dpop_required
        self.refusals = refusals
        self._credentials = credentials
        # The guard keeps each verified token once, under its Authorization value: a verifier
        # that can skip its own cache is asked to (one entry per token, not two). Only such a
        # verifier (the library's JWT ones) can be told not to wait; any other may, always.
        uncached = uncached_verify(verifier)
        self._verify_token: Callable[[str], VerifiedToken] = uncached or verifier.verify
        self._verify_now: Callable[[str], VerifiedToken] | None = (
            functools.partial(uncached, wait=False) if uncached is not None else None
        )
        self._max_token_bytes = max(
            verifier.max_token_bytes, capabilities.max_token_bytes if capabilities else 0
        )

    def verified(
        self, authorization: str | None, token_elsewhere: bool, wait: bool = True
    ) -> tuple[Credential, str] | Denial | None:
        """Parse and verify a token the cache does not hold: (credential, raw token); None when
        the request carries no token. A credential is cached under its ``Authorization`` value.
        ``wait=False``: :class:`~resource_server.tokens.errors.WouldWait` rather than any wait
        on the network (a key-set fetch, discovery, introspection, a verifier of the app's)."""
        try:
            found = access_token(authorization, max_token_bytes=self._max_token_bytes)
        except MalformedCredentials as exc:
            return self.refusals.invalid_request(exc.description)
        except InvalidToken as exc:
            return self.refusals.invalid_token(exc.description)
        if found is not None and found[0] == "DPoP" and self.dpop is None:
            found = None  # RFC 9449 §7.1: a server without DPoP treats it as another scheme
        if token_elsewhere:
            # RFC 6750 §2: a client MUST NOT use more than one method; we accept the header only.
            return self.refusals.invalid_request(
                "send the access token in the Authorization header only"
                if found is None
                else "the access token was sent in more than one way"
            )
        if found is None:
            return None
        scheme, raw = found
        if self.capabilities is not None and self.capabilities.handles(raw):
            # A cheap prefix test: access tokens are never parsed as capabilities. Capabilities
            # live minutes and have their own verifier and clock: they are not cached here.
            if scheme != "Bearer":
                return self.refusals.invalid_token("capability tokens are bearer tokens", dpop=True)
            capability = self._verify(self.capabilities.verify, raw)
            return capability if type(capability) is Denial else (Credential(capability, None), raw)
        # Canonical when nothing but one space parts the scheme, spelt so, from the token:
        # then the request's own string is the key (no copy of the token is made to be kept).
        canonical = (
            authorization
            if authorization is not None
            and len(authorization) == len(scheme) + 1 + len(raw)
            and authorization.startswith(scheme)
            else f"{scheme} {raw}"
        )
        if canonical is not authorization:
            # Another spelling ("bearer", padded) of a token the cache may hold under its
            # canonical one: parsed strictly above, it is the same credential under that scheme.
            try:
                cached = self._credentials.get(canonical)
            except Exception:  # a failing clock: verification fails the same way, as a 401
                cached = None
            if cached is not None:
                return cached, raw
        if wait:
            verify = self._verify_token
        elif self._verify_now is not None:
            verify = self._verify_now
        else:
            raise WouldWait("a verifier that cannot be told not to wait")
        token = self._verify(verify, raw, dpop=scheme == "DPoP", traced=wait)
        if type(token) is Denial:
            return token
        jkt = token.jkt  # bound_key(token): the cnf.jkt read strictly when it was verified
        if scheme == "Bearer" and (jkt is not None or self.dpop_required):
            # RFC 9449 §7.2: a bound token is not a bearer token; nor, when DPoP is required, is any.
            return self.refusals.invalid_token(
                "this token is DPoP-bound: send it with the DPoP scheme and a proof"
                if jkt is not None
                else "this resource requires DPoP-bound tokens"
            ).noting(token=token)
        if scheme == "DPoP" and jkt is None:
            return self.refusals.invalid_token("the token is not DPoP-bound (no cnf.jkt)", dpop=True).noting(
                token=token
            )
        credential = Credential(token, jkt)
        # Kept under the canonical spelling only: "bearer x", padded or folded forms are parsed
        # each time and then find it there, so one token cannot fill the cache with its
        # spellings, nor an entry grow past the token's own size limit.
        self._credentials.put(canonical, credential, token.expires_at)
        return credential, raw

    def _verify(
        self, verify: Callable[[str], VerifiedToken], raw: str, *, dpop: bool = False, traced: bool = True
    ) -> VerifiedToken | Denial:
        # A span: verifying a token new to the guard is work that can wait (keys, introspection).
        # Not an attempt told not to wait (``traced=False``): it either cannot wait, or gives up
        # at once and the attempt that may wait, in a worker thread, is the one traced.
        current = spans.span("resource_server.token.verify") if traced else spans.NO_SPAN
        if current is spans.NO_SPAN:  # no tracer would record it: no context to enter
            return self._answer(None, verify, raw, dpop)
        with current as span:
            return self._answer(span, verify, raw, dpop)

    def _answer(
        self, span: object, verify: Callable[[str], VerifiedToken], raw: str, dpop: bool
    ) -> VerifiedToken | Denial:
        try:
            return verify(raw)
        except InvalidToken as exc:
            spans.error(span, "invalid_token")
            # The reason (which may name what was expected) is the audit event's.
            refused = self.refusals.invalid_token(exc.description, dpop=dpop, reason=exc.reason)
            return refused.noting(issuer=getattr(exc, "issuer", None))
        except VerificationUnavailable as exc:
            spans.error(span, "temporarily_unavailable")
            return self.refusals.unavailable(exc)
        except WouldWait:  # no answer: the caller verifies again where it may wait
            raise
        except Exception:  # a verification bug or a key-fetch surprise is a 401, never a 500
            spans.error(span, "invalid_token")
            log.exception("unexpected error while verifying a token")
            return self.refusals.invalid_token("the token could not be verified", dpop=dpop)
