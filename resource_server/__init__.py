"""Adapters around the ``policy`` engine: token verification, web frameworks, storage, clients.

``policy`` decides; this package does the I/O. The Flask extension lives in
:mod:`resource_server.flask`, the WSGI middleware in :mod:`resource_server.wsgi`.
"""

from __future__ import annotations

from .credentials import MalformedCredentials
from .dpop import InvalidDPoPProof
from .tokens import (
    IntrospectionVerifier,
    InvalidToken,
    JWTVerifier,
    TrustedIssuers,
    VerificationUnavailable,
    VerifiedToken,
)
from .tokens.keys import KeySetError

__all__ = [
    "IntrospectionVerifier",
    "InvalidDPoPProof",
    "InvalidToken",
    "JWTVerifier",
    "KeySetError",
    "MalformedCredentials",
    "TrustedIssuers",
    "VerificationUnavailable",
    "VerifiedToken",
]
