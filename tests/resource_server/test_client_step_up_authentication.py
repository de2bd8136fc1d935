"""Step-up of authentication on the client side (RFC 9470): on ``401 insufficient_user_authentication``
the adapters (httpx and httpx2, sync and async; requests) ask a provider that names ``acr_values``
and ``max_age`` for a token of a stronger or more recent sign-in, once per request, besides one
scope step-up; with Bearer and DPoP tokens, over real HTTP to a loopback API that checks every
token's scopes, ``acr`` and ``auth_time`` (and every DPoP proof, with the real verifier). A provider
without those parameters, a malformed challenge, and a challenge reached on another origin get the
401 back as it is."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
import requests
from werkzeug.wsgi import get_current_url, get_input_stream

from policy import Challenge, format_challenge
from resource_server.client import (
    DPoPKey,
    InsufficientUserAuthentication,
    RequestsStepUpAuth,
    StepUpAuth,
    insufficient_user_authentication,
)
from resource_server.dpop import (
    DPOP_ALGORITHMS,
    DPoPNonceRequired,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProof,
)
from tests.support import FakeClock, serve_wsgi

CLIENTS = ["httpx", "httpx-async", "httpx2", "httpx2-async", "requests"]
HTTPX = {"httpx": httpx, "httpx2": httpx2}
STEP_UP = {"acr_values": "mfa hwk", "max_age": "300"}
Asked = tuple[frozenset[str] | None, tuple[str, ...] | None, int | None]


@dataclass(frozen=True)
class Grant:
    """What an opaque token stands for: its scopes, how and when the person signed in for it
    (RFC 9068 §2.2.1 ``acr``, ``auth_time``), and the DPoP key it is bound to, if any."""

    scopes: frozenset[str]
    acr: str
    auth_time: float
    jkt: str | None


@dataclass(frozen=True)
class Seen:
    method: str
    authorization: str | None
    body: bytes
    status: int
    error: str | None


class API:
    """GET needs ``read``; POST needs ``approve`` and a sign-in with ``mfa`` or ``hwk`` within the
    last 300 seconds, checked after the scopes (``authentication_first``: before them). Bearer
    tokens, or DPoP ones with a proof the real :class:`DPoPVerifier` accepts (and, with
    ``nonces``, a current nonce). Challenges in the token's scheme (RFC 9449 §7.1)."""

    def __init__(
        self, clock: FakeClock, *, authentication_first: bool = False, nonces: DPoPNonces | None = None
    ) -> None:
        self.clock, self.authentication_first = clock, authentication_first
        self.verifier = DPoPVerifier(clock=clock, nonces=nonces)
        self.grants: dict[str, Grant] = {}
        self.revoked: set[str] = set()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = get_input_stream(environ).read()
        method, authorization = environ["REQUEST_METHOD"], environ.get("HTTP_AUTHORIZATION")
        status, params, headers = self.answer(method, get_current_url(environ), authorization, environ)
        with self._lock:
            self.seen.append(Seen(method, authorization, body, status, params.get("error")))
        scheme = "DPoP" if (authorization or "").startswith("DPoP ") else "Bearer"
        if status in (401, 403):
            extra = {"algs": " ".join(DPOP_ALGORITHMS)} if scheme == "DPoP" else {}
            challenge = format_challenge(Challenge(scheme, {"realm": "api", **params, **extra}))
            headers.append(("WWW-Authenticate", challenge))
        reason = {200: "OK", 201: "Created", 401: "Unauthorized", 403: "Forbidden"}[status]
        start_response(f"{status} {reason}", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def answer(
        self, method: str, url: str, authorization: str | None, environ: dict[str, Any]
    ) -> tuple[int, dict[str, str], list[tuple[str, str]]]:
        scheme, _, token = (authorization or "").partition(" ")
        grant = self.grants.get(token)
        if grant is None or token in self.revoked or scheme != ("DPoP" if grant.jkt else "Bearer"):
            return 401, {"error": "invalid_token"}, []
        headers: list[tuple[str, str]] = []
        if grant.jkt is not None:
            try:
                proof = self.verifier.verify(
                    environ.get("HTTP_DPOP", ""), method=method, url=url, access_token=token
                )
            except DPoPNonceRequired as needed:
                return 401, {"error": "use_dpop_nonce"}, [("DPoP-Nonce", needed.nonce)]
            except InvalidDPoPProof:
                return 401, {"error": "invalid_dpop_proof"}, []
            if proof.jkt != grant.jkt:
                return 401, {"error": "invalid_token"}, []
        checks = [self.scope_check, self.authentication_check]
        for check in reversed(checks) if self.authentication_first else checks:
            refused = check(method, grant)
            if refused is not None:
                return *refused, headers
        return (201 if method == "POST" else 200), {}, headers

    def scope_check(self, method: str, grant: Grant) -> tuple[int, dict[str, str]] | None:
        needed = "approve" if method == "POST" else "read"
        return None if needed in grant.scopes else (403, {"error": "insufficient_scope", "scope": needed})

    def authentication_check(self, method: str, grant: Grant) -> tuple[int, dict[str, str]] | None:
        if method != "POST" or (grant.acr in ("mfa", "hwk") and self.clock() - grant.auth_time <= 300):
            return None
        return 401, {"error": "insufficient_user_authentication", **STEP_UP}

    def statuses(self) -> list[int]:
        return [seen.status for seen in self.seen]

    def tokens(self) -> list[str | None]:
        return [seen.authorization for seen in self.seen]


class AuthorizationServer:
    """The token provider of a person who signed in with a password at the start: a token request
    with ``acr_values`` the person's session does not meet, or a ``max_age`` it is older than, has
    them sign in again (RFC 9470 §4, OpenID Connect Core §3.1.2.1), with the first of the asked
    methods among ``factors`` they can pass (a password if none). Records what it was asked."""

    def __init__(self, api: API, clock: FakeClock, factors: tuple[str, ...] = ("pwd", "mfa")) -> None:
        self.api, self.clock, self.factors = api, clock, factors
        self.session = ("pwd", clock())
        self.asked: list[Asked] = []
        self.keys: list[DPoPKey | None] = []
        self._serial = itertools.count(1)

    def __call__(
        self,
        scopes: frozenset[str] | None,
        *,
        acr_values: tuple[str, ...] | None = None,
        max_age: int | None = None,
        dpop_key: DPoPKey | None = None,
    ) -> str:
        self.asked.append((scopes, acr_values, max_age))
        self.keys.append(dpop_key)
        acr, auth_time = self.session
        now = self.clock()
        if (acr_values is not None and acr not in acr_values) or (
            max_age is not None and now - auth_time > max_age
        ):
            passed = [value for value in acr_values or () if value in self.factors]
            self.session = acr, auth_time = (passed[0] if passed else "pwd"), now
        token = f"tok-{next(self._serial)}"
        jkt = None if dpop_key is None else dpop_key.jkt
        self.api.grants[token] = Grant(scopes or frozenset({"read"}), acr, auth_time, jkt)
        return token


def make_auth(client: str, provider: Callable[..., Any], **options: Any) -> Any:
    return (RequestsStepUpAuth if client == "requests" else StepUpAuth)(provider, **options)


@dataclass(frozen=True)
class Got:
    status: int
    history: list[int]
    challenge: str | None
    body: bytes


Call = tuple[str, str, bytes | None]


def send_all(client: str, auth: Any, calls: list[Call]) -> list[Got]:
    """Send ``calls`` (method, URL, body) in order through one client of ``client`` with ``auth``."""

    def got(r: Any) -> Got:
        return Got(
            r.status_code, [h.status_code for h in r.history], r.headers.get("WWW-Authenticate"), r.content
        )

    if client == "requests":
        with requests.Session() as session:
            session.auth = auth
            return [got(session.request(m, u, data=b, timeout=10)) for m, u, b in calls]
    library, _, mode = client.partition("-")
    if not mode:
        with HTTPX[library].Client(auth=auth, timeout=10) as http:
            return [got(http.request(m, u, content=b)) for m, u, b in calls]

    async def run() -> list[Got]:
        async with HTTPX[library].AsyncClient(auth=auth, timeout=10) as http:
            return [got(await http.request(m, u, content=b)) for m, u, b in calls]

    return asyncio.run(run())


@contextmanager
def running(**options: Any) -> Iterator[tuple[API, AuthorizationServer, FakeClock, str]]:
    clock = FakeClock()
    api = API(clock, **options)
    with serve_wsgi(api) as base:
        yield api, AuthorizationServer(api, clock), clock, base


READ, BOTH = frozenset({"read"}), frozenset({"read", "approve"})
MFA = ("mfa", "hwk")


# -- the step-up, Bearer and DPoP ---------------------------------------------------------------------


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_scopes_then_authentication_in_two_steps(client: str, dpop: bool) -> None:
    """403 insufficient_scope, then 401 insufficient_user_authentication, then success: one
    request, two steps, with the default max_retries of 1. The second token is asked for the
    current scopes with the challenge's acr_values and max_age; the body is replayed each time."""
    key = DPoPKey.generate(clock=FakeClock()) if dpop else None
    scheme = "DPoP" if dpop else "Bearer"
    with running() as (api, issuer, _, base):
        auth = make_auth(client, issuer, scopes=READ, dpop_key=key)
        approved, read = send_all(client, auth, [("POST", f"{base}/a", b"yes"), ("GET", f"{base}/a", None)])
    assert (approved.status, approved.history, approved.body) == (201, [403, 401], b"yes")
    assert read.status == 200 and read.history == []
    assert api.statuses() == [403, 401, 201, 200]
    assert issuer.asked == [(READ, None, None), (BOTH, None, None), (BOTH, MFA, 300)]
    assert issuer.keys == [key] * 3
    assert api.tokens() == [f"{scheme} tok-1", f"{scheme} tok-2", f"{scheme} tok-3", f"{scheme} tok-3"]
    assert [seen.body for seen in api.seen[:3]] == [b"yes"] * 3
    assert api.grants["tok-3"].acr == "mfa"


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_authentication_then_scopes_in_two_steps(client: str, dpop: bool) -> None:
    """A server that asks for the authentication first: the scope step-up after it asks with the
    same acr_values and max_age, so it does not undo the sign-in the request just needed."""
    key = DPoPKey.generate(clock=FakeClock()) if dpop else None
    with running(authentication_first=True) as (_, issuer, _, base):
        [approved] = send_all(
            client, make_auth(client, issuer, scopes=READ, dpop_key=key), [("POST", f"{base}/a", b"yes")]
        )
    assert (approved.status, approved.history) == (201, [401, 403])
    assert issuer.asked == [(READ, None, None), (READ, MFA, 300), (BOTH, MFA, 300)]


@pytest.mark.parametrize("client", CLIENTS)
def test_the_requirement_does_not_outlive_the_request(client: str) -> None:
    """The strong token serves the requests after it; a token fetched for a later request (here a
    fresh one after invalid_token) is asked without acr_values and max_age: they were the
    requirement of one resource. Once max_age has passed, the next approval steps up again."""
    with running() as (api, issuer, clock, base):
        auth = make_auth(client, issuer, scopes=BOTH)
        assert [got.status for got in send_all(client, auth, [("POST", f"{base}/a", b"1")])] == [201]
        api.revoked.add("tok-2")
        assert [got.status for got in send_all(client, auth, [("GET", f"{base}/a", None)])] == [200]
        clock.advance(301)  # the person's sign-in, which tok-3 carries too, is now too old
        [again] = send_all(client, auth, [("POST", f"{base}/a", b"2")])
    assert (again.status, again.history) == (201, [401])
    assert issuer.asked == [(BOTH, None, None), (BOTH, MFA, 300), (BOTH, None, None), (BOTH, MFA, 300)]
    assert api.statuses() == [401, 201, 401, 200, 401, 201]
    assert api.grants["tok-4"].auth_time == clock()


@pytest.mark.parametrize("client", ["httpx-async", "httpx2-async"])
def test_an_async_provider_steps_up_too(client: str) -> None:
    with running() as (_, issuer, _, base):

        async def provider(
            scopes: frozenset[str] | None,
            acr_values: tuple[str, ...] | None = None,
            max_age: int | None = None,
        ) -> str:
            return await asyncio.to_thread(issuer, scopes, acr_values=acr_values, max_age=max_age)

        [approved] = send_all(client, make_auth(client, provider, scopes=BOTH), [("POST", f"{base}/a", b"x")])
    assert (approved.status, approved.history) == (201, [401])
    assert issuer.asked == [(BOTH, None, None), (BOTH, MFA, 300)]


@pytest.mark.parametrize("client", CLIENTS)
def test_dpop_nonce_scope_and_authentication_combine(client: str) -> None:
    """Under DPoP with server nonces (RFC 9449 §9): a nonce, more scopes, a stronger sign-in, each
    once; three retries of one request, two tokens after the first, each bound to the key."""
    clock = FakeClock()
    api = API(clock, nonces=DPoPNonces(b"n" * 32))
    issuer, key = AuthorizationServer(api, clock), DPoPKey.generate(clock=clock)
    with serve_wsgi(api) as base:
        [approved] = send_all(
            client, make_auth(client, issuer, scopes=READ, dpop_key=key), [("POST", f"{base}/a", b"x")]
        )
    assert (approved.status, approved.history) == (201, [401, 403, 401])
    assert [seen.error for seen in api.seen] == [
        "use_dpop_nonce",
        "insufficient_scope",
        "insufficient_user_authentication",
        None,
    ]
    assert issuer.asked == [(READ, None, None), (BOTH, None, None), (BOTH, MFA, 300)]
    assert issuer.keys == [key] * 3


# -- no loops --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_retries", [1, 3])
@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_person_who_cannot_pass_gets_the_401_after_one_step_up(
    client: str, dpop: bool, max_retries: int
) -> None:
    """The person has no second factor: the authorization server issues a password sign-in again,
    the server refuses it again, and that 401 is the caller's, whatever max_retries allows."""
    key = DPoPKey.generate(clock=FakeClock()) if dpop else None
    with running() as (api, issuer, _, base):
        issuer.factors = ("pwd",)
        auth = make_auth(client, issuer, scopes=READ, dpop_key=key, max_retries=max_retries)
        [refused] = send_all(client, auth, [("POST", f"{base}/a", b"x")])
    assert (refused.status, refused.history) == (401, [403, 401])
    assert insufficient_user_authentication(
        401, [refused.challenge or ""], scheme="DPoP" if dpop else "Bearer"
    )
    assert issuer.asked == [(READ, None, None), (BOTH, None, None), (BOTH, MFA, 300)]
    assert api.statuses() == [403, 401, 401]


@pytest.mark.parametrize("client", CLIENTS)
def test_max_retries_zero_asks_for_nothing(client: str) -> None:
    with running() as (_, issuer, _, base):
        [refused] = send_all(
            client, make_auth(client, issuer, scopes=BOTH, max_retries=0), [("POST", f"{base}/a", b"x")]
        )
    assert (refused.status, refused.history) == (401, [])
    assert issuer.asked == [(BOTH, None, None)]


# -- providers that cannot have a person authenticate -------------------------------------------------


def client_credentials(scopes: frozenset[str] | None) -> str:
    return "cc-token"


def with_kwargs(scopes: frozenset[str] | None, **options: Any) -> str:
    """Written for ``dpop_key`` before acr_values existed: its keywords go on to a function that
    takes only that one."""
    return client_credentials(scopes, **options)


def acr_only(scopes: frozenset[str] | None, *, acr_values: tuple[str, ...] | None = None) -> str:
    return "cc-token"


def positional_only(scopes: frozenset[str] | None, acr_values: Any = None, max_age: Any = None, /) -> str:
    return "cc-token"


@pytest.mark.parametrize("provider", [client_credentials, with_kwargs, acr_only, positional_only])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_provider_without_the_keywords_gets_the_401(client: str, provider: Callable[..., str]) -> None:
    """A provider that does not name both ``acr_values`` and ``max_age`` (client credentials:
    no person to authenticate) is never asked again: the 401 is returned as it is."""
    with running() as (api, _, clock, base):
        api.grants["cc-token"] = Grant(BOTH, "none", clock(), None)
        calls = [0]

        @functools.wraps(provider)  # the same signature, as inspect sees it (through __wrapped__)
        def counted(*args: Any, **kwargs: Any) -> str:
            calls[0] += 1
            return provider(*args, **kwargs)

        [refused] = send_all(client, make_auth(client, counted, max_retries=3), [("POST", f"{base}/a", b"x")])
    assert (refused.status, refused.history) == (401, [])
    assert refused.challenge is not None and "insufficient_user_authentication" in refused.challenge
    assert calls == [1]


# -- malformed challenges ----------------------------------------------------------------------------

#: The parameters after ``error="insufficient_user_authentication"``, as sent (some could not be
#: built with format_challenge, which refuses non-ASCII).
MALFORMED: list[str] = [
    'max_age="abc"',
    'max_age="-1"',
    'max_age="+300"',
    'max_age="300.0"',
    'max_age=" 300"',
    'max_age="3_00"',
    'max_age="3e2"',
    'max_age=""',
    'max_age="2147483648"',  # one past a signed 32-bit integer
    'max_age="99999999999999999999"',
    f'max_age="{"9" * 5000}"',  # past int()'s digit limit too
    'max_age="\u00b2"',  # a superscript two (obs-text)
    'acr_values=""',
    'acr_values="mfa  hwk"',
    'acr_values=" mfa"',
    'acr_values="mfa "',
    'acr_values="mfa\thwk"',
    'acr_values="m\\"fa"',  # an escaped quote
    'acr_values="m\\\\fa"',  # an escaped backslash
    'acr_values="mf\u00e9"',  # obs-text: not ASCII
    f'acr_values="{"a" * 257}"',
    f'acr_values="{" ".join(f"v{i}" for i in range(33))}"',
    'acr_values="mfa", max_age="soon"',  # one good, one bad: nothing is followed
    'acr_values="mfa", acr_values="hwk"',  # twice: the whole header is malformed
]
NEITHER = 'realm="api"'  # well-formed, but it names nothing to ask for


def step_up_challenge(scheme: str, params: str) -> str:
    return f'{scheme} error="insufficient_user_authentication", {params}'


class Challenger:
    """Answers ``GET /<i>`` with 401 and ``[*MALFORMED, NEITHER][i]`` in an
    insufficient_user_authentication challenge of ``scheme``, recording the Authorization of each request."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.seen: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        with self._lock:
            self.seen.append((path, environ.get("HTTP_AUTHORIZATION")))
        value = step_up_challenge(self.scheme, [*MALFORMED, NEITHER][int(path[1:])])
        start_response("401 Unauthorized", [("WWW-Authenticate", value), ("Content-Length", "0")])
        return [b""]


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_malformed_challenge_is_returned_as_is(client: str, dpop: bool) -> None:
    server = Challenger("DPoP" if dpop else "Bearer")
    asked: list[Any] = []

    def provider(scopes: frozenset[str] | None, *, acr_values: Any = None, max_age: Any = None) -> str:
        asked.append((acr_values, max_age))
        return "tok"

    key = DPoPKey.generate(clock=FakeClock()) if dpop else None
    with serve_wsgi(server) as base:
        auth = make_auth(client, provider, dpop_key=key, max_retries=3)
        got = send_all(client, auth, [("GET", f"{base}/{i}", None) for i in range(len(MALFORMED) + 1)])
    assert [(g.status, g.history) for g in got] == [(401, [])] * (len(MALFORMED) + 1)
    assert asked == [(None, None)]  # the first token, and nothing after
    assert len(server.seen) == len(MALFORMED) + 1


@pytest.mark.parametrize("params", MALFORMED)
def test_the_helper_refuses_malformed_values(params: str) -> None:
    assert insufficient_user_authentication(401, [step_up_challenge("Bearer", params)]) is None


# -- across origins ----------------------------------------------------------------------------------


class Hop:
    """``/start`` redirects to ``location``; ``/steal`` answers 401 insufficient_user_authentication."""

    def __init__(self, scheme: str) -> None:
        self.scheme, self.location = scheme, ""
        self.seen: list[tuple[str, str | None, str | None]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        self.seen.append((path, environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_DPOP")))
        if path == "/start":
            start_response("302 Found", [("Location", self.location), ("Content-Length", "0")])
        else:
            params = {"error": "insufficient_user_authentication", **STEP_UP}
            headers = [("WWW-Authenticate", format_challenge(Challenge(self.scheme, params)))]
            start_response("401 Unauthorized", [*headers, ("Content-Length", "0")])
        return [b""]


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_another_origins_challenge_is_returned_as_is(client: str, dpop: bool) -> None:
    """The API redirects to another origin (another port), whose 401
    insufficient_user_authentication is returned as it is: the provider, which could have the
    person authenticate, is never asked, and nothing of ours reaches that origin."""
    scheme = "DPoP" if dpop else "Bearer"
    api, other = Hop(scheme), Hop(scheme)
    asked: list[Any] = []

    def provider(scopes: frozenset[str] | None, *, acr_values: Any = None, max_age: Any = None) -> str:
        asked.append((acr_values, max_age))
        return "tok"

    key = DPoPKey.generate(clock=FakeClock()) if dpop else None
    with serve_wsgi(api) as api_base, serve_wsgi(other) as other_base:
        api.location = f"{other_base}/steal"
        auth = make_auth(client, provider, dpop_key=key)
        if client == "requests":
            with requests.Session() as session:
                response: Any = session.get(f"{api_base}/start", auth=auth, timeout=10)
        else:
            library, _, mode = client.partition("-")
            if not mode:
                with HTTPX[library].Client(auth=auth, follow_redirects=True) as http:
                    response = http.get(f"{api_base}/start")
            else:

                async def run() -> Any:
                    async with HTTPX[library].AsyncClient(auth=auth, follow_redirects=True) as http:
                        return await http.get(f"{api_base}/start")

                response = asyncio.run(run())
    assert response.status_code == 401 and [r.status_code for r in response.history] == [302]
    assert asked == [(None, None)]
    assert [seen[:2] for seen in api.seen] == [("/start", f"{scheme} tok")]
    assert [seen[:2] for seen in other.seen] == [("/steal", None)]


# -- requests and a body it cannot replay ------------------------------------------------------------


def test_requests_does_not_ask_for_a_retry_it_cannot_send() -> None:
    with running() as (_, issuer, _, base):
        auth = RequestsStepUpAuth(issuer, scopes=BOTH)
        response = requests.post(f"{base}/a", data=iter([b"x", b"y"]), auth=auth, timeout=10)
    assert response.status_code == 401
    assert issuer.asked == [(BOTH, None, None)]  # the person is not sent to sign in for nothing


# -- the helper --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "acr_values", "max_age"),
    [
        (['Bearer error="insufficient_user_authentication", acr_values="mfa hwk", max_age="300"'], MFA, 300),
        (["Bearer error=insufficient_user_authentication, max_age=300"], (), 300),  # token form
        (['Bearer error="insufficient_user_authentication", acr_values="myACR"'], ("myACR",), None),
        (['Bearer error="insufficient_user_authentication", max_age="0"'], (), 0),
        (['Bearer error="insufficient_user_authentication", max_age="2147483647"'], (), 2**31 - 1),
        (['Bearer error="insufficient_user_authentication", acr_values="b a b"'], ("b", "a"), None),
        (['Bearer error="insufficient_user_authentication"'], (), None),  # neither: re-authenticate
        (
            ['Basic realm="x", Bearer realm="api", error="insufficient_user_authentication", max_age="60"'],
            (),
            60,
        ),
        (
            [
                'Bearer error="insufficient_user_authentication", acr_values="'
                + " ".join(["a" * 256] * 32)
                + '"'
            ],
            ("a" * 256,),
            None,
        ),
    ],
)
def test_the_helper_reads_the_challenge(
    values: list[str], acr_values: tuple[str, ...], max_age: int | None
) -> None:
    found = insufficient_user_authentication(401, values)
    assert isinstance(found, InsufficientUserAuthentication)
    assert (found.acr_values, found.max_age) == (acr_values, max_age)


def test_the_helper_keeps_the_description_and_metadata_and_reads_dpop_when_asked() -> None:
    values = [
        'DPoP algs="ES256", error="insufficient_user_authentication", acr_values="hwk",'
        ' error_description="stronger, please", resource_metadata="https://api.test/.well-known/x"',
        'Bearer realm="api"',
    ]
    assert insufficient_user_authentication(401, values) is None  # the Bearer one has no error
    found = insufficient_user_authentication(401, values, scheme="DPoP")
    assert found is not None and found.acr_values == ("hwk",) and found.max_age is None
    assert (found.error_description, found.resource_metadata) == (
        "stronger, please",
        "https://api.test/.well-known/x",
    )
    assert str(found) == "the person must authenticate again: acr hwk"
    both = InsufficientUserAuthentication(MFA, 300, None, None)
    assert (
        str(both) == "the person must authenticate again: acr mfa or hwk and an authentication within 300 s"
    )


@pytest.mark.parametrize(
    ("status", "values"),
    [
        (403, ['Bearer error="insufficient_user_authentication", max_age="300"']),
        (401, ['Bearer error="invalid_token", max_age="300"']),
        (401, ['Basic error="insufficient_user_authentication", max_age="300"']),
        (401, ['Bearer error="insufficient_user_authentication", max_age="300", max_age="30"']),
        (401, ['Bearer error="insufficient_user_authentication", acr_values="unterminated']),
        (401, []),
    ],
)
def test_the_helper_finds_nothing(status: int, values: list[str]) -> None:
    assert insufficient_user_authentication(status, values) is None


def test_a_huge_value_is_refused() -> None:
    """A 1 MiB acr_values or max_age (past the bounds, and past int()'s digit limit) is refused."""
    for params in ({"acr_values": "a " * 524_288 + "a"}, {"max_age": "1" * 1_048_576}):
        value = format_challenge(Challenge("Bearer", {"error": "insufficient_user_authentication", **params}))
        assert insufficient_user_authentication(401, [value]) is None
