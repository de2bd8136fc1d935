"""What the guard answers when a request may proceed, and what it keeps per verified token:
:class:`Granted` and :class:`Credential`, shared by :class:`~resource_server.guard.Guard`,
:class:`~resource_server.async_guard.AsyncGuard` and the adapters.

The guard's answers are final classes (these two and :class:`~resource_server.denials.Denial`),
told apart with ``type(x) is Denial``: a type checker narrows a union with it both ways, as it
does with ``isinstance``, because no subclass can exist. It costs what ``x.__class__ is Denial``
did, about 12 ns; an ``isinstance`` that answers no costs about 27 ns (it then looks up
``__class__`` as well; CPython 3.11), and on the warm path most checks answer no.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from policy import Access

from .tokens import VerifiedToken

__all__ = ["Credential", "Granted"]


@final
@dataclass(frozen=True, slots=True)
class Granted:
    """The request may proceed with this access and token."""

    access: Access
    token: VerifiedToken | None  # None for a first-party session or a viewer context
    source: str = "token"  # "token", "session" (a person signed in here) or "viewer" (another service)
    #: Headers for the response, e.g. a fresh ``DPoP-Nonce`` (RFC 9449 §8.2) as the window turns.
    headers: tuple[tuple[str, str], ...] = ()


#: The most (org, role) grants remembered per cached credential; a token is used in few orgs.
GRANTS_PER_CREDENTIAL = 16


@final
@dataclass(slots=True)
class Credential:
    """A verified access token, cached under the exact ``Authorization`` value it came in, with
    the grants already assembled for it: (request org, member role) → :class:`Granted`.

    Nearly every token is used in one organization as one role, so the first grant is held in
    three fields and a dict is made only for a second (a dict with one entry and its key tuple
    cost some 280 bytes per cached token)."""

    token: VerifiedToken
    jkt: str | None  # the key a DPoP-bound token is bound to (cnf.jkt, RFC 9449 §6); None: bearer
    fresh_nonce: str | None = None  # a DPoP nonce to send back with this request's answer
    org: str | None = None  # the first grant's request org and role, and the grant
    role: str | None = None
    granted: Granted | None = None
    more: dict[tuple[str | None, str], Granted] | None = None  # the grants after the first

    def known(self, org: str | None, role: str) -> Granted | None:
        """The grant kept for (``org``, ``role``), or None."""
        granted = self.granted
        if granted is not None and role == self.role and org == self.org:
            return granted
        more = self.more
        return more.get((org, role)) if more is not None else None

    def keep(self, org: str | None, role: str, granted: Granted) -> None:
        """Remember ``granted`` for (``org``, ``role``), up to :data:`GRANTS_PER_CREDENTIAL`."""
        if self.granted is None:
            self.org, self.role, self.granted = org, role, granted
            return
        more = self.more
        if more is None:
            more = self.more = {}
        if len(more) < GRANTS_PER_CREDENTIAL - 1:
            more[(org, role)] = granted

    def with_nonce(self, nonce: str) -> Credential:
        """This credential for one answer that carries a fresh DPoP nonce (RFC 9449 §8.2)."""
        return Credential(self.token, self.jkt, nonce, self.org, self.role, self.granted, self.more)
