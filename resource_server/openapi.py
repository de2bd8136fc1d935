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

What an alternative asks beyond its scopes (a :class:`policy.Requirement`: how recently and how
strongly the person authenticated, RFC 9470; which actors may act for them, RFC 8693) has no
place in a security requirement object, so an operation with such alternatives carries the
specification extension :data:`CONDITIONS` (``x-authorization-conditions``): the conditional
alternatives, in declaration order, each ``{"scopes": [...]}`` with ``acr_values`` (any one),
``max_age`` (seconds) and ``actors`` (``[]``: no agent may act for the person) when it sets them.
A client reads there what a ``401 insufficient_user_authentication`` would ask of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from policy import Requirement, ScopeMap

from .tokens import JWTVerifier
from .tokens.discovery import metadata_uris

__all__ = ["CONDITIONS", "conditions", "requirement_object", "security_scheme", "with_scopes"]

#: The operation extension listing the alternatives that ask more than scopes.
CONDITIONS = "x-authorization-conditions"


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


def requirement_object(requirement: Requirement) -> dict[str, Any]:
    """One alternative as :data:`CONDITIONS` (and ``scopes routes --json``) lists it: its scopes,
    and the conditions it sets."""
    found: dict[str, Any] = {"scopes": sorted(requirement.scopes)}
    if requirement.acr_values:
        found["acr_values"] = list(requirement.acr_values)
    if requirement.max_age is not None:
        found["max_age"] = requirement.max_age
    if requirement.actors is not None:
        found["actors"] = sorted(requirement.actors)
    return found


def conditions(scope_maps: Iterable[ScopeMap], method: str) -> list[dict[str, Any]]:
    """The :data:`CONDITIONS` of ``method`` under ``scope_maps`` (several when an operation has
    several requirements that must all hold): every alternative with conditions, once, in
    declaration order; ``[]`` when none has any."""
    found: list[dict[str, Any]] = []
    for scope_map in scope_maps:
        for requirement in scope_map.requirements(method) or ():
            described = requirement_object(requirement)
            if requirement.conditional and described not in found:
                found.append(described)
    return found
