"""Credential → :class:`VerifiedToken`, framework-free: strict compact JWS parsing
(:mod:`~resource_server.tokens.jws`), JWK Sets and their fetching (:mod:`~resource_server.tokens.keys`),
JWT access tokens (:mod:`~resource_server.tokens.jwt`)."""

from __future__ import annotations

from .errors import InvalidToken, VerificationUnavailable
from .issuers import TrustedIssuers
from .jwt import JWTVerifier
from .verified import TokenVerifier, VerifiedToken

__all__ = [
    "InvalidToken",
    "JWTVerifier",
    "TokenVerifier",
    "TrustedIssuers",
    "VerificationUnavailable",
    "VerifiedToken",
]
