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
of each origin for the requests after (§9).

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
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from policy import ChallengeSyntaxError, InvalidScope, parse_challenges, parse_scope

from .dpop import access_token_hash, jwk_thumbprint
from .tokens.keys import ASYMMETRIC_ALGORITHMS

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


# -- DPoP keys (RFC 9449 §4) ---------------------------------------------------------------------------

_EC_ALGORITHM_OF = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
#: RFC 7638 §3.2: the members of a public JWK that a proof's ``jwk`` header carries, and nothing more.
_PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}
_MIN_RSA_BITS = 2048  # RFC 7518 §3.3
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PrivateKey = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)


class DPoPKey:
    """A client's DPoP key pair: signs the proof of each request (RFC 9449 §4.2).

    ``DPoPKey.generate("ES256")``, or load one with :meth:`from_jwk` / :meth:`from_pem` (the
    algorithm is implied by the key: ES256/384/512 by the curve, EdDSA for Ed25519/Ed448, RS256
    for RSA unless ``alg`` says a PS or another RS algorithm). RSA keys have at least 2048 bits.
    ``jkt`` is the RFC 7638 thumbprint an authorization server puts in the token's ``cnf.jkt``,
    computed by the same function the resource server uses. ``clock`` gives the proofs' ``iat``.

    A token bound to this key is useless without it, and with it: keep the key as secret as a
    refresh token, and :meth:`private_pem` it somewhere safe if the tokens must outlive the process.
    """

    __slots__ = ("_alg", "_clock", "_jkt", "_key", "_public_jwk")

    def __init__(
        self, private_key: _PrivateKey, alg: str | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._alg = _check_algorithm(private_key, alg)
        self._key = private_key
        self._clock = clock or time.time
        full = _ALGORITHM_CLASS[self._alg[:2]].to_jwk(private_key.public_key(), as_dict=True)
        self._public_jwk = {name: full[name] for name in _PUBLIC_MEMBERS[full["kty"]]}
        self._jkt = jwk_thumbprint(self._public_jwk)

    @classmethod
    def generate(cls, alg: str = "ES256", *, clock: Callable[[], float] | None = None) -> DPoPKey:
        """A new key for ``alg`` (RSA keys: 2048 bits; Ed25519 for EdDSA)."""
        if alg in _EC_CURVES:
            key: _PrivateKey = ec.generate_private_key(_EC_CURVES[alg]())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        elif alg in ASYMMETRIC_ALGORITHMS:
            key = rsa.generate_private_key(public_exponent=65537, key_size=_MIN_RSA_BITS)
        else:
            raise ValueError(
                f"unsupported DPoP algorithm {alg!r}; use one of {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return cls(key, alg, clock=clock)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any], alg: str | None = None, *, clock: Callable[[], float] | None = None
    ) -> DPoPKey:
        """Load a private JWK (RFC 7517; ``d`` and, for RSA, the other private members). The
        algorithm is ``alg``, else the JWK's ``alg`` member, else implied by the key."""
        if not isinstance(jwk, Mapping) or "d" not in jwk:
            raise ValueError("a DPoP key JWK must be a private key (with 'd')")
        member = jwk.get("alg")
        if alg is not None and member is not None and member != alg:
            raise ValueError(f"the JWK is for {member}, not {alg}")
        try:
            # Without its alg: whether the algorithm fits the key is checked below, with a clearer word.
            key = jwt.PyJWK({name: value for name, value in jwk.items() if name != "alg"}).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a usable private JWK: {exc}") from None
        return cls(key, alg or member, clock=clock)

    @classmethod
    def from_pem(
        cls,
        pem: bytes,
        password: bytes | None = None,
        *,
        alg: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> DPoPKey:
        """Load a PEM private key (PKCS#8, or the traditional EC/RSA forms), encrypted with
        ``password`` or not."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a usable PEM private key: {exc}") from None
        return cls(key, alg, clock=clock)  # type: ignore[arg-type]

    @property
    def alg(self) -> str:
        """The JWS algorithm of every proof (RFC 7518 §3.1)."""
        return self._alg

    @property
    def jkt(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key, base64url: the token's ``cnf.jkt``."""
        return self._jkt

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as the proof's ``jwk`` header carries it: the RFC 7638 members only."""
        return dict(self._public_jwk)

    def private_jwk(self) -> dict[str, Any]:
        """The private key as a JWK (with ``alg``), for :meth:`from_jwk`. A secret."""
        full = _ALGORITHM_CLASS[self.alg[:2]].to_jwk(self._key, as_dict=True)
        return {**full, "alg": self.alg}

    def private_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when ``password`` is given, for :meth:`from_pem`."""
        encryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def proof(
        self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None
    ) -> str:
        """A DPoP proof (RFC 9449 §4.2) for one request: ``typ`` ``dpop+jwt``, the public key in
        ``jwk``; a random ``jti``, ``htm``, ``htu`` (the URL without query and fragment), ``iat``
        from the clock, ``ath`` (§4.2: base64url SHA-256 of the token) when ``access_token`` is
        given and the server's ``nonce`` (§9) when there is one. Never reuse a proof."""
        if not isinstance(method, str) or not method:
            raise ValueError("a DPoP proof needs the request's method")
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method,
            "htu": _htu(url),
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": "dpop+jwt", "jwk": self._public_jwk}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.jkt!r})"


_EC_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
_ALGORITHM_CLASS = {"ES": ECAlgorithm, "RS": RSAAlgorithm, "PS": RSAAlgorithm, "Ed": OKPAlgorithm}


def _check_algorithm(key: object, alg: str | None) -> str:
    """The algorithm ``key`` signs with: ``alg`` if it fits the key, else the one the key implies.
    ``ValueError`` for a public, symmetric or too small key, or an algorithm that does not fit."""
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"unsupported DPoP algorithm {alg!r}; use one of {sorted(ASYMMETRIC_ALGORITHMS)}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        implied = _EC_ALGORITHM_OF.get(key.curve.name)
        if implied is None:
            raise ValueError(f"the EC curve {key.curve.name} has no JWS algorithm; use P-256, P-384 or P-521")
        allowed: tuple[str, ...] = (implied,)
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA DPoP keys need at least {_MIN_RSA_BITS} bits, not {key.key_size}")
        implied = "RS256"  # the one every JOSE implementation has; PS256 when asked for
        allowed = tuple(sorted(a for a in ASYMMETRIC_ALGORITHMS if a[:2] in ("RS", "PS")))
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        implied, allowed = "EdDSA", ("EdDSA",)
    else:
        raise ValueError("a DPoP key must be an EC, RSA or Ed25519/Ed448 private key")
    if alg is not None and alg not in allowed:
        raise ValueError(f"{alg} does not fit this key; it signs with {' or '.join(allowed)}")
    return alg or implied


def _htu(url: str) -> str:
    """RFC 9449 §4.2 ``htu``: the target URI without query and fragment (and without userinfo,
    which is never sent); an empty path is ``/``, the path requested (RFC 9110 §7.1)."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("a DPoP proof needs the request's absolute http(s) URL")
    return urlunsplit((scheme, parts.netloc.rpartition("@")[2], parts.path or "/", "", ""))


def _origin(url: str) -> tuple[str, str, int]:
    """RFC 6454 origin: DPoP nonces are per server (RFC 9449 §9), never sent to another one."""
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

    def start(self) -> _Attempts:
        return _Attempts(self)

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
    """The retries left for one request: ``max_retries`` new tokens, and one new nonce."""

    def __init__(self, state: _StepUp) -> None:
        self.state = state
        self.tokens_left = state.max_retries
        self.nonce_retried = False

    def after(
        self,
        url: str,
        status: int,
        header_values: list[str],
        dpop_nonce: str | None,
        sent_nonce: str | None,
    ) -> _Retry | None:
        """What to do after the response to ``url``: None to return it to the caller."""
        state = self.state
        if state.dpop_key is not None:
            if dpop_nonce:  # RFC 9449 §9: a server may hand out its next nonce with any response
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
            attempts = state.start()
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
            attempts = state.start()
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
    """What to do after an httpx or httpx2 response: their headers and URLs have the same API."""
    headers = response.headers
    return attempts.after(
        str(response.request.url),
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
            attempts = state.start()
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
            state = self._state
            while True:
                # requests folds repeated header lines into one comma-joined value; the parser splits it.
                values = (
                    [response.headers["WWW-Authenticate"]] if "WWW-Authenticate" in response.headers else []
                )
                retry = attempts.after(
                    response.url, response.status_code, values, response.headers.get("DPoP-Nonce"), sent_nonce
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
            return response


def __getattr__(name: str) -> Any:
    """An adapter whose library is not installed: say which one to install (PEP 562)."""
    if name in _NEEDS:
        libraries = _NEEDS[name]
        needed = " or ".join(libraries)
        which = "neither is installed" if len(libraries) > 1 else "which is not installed"
        raise ImportError(
            f"{name} needs {needed}, {which}: pip install {libraries[0]} (or scoped-resource-server[client])",
            name=libraries[0],
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
