"""Who is asking and with which scopes: :class:`Access`, and the one place org binding is checked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .actors import Actor, Actors
from .scopes import ScopeHierarchy

__all__ = ["Access", "AccessError", "OrgMismatch", "assemble_access"]


class AccessError(Exception):
    """Base class for refusals while assembling a request's access."""


class OrgMismatch(AccessError):
    """The credential is bound to one organization and the request names another.

    Adapters answer it with ``401 invalid_token``: the token is not valid for this resource.
    """

    def __init__(self, token_org: str, request_org: str) -> None:
        super().__init__("the token is bound to a different organization than the one in the URL")
        self.token_org = token_org
        self.request_org = request_org


@dataclass(frozen=True, slots=True)
class Access:
    """The assembled authority of one request.

    ``role_scopes`` are the scopes of the caller's member role in ``org``; ``token_scopes`` are the
    credential's scopes, or ``None`` for a first-party session; ``scopes`` is what the request may
    actually exercise. With a :class:`~policy.scopes.ScopeHierarchy`, all three are expanded.

    For a delegated request (RFC 8693), ``actors`` is the token's actor chain, the current actor
    first (``()`` when nobody acts for the subject), and ``actor_ceiling`` the scopes this server
    lets the current actor exercise (``None``: no ceiling applies), already applied to ``scopes``.
    ``acr`` and ``auth_time`` say how and when the person last authenticated (RFC 9068 §2.2.1,
    OpenID Connect Core §2), when the token says.
    """

    subject: str
    org: str | None
    role_scopes: frozenset[str]
    token_scopes: frozenset[str] | None
    scopes: frozenset[str]
    actors: tuple[Actor, ...] = ()
    actor_ceiling: frozenset[str] | None = None
    acr: str | None = None
    auth_time: int | None = None

    @property
    def is_session(self) -> bool:
        """Whether this is first-party session access (no token narrows the role)."""
        return self.token_scopes is None

    @property
    def actor(self) -> Actor | None:
        """The current actor (RFC 8693 §4.1: the outermost ``act``), or None without delegation."""
        return self.actors[0] if self.actors else None

    def has_scope(self, scope: str) -> bool:
        """Whether the effective scopes include ``scope``."""
        return scope in self.scopes


def _frozen(scopes: Iterable[str], what: str) -> frozenset[str]:
    if type(scopes) is frozenset:
        return scopes
    if isinstance(scopes, (str, bytes)):
        # A scope string here would be iterated character by character.
        raise TypeError(f"{what} must be a set of scope tokens, not a string; use policy.parse_scope")
    return frozenset(scopes)


def assemble_access(
    *,
    subject: str,
    role_scopes: Iterable[str],
    token_scopes: Iterable[str] | None,
    token_org: str | None = None,
    request_org: str | None = None,
    hierarchy: ScopeHierarchy | None = None,
    actors: Actors | None = None,
    actor_chain: Sequence[Actor] = (),
    acr: str | None = None,
    auth_time: int | None = None,
) -> Access:
    """Combine the member's role and the credential into the request's :class:`Access`.

    Effective scopes are ``role_scopes ∩ token_scopes``: a token can narrow what its subject may
    do, never widen it (RFC 6749 §3.3 lets the authorization server grant less than asked; the
    resource server still answers for the member's current role). ``token_scopes=None`` is
    first-party session authentication: the role's scopes apply as they are.

    Delegation (RFC 8693 §4.1): ``actor_chain`` is the token's actors, the current one first.
    With an ``actors`` policy (:class:`~policy.Actors`), the current actor's ceiling narrows the
    effective scopes once more (an actor the policy refuses gets none); without one, a delegated
    token is treated as any other. ``acr`` and ``auth_time`` are carried for the decision.

    Org binding: a credential minted for one organization (``token_org``) is refused on a URL
    that names another (``request_org``) by raising :class:`OrgMismatch`. This is the only place
    the rule is checked, so every adapter and token type gets it by calling this function.
    """
    if token_org is not None and request_org is not None and token_org != request_org:
        raise OrgMismatch(token_org, request_org)
    if not isinstance(subject, str) or not subject:
        raise TypeError("subject must be a non-empty string")
    role = role_scopes if type(role_scopes) is frozenset else _frozen(role_scopes, "role_scopes")
    token = (
        token_scopes
        if token_scopes is None or type(token_scopes) is frozenset
        else _frozen(token_scopes, "token_scopes")
    )
    # Most requests have no actor: no tuple is built and no element checked for them.
    chain = actor_chain if type(actor_chain) is tuple else tuple(actor_chain)
    if chain and not all(isinstance(actor, Actor) for actor in chain):
        raise TypeError("actor_chain must hold policy.Actor values, the current actor first")
    ceiling = None
    if actors is not None and chain:
        ceiling = actors.ceiling(chain[0].sub)
        if ceiling is None:  # an actor the policy does not know, and no default: nothing at all
            ceiling = frozenset()
    if hierarchy is not None:
        role = hierarchy.expand(role)
        token = None if token is None else hierarchy.expand(token)
        ceiling = None if ceiling is None else hierarchy.expand(ceiling)
    scopes = role if token is None else role & token
    if scopes == token:  # the token asks no more than the role holds: its own set, not a copy
        scopes = token
    return Access(  # positional, in the field order: a new token builds one of these
        subject,
        request_org if request_org is not None else token_org,
        role,
        token,
        scopes if ceiling is None else scopes & ceiling,
        chain,
        ceiling,
        acr,
        auth_time,
    )
