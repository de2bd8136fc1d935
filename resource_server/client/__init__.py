"""Clients that step up by themselves: send a token; on ``403 insufficient_scope`` ask for one that
also covers the advertised scopes and retry once; on ``401 invalid_token`` fetch a fresh one once.

``StepUpAuth`` is the auth of an ``httpx`` or an ``httpx2`` client (sync and async): one class,
an ``Auth`` of each of the two that is installed, so either library's client takes it (each accepts
only instances of its own ``Auth``). ``RequestsStepUpAuth`` does the same for ``requests``. None
imports Flask. The challenge is read with :func:`policy.parse_challenges`, so several challenges in
one ``WWW-Authenticate`` value, or across several lines, are fine: the Bearer one is used
(RFC 9110 §11.6.1, RFC 6750 §3).

With a :class:`DPoPKey` (RFC 9449) both send ``Authorization: DPoP <token>`` and a fresh ``DPoP``
proof on every request and every retry, read the ``DPoP`` challenge (the Bearer one if there is
none), answer ``use_dpop_nonce`` once with the server's nonce and keep the latest ``DPoP-Nonce``
of each origin for the requests after (§9); a nonce that is not 1 to 1024 of §8.1's characters
is ignored.

Credentials, proofs and step-ups go only to the origin (scheme, host, port; RFC 6454 §4) a request
was first sent to. A response from another origin, or reached through one by redirects, is returned
as it is: its challenge is not followed, its scopes are never asked for, its nonce is not kept. With
requests, the adapter's ``Authorization`` and ``DPoP`` headers are removed before requests follows a
redirect to another origin; httpx and httpx2 drop ``Authorization`` themselves (see docs/clients.md).

Bodies are replayed on retry. With httpx and httpx2 the request body is read before the first
attempt, so even streamed bodies can be resent, at the cost of holding them in memory. With
requests, a body that cannot be replayed (a file or a generator) is not retried: the first response
is returned as it is.

No HTTP library is required: ``StepUpAuth`` exists when httpx or httpx2 is installed,
``RequestsStepUpAuth`` when requests is, and :class:`DPoPKey`, :class:`InsufficientScope`,
:func:`insufficient_scope` and :func:`bearer_challenge_of` need none. Importing a class whose
library is missing raises an ``ImportError`` that names the library to install.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urljoin, urlsplit

from policy import ChallengeSyntaxError, InvalidScope, parse_challenges, parse_scope

from .dpop_key import DPoPKey

# Each adapter needs only its own library: a requests user need not install httpx, nor the reverse,
# and StepUpAuth needs httpx or httpx2, whichever the application (or the MCP SDK) uses.
try:
    import httpx
except ImportError:
    httpx = None  # type: ignore[assignment]
try:
    import httpx2
except ImportError:
    httpx2 = None  # type: ignore[assignment]
try:
    import requests
except ImportError:
    requests = None  # type: ignore[assignment]

# Both clients accept as auth only an instance of their own ``Auth`` (anything else callable is
# wrapped to run once, without retries), so StepUpAuth derives from the Auth of each library present.
# Once: after ``httpx2.alias_httpx()``, ``import httpx`` is httpx2, and a class cannot list a base twice.
_HTTPX_AUTH_BASES: tuple[type, ...] = tuple(
    dict.fromkeys(library.Auth for library in (httpx, httpx2) if library is not None)
)

#: The adapter classes, by the libraries any one of which each needs.
_NEEDS = {"StepUpAuth": ("httpx2", "httpx"), "RequestsStepUpAuth": ("requests",)}

__all__ = [
    "DPoPKey",
    "InsufficientScope",
    *(["RequestsStepUpAuth"] if requests is not None else []),
    *(["StepUpAuth"] if _HTTPX_AUTH_BASES else []),
    "bearer_challenge_of",
    "insufficient_scope",
]

TokenProvider = Callable[..., str]
AsyncTokenProvider = Callable[..., "str | Awaitable[str]"]
if TYPE_CHECKING:
    _HTTPXRequest: TypeAlias = "httpx.Request | httpx2.Request"
    _HTTPXResponse: TypeAlias = "httpx.Response | httpx2.Response"


_DEFAULT_PORTS = {"http": 80, "https": 443}
_Origin: TypeAlias = tuple[str, str, int]


def _origin(url: str) -> _Origin:
    """RFC 6454 §4 origin: what credentials, proofs and DPoP nonces (RFC 9449 §9) are kept to.
    ``ValueError`` for a URL whose port or host does not parse."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme, 0)


# -- challenges ----------------------------------------------------------------------------------------


class InsufficientScope(Exception):
    """A ``403`` with ``error="insufficient_scope"`` (RFC 6750 §3.1), for callers who handle it."""

    def __init__(
        self, scope: frozenset[str], resource_metadata: str | None, error_description: str | None
    ) -> None:
        super().__init__(f"the request needs the scopes: {' '.join(sorted(scope)) or '(not advertised)'}")
        self.scope = scope
        self.resource_metadata = resource_metadata
        self.error_description = error_description


def _challenge_of(header_values: Iterable[str], schemes: tuple[str, ...]) -> Mapping[str, str] | None:
    """The parameters of the first challenge of the first of ``schemes`` present, or None (also
    for a header that does not parse: a broken challenge is no instruction to follow)."""
    try:
        challenges = parse_challenges(list(header_values))
    except ChallengeSyntaxError:
        return None
    for scheme in schemes:
        found = next((c.params for c in challenges if c.is_scheme(scheme)), None)
        if found is not None:
            return found
    return None


def bearer_challenge_of(header_values: Iterable[str]) -> Mapping[str, str] | None:
    """The parameters of the first Bearer challenge among ``WWW-Authenticate`` values, or None
    (also for a header that does not parse: a broken challenge is no instruction to follow)."""
    return _challenge_of(header_values, ("Bearer",))


def insufficient_scope(
    status: int, header_values: Iterable[str], *, scheme: str = "Bearer"
) -> InsufficientScope | None:
    """The :class:`InsufficientScope` a response carries, or None. ``scheme="DPoP"`` reads the
    DPoP challenge (RFC 9449 §7.1), or the Bearer one when there is no DPoP challenge."""
    return _insufficient(status, header_values, ("DPoP", "Bearer") if scheme.lower() == "dpop" else (scheme,))


def _insufficient(
    status: int, header_values: Iterable[str], schemes: tuple[str, ...]
) -> InsufficientScope | None:
    if status != 403:
        return None
    params = _challenge_of(header_values, schemes)
    if params is None or params.get("error") != "insufficient_scope":
        return None
    try:
        scope = parse_scope(params.get("scope", ""))
    except InvalidScope:
        scope = frozenset()
    return InsufficientScope(scope, params.get("resource_metadata"), params.get("error_description"))


# -- what both adapters share --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Retry:
    """Send the request again: with a new token for ``scopes``, or (``new_token`` false) with the
    same token and a proof carrying the server's new nonce."""

    new_token: bool
    scopes: frozenset[str] | None = None


_MAX_ORIGINS = 256  # nonces kept; past that the oldest are forgotten (a 401 fetches one again)
# RFC 9449 §8.1: nonce = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E. A value the proof cannot
# carry as the server sent it (spaces, quotes, controls, non-ASCII), or too long to be one, is
# ignored: it would be signed into every later proof to that origin.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")


class _StepUp:
    """What both adapters share: the current token and scopes, DPoP nonces, the retry decision."""

    def __init__(
        self,
        token_provider: AsyncTokenProvider,
        max_retries: int,
        scopes: Iterable[str] | None,
        dpop_key: DPoPKey | None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if dpop_key is not None and not isinstance(dpop_key, DPoPKey):
            raise TypeError("dpop_key must be a resource_server.client.DPoPKey")
        self.token_provider = token_provider
        self.max_retries = max_retries
        self.token: str | None = None
        self.scopes: frozenset[str] | None = None if scopes is None else frozenset(scopes)
        self.dpop_key = dpop_key
        self.schemes = ("DPoP", "Bearer") if dpop_key is not None else ("Bearer",)
        self._tells_key = dpop_key is not None and _takes_dpop_key(token_provider)
        self._nonces: dict[tuple[str, str, int], str] = {}
        self._lock = threading.Lock()

    def ask(self, scopes: frozenset[str] | None) -> str | Awaitable[str]:
        """Call the provider; with ``dpop_key=`` when it takes one, so it can ask for a bound token."""
        if self._tells_key:
            return self.token_provider(scopes, dpop_key=self.dpop_key)
        return self.token_provider(scopes)

    def remember(self, token: str, scopes: frozenset[str] | None) -> str:
        with self._lock:
            self.token, self.scopes = token, scopes
        return token

    def nonce_for(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(_origin(url))

    def authorize(self, headers: MutableMapping[str, str], method: str, url: str, token: str) -> str | None:
        """Set the credentials of one attempt (RFC 6750 §2.1, RFC 9449 §7.1); the nonce sent."""
        if self.dpop_key is None:
            headers["Authorization"] = f"Bearer {token}"
            return None
        nonce = self.nonce_for(url)
        headers["Authorization"] = f"DPoP {token}"
        headers["DPoP"] = self.dpop_key.proof(method, url, access_token=token, nonce=nonce)
        return nonce

    def start(self, url: str) -> _Attempts:
        """The attempts of one request, first sent to ``url``."""
        return _Attempts(self, url)

    def next_scopes(self, status: int, header_values: Iterable[str]) -> tuple[bool, frozenset[str] | None]:
        """Whether to retry with a new token, and with which scopes to ask for it."""
        if status == 401:
            params = _challenge_of(header_values, self.schemes)
            return (params is not None and params.get("error") == "invalid_token", self.scopes)
        denied = _insufficient(status, header_values, self.schemes)
        if denied is None or not denied.scope:
            return False, None
        wanted = (self.scopes or frozenset()) | denied.scope
        # Asking again for what we already hold cannot help: give the 403 to the caller.
        return wanted != self.scopes, wanted

    def _note_nonce(self, url: str, nonce: str) -> None:
        origin = _origin(url)
        with self._lock:
            self._nonces.pop(origin, None)
            if len(self._nonces) >= _MAX_ORIGINS:
                del self._nonces[next(iter(self._nonces))]
            self._nonces[origin] = nonce


class _Attempts:
    """The retries left for one request (``max_retries`` new tokens, and one new nonce), and the
    origin it was first sent to: the only one whose answers are acted upon."""

    def __init__(self, state: _StepUp, url: str) -> None:
        self.state = state
        self.origin = _origin(url)
        self.tokens_left = state.max_retries
        self.nonce_retried = False
        self.strayed = False

    def stays(self, urls: Iterable[str]) -> bool:
        """Whether the requests to ``urls``, and all those before, went to the first origin. Once
        one did not, never again: where a redirect from another origin lands, even back on ours,
        is that origin's choice, and so is the challenge found there."""
        self.strayed = self.strayed or any(_origin(url) != self.origin for url in urls)
        return not self.strayed

    def after(
        self,
        urls: Sequence[str],
        status: int,
        header_values: list[str],
        dpop_nonce: str | None,
        sent_nonce: str | None,
    ) -> _Retry | None:
        """What to do after a response; ``urls`` are those of the requests that led to it (the
        redirects followed), its own last. None to return it to the caller, as it is, always when
        it is another origin's: the provider is never asked for scopes another origin named, and
        no token or proof is made for it."""
        if not self.stays(urls):
            return None
        url, state = urls[-1], self.state
        if state.dpop_key is not None:
            # RFC 9449 §9: a server may hand out its next nonce with any response.
            if dpop_nonce is not None and _NONCE.fullmatch(dpop_nonce):
                state._note_nonce(url, dpop_nonce)
            if status == 401:
                params = _challenge_of(header_values, ("DPoP",))
                if params is not None and params.get("error") == "use_dpop_nonce":
                    # Once, and only with a nonce other than the one just refused: no loops.
                    fresh = state.nonce_for(url)
                    if self.nonce_retried or fresh is None or fresh == sent_nonce:
                        return None
                    self.nonce_retried = True
                    return _Retry(new_token=False)
        if self.tokens_left == 0:
            return None
        retry, scopes = state.next_scopes(status, header_values)
        if not retry:
            return None
        self.tokens_left -= 1
        return _Retry(new_token=True, scopes=scopes)


def _takes_dpop_key(provider: Callable[..., Any]) -> bool:
    """Whether ``provider`` accepts a ``dpop_key`` keyword (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(provider).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == "dpop_key" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


if _HTTPX_AUTH_BASES:

    class StepUpAuth(*_HTTPX_AUTH_BASES):  # type: ignore[misc]
        """``httpx.Client(auth=StepUpAuth(provider, scopes=...))``, or ``httpx2.Client``: the same
        class is an ``httpx.Auth`` and an ``httpx2.Auth`` (of each library installed), and its flows
        use only what the two libraries' requests and responses share. ``provider(scopes)`` returns an
        access token covering ``scopes`` (None: the provider's default); ``scopes`` are those the first
        token should cover, kept when stepping up. For an ``AsyncClient`` the provider may be async.

        With ``dpop_key`` (a :class:`DPoPKey`) the token is sent as ``DPoP`` with a fresh proof on
        every attempt (RFC 9449 §7.1); a provider that takes a ``dpop_key`` keyword is given the
        key, so it can ask its authorization server for a token bound to ``dpop_key.jkt``."""

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
            self._state = _StepUp(token_provider, max_retries, scopes, dpop_key)

        def sync_auth_flow(self, request: _HTTPXRequest) -> Generator[_HTTPXRequest, _HTTPXResponse, None]:
            state = self._state
            request.read()  # held, so that a retry can send it again
            token = state.token or state.remember(_sync(state.ask(state.scopes)), state.scopes)
            attempts = state.start(str(request.url))
            while True:
                sent_nonce = state.authorize(request.headers, request.method, str(request.url), token)
                response = yield request
                retry = _after(attempts, response, sent_nonce)
                if retry is None:
                    return
                response.read()
                if retry.new_token:
                    token = state.remember(_sync(state.ask(retry.scopes)), retry.scopes)

        async def async_auth_flow(  # type: ignore[override]
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
                    token = state.remember(await _maybe_await(state.ask(retry.scopes)), retry.scopes)


def _after(attempts: _Attempts, response: _HTTPXResponse, sent_nonce: str | None) -> _Retry | None:
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


def _sync(token: str | Awaitable[str]) -> str:
    if inspect.isawaitable(token):
        if inspect.iscoroutine(token):
            token.close()  # never to be awaited: spare the caller a "never awaited" warning
        raise TypeError("an async token provider needs an AsyncClient (httpx or httpx2)")
    return token


async def _maybe_await(token: str | Awaitable[str]) -> str:
    return await token if inspect.isawaitable(token) else token


if requests is not None:

    class RequestsStepUpAuth(requests.auth.AuthBase):
        """``session.auth = RequestsStepUpAuth(provider)``: the same behaviour for ``requests``,
        ``dpop_key`` included."""

        def __init__(
            self,
            token_provider: TokenProvider,
            *,
            max_retries: int = 1,
            scopes: Iterable[str] | None = None,
            dpop_key: DPoPKey | None = None,
        ) -> None:
            self._state = _StepUp(token_provider, max_retries, scopes, dpop_key)

        def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
            state = self._state
            token = state.token or state.remember(_sync(state.ask(state.scopes)), state.scopes)
            sent_nonce = state.authorize(
                prepared.headers, prepared.method or "GET", prepared.url or "", token
            )
            attempts = state.start(prepared.url or "")
            prepared.register_hook(
                "response", lambda r, **kw: self._retry(r, attempts, token, sent_nonce, **kw)
            )
            return prepared

        def _retry(
            self,
            response: requests.Response,
            attempts: _Attempts,
            token: str,
            sent_nonce: str | None,
            **send_kwargs: Any,
        ) -> requests.Response:
            # requests copies this hook onto each redirect it follows, so it runs once per hop, with
            # the same attempts; each retry goes to the URL of the hop that answered.
            state, sent = self._state, response.request
            while True:
                # requests folds repeated header lines into one comma-joined value; the parser splits it.
                values = (
                    [response.headers["WWW-Authenticate"]] if "WWW-Authenticate" in response.headers else []
                )
                retry = attempts.after(
                    [response.request.url or ""],  # the hops before were seen by this hook
                    response.status_code,
                    values,
                    response.headers.get("DPoP-Nonce"),
                    sent_nonce,
                )
                body = response.request.body
                if retry is None or not (body is None or isinstance(body, (str, bytes))):
                    break  # nothing to fix, or a streamed body that cannot be sent twice
                if retry.new_token:
                    token = state.remember(_sync(state.ask(retry.scopes)), retry.scopes)
                response.content  # noqa: B018 -- drain it, so the connection can be reused
                response.close()
                again = response.request.copy()
                sent_nonce = state.authorize(again.headers, again.method or "GET", again.url or "", token)
                retried = response.connection.send(again, **send_kwargs)
                retried.history = [*response.history, response]
                retried.request = again
                response = retried
            if _redirects_away(response, attempts.origin):
                # requests builds the next hop from a copy of ``sent`` (not of a retry) with every
                # header, DPoP included, and Authorization too on an upgrade from http to https on
                # the default ports: our credentials are taken off here, the one place an auth can
                # reach before requests copies them.
                for name in ("Authorization", "DPoP"):
                    sent.headers.pop(name, None)
            return response

    def _redirects_away(response: requests.Response, origin: _Origin) -> bool:
        """Whether requests would follow ``response`` to another origin than ``origin``, or to
        one we cannot tell: its ``Location`` resolved against its URL as requests resolves it
        (RFC 9110 §10.2.2)."""
        if not response.is_redirect:
            return False
        target = urljoin(response.url, requests.utils.requote_uri(response.headers["Location"]))
        try:
            return _origin(target) != origin
        except ValueError:
            return True


def __getattr__(name: str) -> Any:
    """An adapter whose library is not installed: say which one to install (PEP 562)."""
    if name in _NEEDS:
        libraries = _NEEDS[name]
        needed = " or ".join(libraries)
        which = "neither is installed" if len(libraries) > 1 else "which is not installed"
        raise ImportError(
            f"{name} needs {needed}, {which}: pip install 'scoped-resource-server[client]'"
            f" (or pip install {libraries[0]} alone)",
            name=libraries[0],
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
