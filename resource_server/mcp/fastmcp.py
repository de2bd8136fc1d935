"""FastMCP's own ``auth=`` with this library's token verification: :class:`FastMCPTokenVerifier`.

FastMCP 4 takes an ``AuthProvider`` (``FastMCP(..., auth=...)``), not the MCP SDK's
``TokenVerifier`` protocol that :class:`~resource_server.mcp.McpTokenVerifier` implements; this
module adapts the same verification to it. For roles, the org in the URL and per-tool scopes
refused with real ``403`` responses, wrap ``mcp.http_app()`` with
:func:`~resource_server.mcp.protect_mcp` instead (docs/mcp.md, "FastMCP servers").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

try:
    from fastmcp.server.auth import AccessToken, TokenVerificationError, TokenVerifier
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
    from starlette.authentication import AuthCredentials, AuthenticationError
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection
    from starlette.responses import Response
    from starlette.routing import Route
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("fastmcp", "resource_server.mcp.fastmcp", exc) from exc

from policy.scopes import scope_set

from ..denials import Refusals
from ..metadata import check_resource, metadata_document, metadata_url_for
from ..tokens import TokenVerifier as Verifier
from ..tokens import VerificationUnavailable
from .metadata import ResourceMetadata, authorization_servers_of
from .verifier import McpTokenVerifier

__all__ = ["FastMCPTokenVerifier"]


class FastMCPTokenVerifier(TokenVerifier):
    """FastMCP's ``TokenVerifier`` (an ``AuthProvider``) over one of this library's verifiers
    (:class:`~resource_server.tokens.JWTVerifier`, ``IntrospectionVerifier``,
    ``TrustedIssuers``): ``FastMCP("name", auth=FastMCPTokenVerifier(verifier, base_url=...))``.

    Tokens are verified and mapped as :class:`~resource_server.mcp.McpTokenVerifier` maps them
    (kept until their ``exp``, new ones verified in a worker thread, DPoP-bound ones refused:
    FastMCP's bearer auth checks no proof), into FastMCP's ``AccessToken``, so
    ``get_access_token()`` in a tool has the token's ``claims``, and FastMCP's own checks
    (``required_scopes``, ``auth=require_scopes(...)`` on a component) read its scopes.

    ``base_url`` is this server's public URL, as for FastMCP's providers: the resource is that URL
    followed by the MCP path (``http_app(path=...)``), and when it is given the RFC 9728 document
    for it is served at its well-known URL, which FastMCP then names in every challenge
    (``resource_metadata``): ``authorization_servers`` are those given, else the issuers the
    verifier accepts tokens from, and ``scopes_supported`` those given, else
    ``required_scopes``. Without ``base_url`` no document is served and challenges name none
    (``authorization_servers`` is then refused: nothing would publish it).

    ``required_scopes`` are needed by every request, as FastMCP's ``required_scopes`` are; a
    token without one of them is answered ``403 insufficient_scope`` by FastMCP.

    A token that cannot be verified now (the authorization server unreachable) raises FastMCP's
    ``TokenVerificationError`` (so a ``MultiAuth`` tries its other sources), which this provider's
    middleware answers with ``503`` and ``Retry-After``: the client keeps a token that may be
    good. Every misconfiguration is a ``ValueError`` here.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        base_url: str | None = None,
        authorization_servers: str | Collection[str] | None = None,
        required_scopes: Sequence[str] | None = None,
        scopes_supported: Collection[str] | None = None,
        cache_size: int = 4096,
    ) -> None:
        required = sorted(scope_set(required_scopes or (), what="required_scopes"))
        if base_url is not None:
            check_resource(base_url, "base_url", query=False)
            self._servers = authorization_servers_of(authorization_servers, verifier)
        elif authorization_servers is not None:
            raise ValueError(
                "authorization_servers is published in the RFC 9728 document, which needs base_url"
            )
        else:
            self._servers = ()
        supported = (
            required if scopes_supported is None else scope_set(scopes_supported, what="scopes_supported")
        )
        super().__init__(base_url=base_url, required_scopes=required)
        self._scopes_supported = sorted(supported)
        self._tokens = _Tokens(verifier, cache_size=cache_size)
        self._refusals = Refusals(realm="api", resource_metadata=None)

    @property
    def scopes_supported(self) -> list[str]:
        """The scopes the RFC 9728 document lists."""
        return list(self._scopes_supported)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's FastMCP ``AccessToken``; None when it is not valid; FastMCP's
        ``TokenVerificationError`` when it cannot be checked now."""
        try:
            found = await self._tokens.checked(token)
        except VerificationUnavailable as error:
            raise _Unavailable(error) from None
        return found if isinstance(found, AccessToken) else None

    def set_mcp_path(self, mcp_path: str | None) -> None:
        super().set_mcp_path(mcp_path)
        # A token issued for several audiences names this resource as its AccessToken.resource.
        self._tokens.resource = None if self._resource_url is None else str(self._resource_url)

    def get_routes(self, mcp_path: str | None = None) -> list[Route]:
        """The RFC 9728 document of the resource at ``mcp_path`` (§3.1: at the well-known URL
        made from the resource's), when ``base_url`` was given."""
        self.set_mcp_path(mcp_path)
        resource = self._tokens.resource
        if resource is None:
            return []
        document = metadata_document(
            resource=resource, scopes_supported=self._scopes_supported, authorization_servers=self._servers
        )
        return [Route(urlsplit(metadata_url_for(resource)).path, ResourceMetadata(document))]

    def get_middleware(self) -> list[Middleware]:
        """FastMCP's bearer authentication, with a token that cannot be checked now answered
        ``503`` (FastMCP's own middleware lets ``TokenVerificationError`` through as a 500)."""
        return [
            Middleware(AuthenticationMiddleware, backend=_Backend(self), on_error=self._unavailable),
            Middleware(AuthContextMiddleware),
        ]

    def _unavailable(self, connection: HTTPConnection, error: AuthenticationError) -> Response:
        assert isinstance(error, _CannotVerify)  # the backend raises no other
        denial = self._refusals.unavailable(error.error)
        return Response(denial.body, status_code=denial.status, headers=dict(denial.headers))


# -- inside ---------------------------------------------------------------------------------------


class _Tokens(McpTokenVerifier):
    """The verification of :class:`~resource_server.mcp.McpTokenVerifier`, making FastMCP's
    ``AccessToken`` (the SDK's with every claim)."""

    access_token_type = AccessToken


class _Unavailable(TokenVerificationError):
    """FastMCP's "cannot be verified now", carrying this library's reason and ``Retry-After``."""

    def __init__(self, error: VerificationUnavailable) -> None:
        super().__init__(error.description)
        self.error = error


class _CannotVerify(AuthenticationError):
    """What the backend raises for :class:`_Unavailable`, for the middleware's ``on_error``."""

    def __init__(self, error: VerificationUnavailable) -> None:
        super().__init__(error.description)
        self.error = error


class _Backend(BearerAuthBackend):
    """The SDK's bearer backend, with a token that cannot be verified now raised as the
    authentication error that the middleware's ``on_error`` answers (Starlette lets any other
    exception through, which is a 500)."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        try:
            found: tuple[AuthCredentials, AuthenticatedUser] | None = await super().authenticate(conn)
        except _Unavailable as unavailable:
            raise _CannotVerify(unavailable.error) from None
        return found
