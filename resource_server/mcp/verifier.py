"""The MCP SDK's ``TokenVerifier`` protocol over this package's strict verification."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from mcp.server.auth.provider import AccessToken

from ..async_guard import run_in_thread
from ..dpop import bound_key
from ..expiring import ExpiringCache
from ..tokens import InvalidToken, TokenVerifier, VerificationUnavailable, VerifiedToken

__all__ = ["McpTokenVerifier"]

log = logging.getLogger("resource_server")


class McpTokenVerifier:
    """The MCP SDK's ``TokenVerifier`` protocol over one of this library's verifiers
    (:class:`~resource_server.tokens.JWTVerifier`, ``IntrospectionVerifier``,
    ``TrustedIssuers``), for ``MCPServer(token_verifier=McpTokenVerifier(verifier),
    auth=AuthSettings(...))``.

    A token is verified with every check of the wrapped verifier and mapped to the SDK's
    ``AccessToken``: ``client_id`` (empty when the token names none), ``scopes`` (the token's,
    sorted), ``expires_at``, ``subject``, ``claims`` and ``resource`` (the token's ``aud`` when
    it is one string; from a list, ``resource`` when given and listed, else the one entry the
    verifier was configured with). Verified tokens are kept (``cache_size``, each until its
    ``exp`` on the verifier's clock) and answered on the event loop; a new token is verified in
    a worker thread, as verification may wait on the network.

    The protocol can only say valid or not: a token that cannot be verified now (the
    authorization server unreachable: ``VerificationUnavailable``) is ``None`` too, which the
    SDK answers with ``401``, and is logged at ERROR. :func:`protect_mcp` answers ``503`` with
    ``Retry-After`` instead, so the client keeps a token that may be good.
    """

    #: The class of the tokens made: the SDK's, or a subclass of it (FastMCP's carries more).
    access_token_type: ClassVar[type[AccessToken]] = AccessToken

    def __init__(
        self, verifier: TokenVerifier, *, resource: str | None = None, cache_size: int = 4096
    ) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise TypeError(
                "verifier must be a resource_server verifier (JWTVerifier, IntrospectionVerifier, ...)"
            )
        self.verifier = verifier
        self.resource = resource
        self.clock: Callable[[], float] = getattr(verifier, "clock", time.time)
        self._audiences = _configured_audiences(verifier)
        self._cache: ExpiringCache[str, AccessToken] = ExpiringCache(cache_size, self.clock)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's ``AccessToken``, or None when it is not valid (or cannot be checked now)."""
        try:
            return await self.checked(token)
        except VerificationUnavailable as exc:
            log.error("the token cannot be verified now (answered as invalid): %s", exc.description)
            return None

    async def checked(self, token: str) -> AccessToken | None:
        """The token's ``AccessToken``, None when it is not valid, or ``VerificationUnavailable``
        when it cannot be checked now: for hooks that can answer that with a ``503``."""
        if type(token) is not str or not token:
            return None
        try:
            cached = self._cache.get(token)
        except Exception:  # a failing clock: verification fails the same way
            cached = None
        if cached is not None:
            return cached
        try:
            verified: VerifiedToken = await run_in_thread(self.verifier.verify, token)
        except InvalidToken as exc:
            log.info("401 invalid_token: %s", exc.reason)  # the reason may name what was expected
            return None
        except VerificationUnavailable:
            raise
        except Exception:  # a verification bug is a refusal, never a 500
            log.exception("unexpected error while verifying a token")
            return None
        if bound_key(verified) is not None:
            # RFC 9449 §7.2: a DPoP-bound token is not a bearer token, and the SDK's bearer auth
            # checks no proof. protect_mcp accepts it with its proof.
            log.info("401 invalid_token: a DPoP-bound token sent to bearer-only auth")
            return None
        access_token = self.access_token_type(
            token=token,
            client_id=verified.client_id or "",
            scopes=sorted(verified.scopes),
            expires_at=verified.expires_at,
            resource=self._resource_of(verified.claims.get("aud")),
            subject=verified.subject,
            claims=dict(verified.claims),
        )
        self._cache.put(token, access_token, verified.expires_at)
        return access_token

    def _resource_of(self, aud: object) -> str | None:
        if type(aud) is str:
            return aud
        if type(aud) is not list:
            return None
        if self.resource is not None and self.resource in aud:
            return self.resource
        known = [entry for entry in aud if type(entry) is str and entry in self._audiences]
        return known[0] if len(known) == 1 else None


def _configured_audiences(verifier: Any) -> frozenset[str]:
    audiences = getattr(verifier, "audiences", None)
    if audiences is None:
        single = getattr(verifier, "audience", None)
        audiences = () if single is None else (single,)
    return frozenset(a for a in audiences if isinstance(a, str))
