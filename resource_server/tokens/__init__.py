"""Credential → :class:`VerifiedToken`, framework-free: strict compact JWS parsing
(:mod:`~resource_server.tokens.jws`), JWK Sets and their fetching (:mod:`~resource_server.tokens.keys`),
JWT access tokens (:mod:`~resource_server.tokens.jwt`), opaque tokens through introspection
(:mod:`~resource_server.tokens.introspection`), several issuers (:mod:`~resource_server.tokens.issuers`)."""

from __future__ import annotations

from .errors import InvalidToken, VerificationUnavailable
from .introspection import IntrospectionVerifier
from .issuers import TrustedIssuers
from .jwt import JWTVerifier
from .verified import TokenVerifier, VerifiedToken

__all__ = [
    "IntrospectionVerifier",
    "InvalidToken",
    "JWTVerifier",
    "TokenVerifier",
    "TrustedIssuers",
    "VerificationUnavailable",
    "VerifiedToken",
]
