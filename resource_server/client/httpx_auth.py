"""``StepUpAuth``: step-up as the auth of an ``httpx`` or an ``httpx2`` client, sync and async
(their ``Auth.auth_flow``: a generator that yields requests and receives responses). It exists
when either library is installed."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncGenerator, Awaitable, Generator, Iterable
from typing import TYPE_CHECKING, TypeAlias

from .dpop_key import DPoPKey
from .step_up import AsyncTokenProvider, Attempts, Retry, StepUp, sync_token

__all__ = ["HTTPX_AUTH_BASES", "StepUpAuth"]


def _auth_bases() -> tuple[type, ...]:
    """The ``Auth`` class of httpx and of httpx2, of each that is installed: StepUpAuth needs
    either, whichever the application (or the MCP SDK) uses. Both clients accept as auth only an
    instance of their own ``Auth`` (anything else callable is wrapped to run once, without
    retries), so StepUpAuth derives from each. Once: after ``httpx2.alias_httpx()``, ``import
    httpx`` is httpx2, and a class cannot list a base twice."""
    bases: list[type] = []
    for library in ("httpx", "httpx2"):
        try:
            bases.append(importlib.import_module(library).Auth)
        except ImportError:
            continue
    return tuple(dict.fromkeys(bases))


HTTPX_AUTH_BASES = _auth_bases()

if TYPE_CHECKING:
    import httpx
    import httpx2

    _HTTPXRequest: TypeAlias = "httpx.Request | httpx2.Request"
    _HTTPXResponse: TypeAlias = "httpx.Response | httpx2.Response"


if HTTPX_AUTH_BASES:
    # To a checker the class derives from Any, so it is accepted as the auth of an httpx and of an
    # httpx2 client alike, as it is at run time.
    class StepUpAuth(*HTTPX_AUTH_BASES):  # type: ignore[misc]  # its bases are known at run time only
        """``httpx.Client(auth=StepUpAuth(provider, scopes=...))``, or ``httpx2.Client``: the same
        class is an ``httpx.Auth`` and an ``httpx2.Auth`` (of each library installed), and its flows
        use only what the two libraries' requests and responses share. ``provider(scopes)`` returns an
        access token covering ``scopes`` (None: the provider's default); ``scopes`` are those the first
        token should cover, kept when stepping up. For an ``AsyncClient`` the provider may be async.

        With ``dpop_key`` (a :class:`DPoPKey`) the token is sent as ``DPoP`` with a fresh proof on
        every attempt (RFC 9449 §7.1); a provider that takes a ``dpop_key`` keyword is given the
        key, so it can ask its authorization server for a token bound to ``dpop_key.jkt``.

        A provider with ``acr_values`` and ``max_age`` parameters can have the person authenticate
        again (RFC 9470 §4): on a ``401 insufficient_user_authentication`` it is called as
        ``provider(scopes, acr_values=..., max_age=...)``, once per request."""

        # The libraries honour this only in the base flows, which the two below replace: they read
        # the body themselves. Still true, for whoever inspects it.
        requires_request_body = True

        def __init__(
            self,
            token_provider: AsyncTokenProvider,
            *,
            max_retries: int = 1,
            scopes: Iterable[str] | None = None,
            dpop_key: DPoPKey | None = None,
        ) -> None:
            self._state = StepUp(token_provider, max_retries, scopes, dpop_key)

        def sync_auth_flow(self, request: _HTTPXRequest) -> Generator[_HTTPXRequest, _HTTPXResponse, None]:
            state = self._state
            request.read()  # held, so that a retry can send it again
            token = state.token or state.remember(sync_token(state.ask(state.scopes)), state.scopes)
            attempts = state.start(str(request.url))
            while True:
                sent_nonce = state.authorize(request.headers, request.method, str(request.url), token)
                response = yield request
                retry = _after(attempts, response, sent_nonce)
                if retry is None:
                    return
                response.read()
                if retry.new_token:
                    token = state.remember(
                        sync_token(state.ask(retry.scopes, retry.authentication)), retry.scopes
                    )

        async def async_auth_flow(
            self, request: _HTTPXRequest
        ) -> AsyncGenerator[_HTTPXRequest, _HTTPXResponse]:
            state = self._state
            await request.aread()
            token = state.token or state.remember(await _maybe_await(state.ask(state.scopes)), state.scopes)
            attempts = state.start(str(request.url))
            while True:
                sent_nonce = state.authorize(request.headers, request.method, str(request.url), token)
                response = yield request
                retry = _after(attempts, response, sent_nonce)
                if retry is None:
                    return
                await response.aread()
                if retry.new_token:
                    token = state.remember(
                        await _maybe_await(state.ask(retry.scopes, retry.authentication)), retry.scopes
                    )


def _after(attempts: Attempts, response: _HTTPXResponse, sent_nonce: str | None) -> Retry | None:
    """What to do after an httpx or httpx2 response: their headers and URLs have the same API.
    The client follows redirects below the auth flow, which sees only the last response; its
    ``history`` holds the ones before (and this flow's earlier attempts)."""
    headers = response.headers
    return attempts.after(
        [str(hop.request.url) for hop in (*response.history, response)],
        response.status_code,
        headers.get_list("www-authenticate"),
        headers.get("dpop-nonce"),
        sent_nonce,
    )


async def _maybe_await(token: str | Awaitable[str]) -> str:
    return await token if inspect.isawaitable(token) else token
