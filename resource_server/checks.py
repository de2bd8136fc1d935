"""The start-up checks every adapter runs on its configuration, so that a configuration that
cannot work fails when the application starts, with an error saying what to change, rather than
as refusals on the first requests.

- :func:`check_scopes_granted`: a scope map naming a scope that no role grants (``ValueError``);
- :func:`check_sync_membership`: a coroutine function given to a synchronous adapter (``TypeError``);
- :func:`missing_extra`: an adapter imported without its optional dependencies (``ImportError``);
- :func:`authorization_servers`: the RFC 9728 ``authorization_servers`` a verifier implies.

Each refusal is also a security event (``misconfiguration_refused``, :mod:`resource_server.telemetry`).
This module imports no optional dependency, so any adapter can import it first.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

from policy import Roles, ScopeMap

from .telemetry import audit

__all__ = [
    "ASYNC_ADAPTERS",
    "authorization_servers",
    "check_scopes_granted",
    "check_sync_membership",
    "is_async_callable",
    "missing_extra",
    "ungranted_scopes",
]

#: The distribution name, as ``pip install`` spells it.
DISTRIBUTION = "scoped-resource-server"
#: The adapters that await a coroutine function's answer.
ASYNC_ADAPTERS = ("resource_server.asgi", "resource_server.fastapi", "resource_server.mcp")


def ungranted_scopes(roles: Roles, scope_maps: Iterable[tuple[str, ScopeMap]]) -> list[str]:
    """One sentence per scope that a scope map names and no role grants, for ``(where, map)``
    pairs (``where`` names the map: a route, a tool). The scopes a request may exercise are the
    token's intersected with the member role's, so an alternative needing such a scope can never
    be met: the map refuses what it appears to allow (a typo in the map, or a role left out)."""
    granted = roles.all_scopes
    return [
        f"{where} requires {scope}, which no role grants"
        for where, scope_map in scope_maps
        for scope in sorted(scope_map.scopes - granted)
    ]


def check_scopes_granted(roles: Roles, scope_maps: Iterable[tuple[str, ScopeMap]]) -> None:
    """``ValueError`` listing every scope the maps name and no role grants (see
    :func:`ungranted_scopes`). Every adapter calls it when it is given a scope map, so the
    mistake fails at start-up in all of them alike."""
    found = ungranted_scopes(roles, scope_maps)
    if found:
        reason = "; ".join(found) + ": grant the scope to a role in Roles, or correct the scope map"
        raise ValueError(audit.misconfigured("scope maps", reason))


def is_async_callable(function: object) -> bool:
    """Whether calling ``function`` returns an awaitable to wait for: a coroutine function, or
    an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 (an object with an async __call__)
    )


def check_sync_membership(membership: object, adapter: str) -> None:
    """``TypeError`` for a ``membership`` coroutine function given to ``adapter``, a synchronous
    adapter: it would call it without awaiting the answer, and refuse every request."""
    if is_async_callable(membership):
        reason = (
            f"membership is a coroutine function, which {adapter} cannot await (it is synchronous): "
            "give a plain function, or serve the app with an async adapter: " + ", ".join(ASYNC_ADAPTERS)
        )
        raise TypeError(audit.misconfigured(adapter, reason))


def missing_extra(extra: str, adapter: str, error: ModuleNotFoundError) -> ImportError:
    """The error to raise when ``adapter`` is imported without a dependency of its ``extra``:
    it says what to install. Raise it ``from`` the original error."""
    # The package to install: for "mcp.server", mcp (an import of a submodule names it).
    missing = (error.name or "a dependency").partition(".")[0]
    return ImportError(
        f"{adapter} needs {missing}, which is not installed: pip install '{DISTRIBUTION}[{extra}]'",
        name=error.name,
    )


def authorization_servers(configured: str | Sequence[str] | None, verifier: object) -> tuple[str, ...]:
    """RFC 9728 ``authorization_servers``: ``configured`` when given (one URL or several; empty
    for none), else the issuers ``verifier`` accepts tokens from: a
    :class:`~resource_server.tokens.TrustedIssuers`' ``issuers``, the ``issuer`` of a
    :class:`~resource_server.tokens.JWTVerifier` or of an
    :class:`~resource_server.tokens.IntrospectionVerifier` given one; none for a verifier that
    names no issuer."""
    if configured is not None:
        return (configured,) if isinstance(configured, str) else tuple(configured)
    issuers = getattr(verifier, "issuers", None)
    if issuers is not None:
        return tuple(issuers)
    issuer = getattr(verifier, "issuer", None)
    return (issuer,) if isinstance(issuer, str) and issuer else ()
