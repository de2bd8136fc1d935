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

from dataclasses import dataclass, field
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


@final
@dataclass(slots=True)
class Credential:
    """A verified access token, cached under the exact ``Authorization`` value it came in, with
    the grants already assembled for it: (request org, member role) → :class:`Granted`."""

    token: VerifiedToken
    jkt: str | None  # the key a DPoP-bound token is bound to (cnf.jkt, RFC 9449 §6); None: bearer
    grants: dict[tuple[str | None, str], Granted] = field(default_factory=dict)
    fresh_nonce: str | None = None  # a DPoP nonce to send back with this request's answer
