"""Adapters around the ``policy`` engine: token verification, web frameworks, storage, clients.

``policy`` decides; this package does the I/O. The Flask extension lives in
:mod:`resource_server.flask`, the WSGI middleware in :mod:`resource_server.wsgi`.

``resource_server.__version__`` is the installed distribution's version, read from its metadata
when first asked for (``importlib.metadata`` takes milliseconds to import, which
``import resource_server`` does not pay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    __version__: str
else:
    # Defined only at run time: a module-level __getattr__ would let a type checker accept any
    # attribute of this package, a misspelt name included.

    def __getattr__(name: str) -> str:
        """``__version__`` (PEP 562), from the package metadata on first access, then kept.
        A source tree that was never installed has no metadata, so no version: that is an
        ``AttributeError`` (``getattr(resource_server, "__version__", None)`` is ``None``)."""
        missing = f"module {__name__!r} has no attribute {name!r}"
        if name != "__version__":
            raise AttributeError(missing)
        from importlib.metadata import PackageNotFoundError, version

        from .checks import DISTRIBUTION

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            raise AttributeError(f"{missing}: the {DISTRIBUTION} distribution is not installed") from None
        globals()["__version__"] = found
        return found
