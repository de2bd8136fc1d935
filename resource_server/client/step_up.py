"""What every step-up adapter shares, whatever its HTTP library: the current token and scopes, the
DPoP nonces kept per origin (RFC 9449 §9), and the decision after each response: retry with a new
token (RFC 6750 §3.1 ``insufficient_scope``, ``invalid_token``; RFC 9470 §3
``insufficient_user_authentication``), with the server's nonce (``use_dpop_nonce``), or not at
all; only ever for the origin (RFC 6454 §4) a request was first sent to."""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from .challenges import challenge_of, insufficient, user_authentication
from .dpop_key import DPoPKey

__all__ = [
    "AsyncTokenProvider",
    "Attempts",
    "Authentication",
    "Origin",
    "Retry",
    "StepUp",
    "TokenProvider",
    "origin_of",
    "sync_token",
]

TokenProvider = Callable[..., str]
AsyncTokenProvider = Callable[..., "str | Awaitable[str]"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin: TypeAlias = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """RFC 6454 §4 origin: what credentials, proofs and DPoP nonces (RFC 9449 §9) are kept to.
    ``ValueError`` for a URL whose port or host does not parse."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(frozen=True, slots=True)
class Authentication:
    """How the person must have authenticated for a new token (RFC 9470 §3, §4): one of
    ``acr_values`` and/or within ``max_age`` seconds (None: not asked). The provider is called with
    both as keywords."""

    acr_values: tuple[str, ...] | None
    max_age: int | None


@dataclass(frozen=True, slots=True)
class Retry:
    """Send the request again: with a new token for ``scopes`` (and ``authentication``, when the
    server asked for one), or (``new_token`` false) with the same token and a proof carrying the
    server's new nonce."""

    new_token: bool
    scopes: frozenset[str] | None = None
    authentication: Authentication | None = None


_MAX_ORIGINS = 256  # nonces kept; past that the oldest are forgotten (a 401 fetches one again)
# RFC 9449 §8.1: nonce = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E. A value the proof cannot
# carry as the server sent it (spaces, quotes, controls, non-ASCII), or too long to be one, is
# ignored: it would be signed into every later proof to that origin.
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,1024}")


class StepUp:
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
        # Only a provider that names both keywords can have a person authenticate (RFC 9470 §4);
        # one with **kwargs alone was written before them, and may pass them on to something
        # that raises, or fetch the same client-credentials token again: it gets the 401 as is.
        self.authenticates = _names_keywords(token_provider, ("acr_values", "max_age"))
        self._nonces: dict[tuple[str, str, int], str] = {}
        self._lock = threading.Lock()

    def ask(
        self, scopes: frozenset[str] | None, authentication: Authentication | None = None
    ) -> str | Awaitable[str]:
        """Call the provider; with ``dpop_key=`` when it takes one, so it can ask for a bound token,
        and with ``acr_values=`` and ``max_age=`` when a server asked for an authentication."""
        options: dict[str, Any] = {}
        if self._tells_key:
            options["dpop_key"] = self.dpop_key
        if authentication is not None:
            options["acr_values"], options["max_age"] = authentication.acr_values, authentication.max_age
        return self.token_provider(scopes, **options)

    def remember(self, token: str, scopes: frozenset[str] | None) -> str:
        with self._lock:
            self.token, self.scopes = token, scopes
        return token

    def nonce_for(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(origin_of(url))

    def authorize(
        self,
        headers: MutableMapping[str, str] | MutableMapping[str, str | bytes],  # httpx's, requests'
        method: str,
        url: str,
        token: str,
    ) -> str | None:
        """Set the credentials of one attempt (RFC 6750 §2.1, RFC 9449 §7.1); the nonce sent."""
        if self.dpop_key is None:
            headers["Authorization"] = f"Bearer {token}"
            return None
        nonce = self.nonce_for(url)
        headers["Authorization"] = f"DPoP {token}"
        headers["DPoP"] = self.dpop_key.proof(method, url, access_token=token, nonce=nonce)
        return nonce

    def start(self, url: str) -> Attempts:
        """The attempts of one request, first sent to ``url``."""
        return Attempts(self, url)

    def next_scopes(self, status: int, header_values: Iterable[str]) -> tuple[bool, frozenset[str] | None]:
        """Whether to retry with a new token, and with which scopes to ask for it."""
        if status == 401:
            params = challenge_of(header_values, self.schemes)
            return (params is not None and params.get("error") == "invalid_token", self.scopes)
        denied = insufficient(status, header_values, self.schemes)
        if denied is None or not denied.scope:
            return False, None
        wanted = (self.scopes or frozenset()) | denied.scope
        # Asking again for what we already hold cannot help: give the 403 to the caller.
        return wanted != self.scopes, wanted

    def authentication_needed(self, status: int, header_values: Iterable[str]) -> Authentication | None:
        """What a ``401 insufficient_user_authentication`` asks the person for, when the provider
        can have a person authenticate; None otherwise, also for a challenge that names neither
        ``acr_values`` nor ``max_age`` (nothing to ask for) or names either malformed."""
        if not self.authenticates:
            return None
        found = user_authentication(status, header_values, self.schemes)
        if found is None or (not found.acr_values and found.max_age is None):
            return None
        return Authentication(found.acr_values or None, found.max_age)

    def _note_nonce(self, url: str, nonce: str) -> None:
        origin = origin_of(url)
        with self._lock:
            self._nonces.pop(origin, None)
            if len(self._nonces) >= _MAX_ORIGINS:
                del self._nonces[next(iter(self._nonces))]
            self._nonces[origin] = nonce


class Attempts:
    """The retries left for one request (``max_retries`` new tokens, one new token for an
    authentication, and one new nonce), and the origin it was first sent to: the only one whose
    answers are acted upon."""

    def __init__(self, state: StepUp, url: str) -> None:
        self.state = state
        self.origin = origin_of(url)
        self.tokens_left = state.max_retries
        self.nonce_retried = False
        self.strayed = False
        # The authentication this request's server asked for: every later token of this request
        # is asked with it too, so that a scope step-up or a fresh token after it does not undo it.
        # It does not outlive the request: it is the requirement of one resource, and a later
        # max_age would send the person to sign in again on every token the client ever fetches.
        self.authentication: Authentication | None = None

    def stays(self, urls: Iterable[str]) -> bool:
        """Whether the requests to ``urls``, and all those before, went to the first origin. Once
        one did not, never again: where a redirect from another origin lands, even back on ours,
        is that origin's choice, and so is the challenge found there."""
        self.strayed = self.strayed or any(origin_of(url) != self.origin for url in urls)
        return not self.strayed

    def after(
        self,
        urls: Sequence[str],
        status: int,
        header_values: list[str],
        dpop_nonce: str | None,
        sent_nonce: str | None,
    ) -> Retry | None:
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
                params = challenge_of(header_values, ("DPoP",))
                if params is not None and params.get("error") == "use_dpop_nonce":
                    # Once, and only with a nonce other than the one just refused: no loops.
                    fresh = state.nonce_for(url)
                    if self.nonce_retried or fresh is None or fresh == sent_nonce:
                        return None
                    self.nonce_retried = True
                    return Retry(new_token=False)
        if state.max_retries == 0:
            return None
        needed = state.authentication_needed(status, header_values)
        if needed is not None:
            # Once per request, besides max_retries: the servers of this package ask for the
            # scopes first, then for the authentication, so one of each (two steps, in either
            # order) must fit the default max_retries of 1. Asked again, the person's new sign-in
            # did not do: the 401 goes to the caller rather than the person to another prompt.
            if self.authentication is not None:
                return None
            self.authentication = needed
            return Retry(new_token=True, scopes=state.scopes, authentication=needed)
        if self.tokens_left == 0:
            return None
        retry, scopes = state.next_scopes(status, header_values)
        if not retry:
            return None
        self.tokens_left -= 1
        return Retry(new_token=True, scopes=scopes, authentication=self.authentication)


def _takes_dpop_key(provider: Callable[..., Any]) -> bool:
    """Whether ``provider`` accepts a ``dpop_key`` keyword (or ``**kwargs``)."""
    return _names_keywords(provider, ("dpop_key",), or_var_keyword=True)


def _names_keywords(
    provider: Callable[..., Any], names: tuple[str, ...], *, or_var_keyword: bool = False
) -> bool:
    """Whether ``provider`` has a parameter for each of ``names`` that a keyword can fill (or,
    with ``or_var_keyword``, a ``**kwargs``), as :func:`inspect.signature` sees it."""
    try:
        parameters = inspect.signature(provider).parameters.values()
    except (TypeError, ValueError):
        return False
    if or_var_keyword and any(p.kind is p.VAR_KEYWORD for p in parameters):
        return True
    named = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return named.issuperset(names)


def sync_token(token: str | Awaitable[str]) -> str:
    if inspect.isawaitable(token):
        if inspect.iscoroutine(token):
            token.close()  # never to be awaited: spare the caller a "never awaited" warning
        raise TypeError("an async token provider needs an AsyncClient (httpx or httpx2)")
    return token
