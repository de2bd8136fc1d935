"""Stateless DPoP nonces (RFC 9449 §8, §9): every worker that holds the secret issues and accepts
the same nonces, with no state to share. :class:`~resource_server.dpop.DPoPVerifier` asks for
them in proofs when it is given a :class:`DPoPNonces`."""

from __future__ import annotations

import hashlib
import hmac
import math
import struct

from .dpop_claims import same_ascii
from .tokens.jws import b64encode

__all__ = ["DPoPNonces"]


class DPoPNonces:
    """Stateless DPoP nonces (RFC 9449 §9): an HMAC over a time window, so every worker that
    holds ``secret`` issues and accepts the same nonces without sharing state.

    A nonce names its window (``floor(now / ttl)``) and is accepted during that window and the
    next one, so it lives between ``ttl`` and ``2 * ttl`` seconds; :meth:`current` is the one to
    hand out. ``secret`` is at least 32 bytes (``ValueError`` otherwise).
    """

    def __init__(self, secret: bytes, *, ttl: int = 300) -> None:
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise ValueError("the DPoP nonce secret must be at least 32 bytes")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise ValueError("ttl must be a positive number of seconds")
        self._secret = secret
        self.ttl = ttl

    def _for_window(self, window: int) -> str:
        packed = struct.pack(">Q", window)
        mac = hmac.new(self._secret, b"dpop-nonce:" + packed, hashlib.sha256).digest()[:16]
        return b64encode(packed + mac)

    def current(self, now: float) -> str:
        return self._for_window(math.floor(now / self.ttl))

    def is_current(self, nonce: object, now: float) -> bool:
        return same_ascii(nonce, self.current(now))

    def accepts(self, nonce: object, now: float) -> bool:
        """Whether ``nonce`` was issued for this window or the previous one (constant time)."""
        if not isinstance(nonce, str) or len(nonce) != 32 or not nonce.isascii():
            return False
        window = math.floor(now / self.ttl)
        # Both compared, always, so timing does not say which window matched.
        this, previous = (hmac.compare_digest(nonce, self._for_window(w)) for w in (window, window - 1))
        return this or previous
