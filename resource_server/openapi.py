"""The OpenAPI security scheme (OpenAPI 3.1 §4.8.27) that the Flask and FastAPI adapters describe
their tokens with, chosen from what the application configured and never from a guessed endpoint
(``<issuer>/token`` is wrong for Keycloak, Entra ID and many others):

1. ``token_url`` given: an ``oauth2`` scheme with the client credentials flow (RFC 6749 §4.4), or
   the authorization code flow (§4.1) when ``authorization_url`` is given too;
2. ``openid_connect_url`` given, or a :class:`~resource_server.tokens.JWTVerifier` that discovers
   its issuer's metadata (``discover=True``): an ``openIdConnect`` scheme at that document (by
   default the issuer's OpenID Connect Discovery 1.0 §4 URL), where tools such as Swagger UI read
   the endpoints themselves;
3. otherwise an ``http`` scheme: ``bearer`` (RFC 6750), or ``DPoP`` when the resource accepts
   DPoP-bound tokens only (RFC 9449 §7.1).

Each operation then lists the scopes of each alternative of its scope map. For ``oauth2`` and
``openIdConnect`` schemes these are scopes in OpenAPI 3.0 and 3.1 alike; for an ``http`` scheme
OpenAPI 3.1 calls them role names, and OpenAPI 3.0 wants the list empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .tokens import JWTVerifier
from .tokens.discovery import metadata_uris

__all__ = ["security_scheme", "with_scopes"]


def security_scheme(
    verifier: object,
    *,
    token_url: str | None = None,
    authorization_url: str | None = None,
    openid_connect_url: str | None = None,
    authorization_servers: Sequence[str] = (),
    dpop_required: bool = False,
) -> dict[str, Any]:
    """The security scheme object for the rules above (its flows' ``scopes`` left empty: see
    :func:`with_scopes`). ``ValueError`` for endpoints that contradict each other."""
    for name, value in (
        ("token_url", token_url),
        ("authorization_url", authorization_url),
        ("openid_connect_url", openid_connect_url),
    ):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a URL")
    if authorization_url is not None and token_url is None:
        raise ValueError(
            "authorization_url needs token_url too: the authorization code flow uses both (RFC 6749 §4.1)"
        )
    if token_url is not None and openid_connect_url is not None:
        raise ValueError("give token_url (an oauth2 scheme) or openid_connect_url, not both")
    if token_url is not None:
        if authorization_url is not None:
            flow = {"authorizationUrl": authorization_url, "tokenUrl": token_url, "scopes": {}}
            return {"type": "oauth2", "flows": {"authorizationCode": flow}}
        return {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {}}}}
    if openid_connect_url is None and isinstance(verifier, JWTVerifier) and verifier.discovers:
        openid_connect_url = metadata_uris(verifier.issuer)[1]
    if openid_connect_url is not None:
        return {"type": "openIdConnect", "openIdConnectUrl": openid_connect_url}
    scheme = {"type": "http", "scheme": "DPoP" if dpop_required else "bearer"}
    if authorization_servers:
        scheme["description"] = "An OAuth 2.0 access token from " + " or ".join(authorization_servers)
    return scheme


def with_scopes(scheme: dict[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """``scheme`` with ``scopes`` listed in each of its OAuth 2.0 flows (a copy)."""
    if "flows" not in scheme:
        return dict(scheme)
    listed = {scope: "" for scope in scopes}
    flows = {name: {**flow, "scopes": dict(listed)} for name, flow in scheme["flows"].items()}
    return {**scheme, "flows": flows}
