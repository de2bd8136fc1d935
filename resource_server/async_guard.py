"""The guard's pipeline for async adapters (ASGI, FastAPI, MCP): the same steps as
:class:`~resource_server.guard.Guard`, awaited where they may wait.

A token the cache holds is checked on the event loop, with no thread hop: a dict lookup, the
membership call and the decision. So is a new token whose verification cannot wait: its keys in
hand (a JWK Set held in memory, or fetched and fresh and holding its ``kid``), and a DPoP proof
checked against memory; that is a signature, as long as a thread hop, which would only add to it.
Anything that may wait on the network (a JWKS fetch, discovery, introspection, a verifier of the
application's, a DPoP proof checked against a shared replay cache) runs in a worker thread, so
one slow authorization server does not stall every other request on the loop. ``membership`` may be a plain function or a coroutine function (give a coroutine
function if it does I/O: a plain one runs on the loop).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from policy import ScopeMap

from .denials import Denial
from .dpop import DPoPRequest
from .guard import Credential, Granted, Guard
from .state import MemoryReplayCache
from .tokens.errors import WouldWait

__all__ = ["AsyncGuard", "run_in_thread"]


async def run_in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a worker thread, under whichever async library runs the loop
    (anyio, which Starlette and FastAPI bring, covers asyncio and trio)."""
    try:
        import anyio.to_thread
    except ImportError:  # plain asyncio without anyio
        import asyncio

        return await asyncio.to_thread(function, *args)
    return await anyio.to_thread.run_sync(function, *args)


class AsyncGuard:
    """Wraps a :class:`Guard` for adapters that run on an event loop."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._awaits_membership = inspect.iscoroutinefunction(
            guard.membership
        ) or inspect.iscoroutinefunction(
            getattr(guard.membership, "__call__", None)  # noqa: B004 (an object with an async __call__)
        )
        # A DPoP proof checked against memory costs a signature on the loop, no waiting; one
        # checked against a shared store (Redis) waits on the network, so it goes to a thread.
        self._proof_waits = guard.dpop is not None and not isinstance(
            guard.dpop.replay_cache, MemoryReplayCache
        )

    async def membership(self, subject: str, org: str | None) -> str | None:
        role = self.guard.membership(subject, org)
        if role is None or isinstance(role, str):  # a plain function's answer: nothing to await
            return role
        if self._awaits_membership or inspect.isawaitable(role):
            return await role
        return role  # an application bug, refused by the guard as a role without scopes

    async def credential(
        self, authorization: str | None, token_elsewhere: bool, dpop: DPoPRequest | None = None
    ) -> Credential | Denial | None:
        """:meth:`Guard.credential`, on the loop when nothing can wait: a cached token, or a new
        one whose keys are in hand (no key-set fetch, discovery or introspection call) with, for
        a DPoP request, a proof checked against memory; in a worker thread otherwise."""
        cached = self.guard.cached(authorization) if not token_elsewhere else None
        return await self._credential(authorization, token_elsewhere, dpop, cached)

    async def _credential(
        self,
        authorization: str | None,
        token_elsewhere: bool,
        dpop: DPoPRequest | None,
        cached: Credential | None,
    ) -> Credential | Denial | None:
        # ``cached``: what the guard's cache answered for ``authorization`` (asked once).
        guard = self.guard
        if cached is not None:
            if cached.jkt is None or not self._proof_waits:
                assert authorization is not None  # only a header value is ever cached
                return guard.proved(cached, authorization[5:] if cached.jkt else "", dpop)
            verify = guard.credential  # the proof may wait: the whole check in a thread
        else:
            verify = guard.uncached
        if dpop is None or not self._proof_waits:
            try:
                return verify(authorization, token_elsewhere, dpop, wait=False)
            except WouldWait:
                pass
        result: Credential | Denial | None = await run_in_thread(verify, authorization, token_elsewhere, dpop)
        return result

    async def authenticate(
        self,
        *,
        authorization: str | None,
        token_elsewhere: bool,
        org: str | None,
        dpop: DPoPRequest | None = None,
        session: Callable[[], Awaitable[str | None]] | None = None,
        method: str | None = None,
        route: str | None = None,
    ) -> Granted | Denial:
        """Who is asking, as which member of ``org``. ``session`` (awaited only without a
        token) returns the subject of a first-party session, whose access is the role's scopes.
        Given the request's ``method`` (and ``route``), the answer is recorded as one request's,
        as :meth:`Guard.authenticate <resource_server.guard.Guard.authenticate>` does."""
        if method is not None:
            observer = self.guard.observer
            begun = observer.begin(authorization, token_elsewhere)
            outcome = await self.authenticate(
                authorization=authorization,
                token_elsewhere=token_elsewhere,
                org=org,
                dpop=dpop,
                session=session,
            )
            return observer.end(begun, outcome, route, method, authorization, org, None)
        guard = self.guard
        cached = guard.cached(authorization) if not token_elsewhere else None
        if cached is not None and cached.jkt is None:
            # The warm path, on the loop: a cached bearer token needs no thread and no proof,
            # only its member's role.
            return guard.grant(cached, org, await self.membership(*guard.role_of(cached, org)))
        credential = await self._credential(authorization, token_elsewhere, dpop, cached)
        if credential is None:
            subject = await session() if session is not None else None
            if subject is None:
                return self.guard.refusals.no_credentials
            role = await self.membership(subject, org)
            return self.guard.session_grant(subject, org, role)
        if type(credential) is Denial:
            return credential
        role = await self.membership(*self.guard.role_of(credential, org))
        return self.guard.grant(credential, org, role)

    async def authorize(
        self,
        *,
        authorization: str | None,
        token_elsewhere: bool,
        method: str,
        scope_map: ScopeMap,
        org: str | None,
        dpop: DPoPRequest | None = None,
        session: Callable[[], Awaitable[str | None]] | None = None,
        route: str | None = None,
    ) -> Granted | Denial:
        """The whole pipeline: :meth:`authenticate`, then ``policy.decide``; the answer recorded
        with ``route``, the route template the adapter matched (:mod:`resource_server.telemetry`)."""
        observer = self.guard.observer
        begun = observer.begin(authorization, token_elsewhere)
        granted = await self.authenticate(
            authorization=authorization, token_elsewhere=token_elsewhere, org=org, dpop=dpop, session=session
        )
        outcome = self.guard.decision(granted, method, scope_map)
        return observer.end(begun, outcome, route, method, authorization, org, scope_map)
