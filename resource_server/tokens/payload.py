"""A verified JWT's claims, kept as the payload's JSON text until something reads them.

The guard keeps every token it verified (up to its ``cache_size``, per worker) and reads only
the fields of :class:`~resource_server.tokens.VerifiedToken`; the claims themselves are for the
view (``current_token.claims``), which most requests never ask for. A parsed payload costs about
three times its JSON (a dict, a string or integer object per value), so the verifier hands over
the claims it checked and then :meth:`PayloadClaims.drop` s them: the JSON is parsed again, by
the same strict decoder, the first time anything reads a claim, and kept from then on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .jws import decoded_object

__all__ = ["PayloadClaims"]


class PayloadClaims(Mapping[str, Any]):
    """A read-only mapping of the claims in ``payload`` (the base64url-decoded JWT payload,
    verified), parsed when first read. ``parsed`` is the same claims already parsed (kept until
    :meth:`drop`); they must be what ``payload`` holds."""

    __slots__ = ("_parsed", "_payload")

    def __init__(self, payload: bytes, parsed: dict[str, Any] | None = None) -> None:
        self._payload = payload
        self._parsed = parsed

    def drop(self) -> None:
        """Forget the parsed claims until something reads one: only the JSON stays."""
        self._parsed = None

    def _claims(self) -> dict[str, Any]:
        parsed = self._parsed
        if parsed is None:
            # Verified when the token was: the same bytes parse the same way, strictly. Two
            # threads may both parse; each gets an equal dict, and one is kept.
            parsed = self._parsed = decoded_object(self._payload, "payload")
        return parsed

    def __getitem__(self, name: str) -> Any:
        return self._claims()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._claims())

    def __len__(self) -> int:
        return len(self._claims())

    def __contains__(self, name: object) -> bool:
        return name in self._claims()

    def get(self, name: str, default: Any = None) -> Any:
        return self._claims().get(name, default)

    def __repr__(self) -> str:
        return f"PayloadClaims({self._claims()!r})"
