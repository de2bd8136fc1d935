"""Clients that step up by themselves: send a token; on ``403 insufficient_scope`` ask for one that
also covers the advertised scopes and retry once; on ``401 invalid_token`` fetch a fresh one once.

``StepUpAuth`` is an ``httpx.Auth`` (sync and async clients); ``RequestsStepUpAuth`` does the same
for ``requests``. Neither imports Flask. The challenge is read with :func:`policy.parse_challenges`,
so several challenges in one ``WWW-Authenticate`` value, or across several lines, are fine: the
Bearer one is used (RFC 9110 §11.6.1, RFC 6750 §3).

Bodies are replayed on retry. httpx reads the request body before the first attempt
(``requires_request_body``), so even streamed bodies can be resent, at the cost of holding them in
memory. With requests, a body that cannot be replayed (a file or a generator) is not retried: the
first response is returned as it is.

Neither HTTP library is required: ``StepUpAuth`` exists when httpx is installed,
``RequestsStepUpAuth`` when requests is, and :class:`InsufficientScope`,
:func:`insufficient_scope` and :func:`bearer_challenge_of` need neither. Importing a class whose
library is missing raises an ``ImportError`` that names the library.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any

from policy import ChallengeSyntaxError, InvalidScope, parse_challenges, parse_scope

# Each adapter needs only its own library: a requests user need not install httpx, nor the reverse.
try:
    import httpx
except ImportError:
    httpx = None  # type: ignore[assignment]
try:
    import requests
except ImportError:
    requests = None  # type: ignore[assignment]

#: The adapter classes, by the library each one needs.
_NEEDS = {"StepUpAuth": "httpx", "RequestsStepUpAuth": "requests"}

__all__ = [
    "InsufficientScope",
    *(["RequestsStepUpAuth"] if requests is not None else []),
    *(["StepUpAuth"] if httpx is not None else []),
    "bearer_challenge_of",
    "insufficient_scope",
]

TokenProvider = Callable[[frozenset[str] | None], str]
AsyncTokenProvider = Callable[[frozenset[str] | None], "str | Awaitable[str]"]


class InsufficientScope(Exception):
    """A ``403`` with ``error="insufficient_scope"`` (RFC 6750 §3.1), for callers who handle it."""

    def __init__(
        self, scope: frozenset[str], resource_metadata: str | None, error_description: str | None
    ) -> None:
        super().__init__(f"the request needs the scopes: {' '.join(sorted(scope)) or '(not advertised)'}")
        self.scope = scope
        self.resource_metadata = resource_metadata
        self.error_description = error_description


def bearer_challenge_of(header_values: Iterable[str]) -> Mapping[str, str] | None:
    """The parameters of the first Bearer challenge among ``WWW-Authenticate`` values, or None
    (also for a header that does not parse: a broken challenge is no instruction to follow)."""
    try:
        challenges = parse_challenges(list(header_values))
    except ChallengeSyntaxError:
        return None
    return next((c.params for c in challenges if c.is_scheme("Bearer")), None)


def insufficient_scope(status: int, header_values: Iterable[str]) -> InsufficientScope | None:
    """The :class:`InsufficientScope` a response carries, or None."""
    if status != 403:
        return None
    params = bearer_challenge_of(header_values)
    if params is None or params.get("error") != "insufficient_scope":
        return None
    try:
        scope = parse_scope(params.get("scope", ""))
    except InvalidScope:
        scope = frozenset()
    return InsufficientScope(scope, params.get("resource_metadata"), params.get("error_description"))


class _StepUp:
    """What both adapters share: the current token and scopes, and the retry decision."""

    def __init__(
        self, token_provider: AsyncTokenProvider, max_retries: int, scopes: Iterable[str] | None
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.token_provider = token_provider
        self.max_retries = max_retries
        self.token: str | None = None
        self.scopes: frozenset[str] | None = None if scopes is None else frozenset(scopes)
        self._lock = threading.Lock()

    def next_scopes(self, status: int, header_values: Iterable[str]) -> tuple[bool, frozenset[str] | None]:
        """Whether to retry, and with which scopes to ask for the new token."""
        if status == 401:
            params = bearer_challenge_of(header_values)
            return (params is not None and params.get("error") == "invalid_token", self.scopes)
        denied = insufficient_scope(status, header_values)
        if denied is None or not denied.scope:
            return False, None
        wanted = (self.scopes or frozenset()) | denied.scope
        # Asking again for what we already hold cannot help: give the 403 to the caller.
        return wanted != self.scopes, wanted

    def remember(self, token: str, scopes: frozenset[str] | None) -> str:
        with self._lock:
            self.token, self.scopes = token, scopes
        return token


if httpx is not None:

    class StepUpAuth(httpx.Auth):
        """``httpx.Client(auth=StepUpAuth(provider, scopes=...))``. ``provider(scopes)`` returns an
        access token covering ``scopes`` (None: the provider's default); ``scopes`` are those the first
        token should cover, kept when stepping up. For ``httpx.AsyncClient`` the provider may be async."""

        requires_request_body = True  # read before the first attempt, so a retry can resend it

        def __init__(
            self,
            token_provider: AsyncTokenProvider,
            *,
            max_retries: int = 1,
            scopes: Iterable[str] | None = None,
        ) -> None:
            self._state = _StepUp(token_provider, max_retries, scopes)

        def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            state = self._state
            token = state.token or state.remember(_sync(state.token_provider(state.scopes)), state.scopes)
            for attempt in range(state.max_retries + 1):
                request.headers["Authorization"] = f"Bearer {token}"
                response = yield request
                retry, scopes = state.next_scopes(
                    response.status_code, response.headers.get_list("www-authenticate")
                )
                if not retry or attempt == state.max_retries:
                    return
                response.read()
                token = state.remember(_sync(state.token_provider(scopes)), scopes)

        async def async_auth_flow(self, request: httpx.Request):  # type: ignore[override]
            state = self._state
            token = state.token or state.remember(
                await _maybe_await(state.token_provider(state.scopes)), state.scopes
            )
            for attempt in range(state.max_retries + 1):
                request.headers["Authorization"] = f"Bearer {token}"
                response = yield request
                retry, scopes = state.next_scopes(
                    response.status_code, response.headers.get_list("www-authenticate")
                )
                if not retry or attempt == state.max_retries:
                    return
                await response.aread()
                token = state.remember(await _maybe_await(state.token_provider(scopes)), scopes)


def _sync(token: str | Awaitable[str]) -> str:
    if inspect.isawaitable(token):
        raise TypeError("an async token provider needs httpx.AsyncClient")
    return token


async def _maybe_await(token: str | Awaitable[str]) -> str:
    return await token if inspect.isawaitable(token) else token


if requests is not None:

    class RequestsStepUpAuth(requests.auth.AuthBase):
        """``session.auth = RequestsStepUpAuth(provider)``: the same behaviour for ``requests``."""

        def __init__(
            self, token_provider: TokenProvider, *, max_retries: int = 1, scopes: Iterable[str] | None = None
        ) -> None:
            self._state = _StepUp(token_provider, max_retries, scopes)

        def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
            state = self._state
            token = state.token or state.remember(state.token_provider(state.scopes), state.scopes)
            prepared.headers["Authorization"] = f"Bearer {token}"
            attempts = {"left": state.max_retries}
            prepared.register_hook("response", lambda r, **kw: self._retry(r, attempts, **kw))
            return prepared

        def _retry(
            self, response: requests.Response, attempts: dict[str, int], **send_kwargs: Any
        ) -> requests.Response:
            state = self._state
            while attempts["left"] > 0:
                # requests folds repeated header lines into one comma-joined value; the parser splits it.
                values = (
                    [response.headers["WWW-Authenticate"]] if "WWW-Authenticate" in response.headers else []
                )
                retry, scopes = state.next_scopes(response.status_code, values)
                body = response.request.body
                if not retry or not (body is None or isinstance(body, (str, bytes))):
                    break  # nothing to fix, or a streamed body that cannot be sent twice
                attempts["left"] -= 1
                token = state.remember(state.token_provider(scopes), scopes)
                response.content  # noqa: B018 -- drain it, so the connection can be reused
                response.close()
                again = response.request.copy()
                again.headers["Authorization"] = f"Bearer {token}"
                retried = response.connection.send(again, **send_kwargs)
                retried.history = [*response.history, response]
                retried.request = again
                response = retried
            return response


def __getattr__(name: str) -> Any:
    """An adapter whose library is not installed: say which one to install (PEP 562)."""
    if name in _NEEDS:
        library = _NEEDS[name]
        raise ImportError(
            f"{name} needs {library}, which is not installed: pip install {library}"
            " (or scoped-resource-server[client])",
            name=library,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
