"""Credentials, proofs and step-ups go only to the origin (scheme, host, port: RFC 6454 §4) a
request was first sent to: an API on one loopback server redirects to another origin (``localhost``
instead of ``127.0.0.1``, or another port), which challenges. Every client (requests, httpx and
httpx2, sync and async) follows redirects; the other server's received headers and the provider's
calls show what crossed."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import httpx2
import jwt
import pytest
import requests
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app

from resource_server.client import DPoPKey, RequestsStepUpAuth, StepUpAuth
from tests.support import FakeClock, serve_wsgi

CLIENTS = ["requests", "httpx", "httpx-async", "httpx2", "httpx2-async"]
HTTPX = {"httpx": httpx, "httpx2": httpx2}
#: What each library does with the other headers of a request it redirects to another origin: httpx
#: and httpx2 copy them (the DPoP proof made for the first URL included; they drop Authorization);
#: requests copies them too, but the adapter strips its credentials before requests copies them.
FORWARDS_PROOF = {"requests": False, "httpx": True, "httpx2": True}

Answer = tuple[int, list[tuple[str, str]]]


@dataclass(frozen=True)
class Received:
    """One request as a server received it."""

    path: str
    authorization: str | None
    dpop: str | None


class Server:
    """A WSGI app answering each path with ``routes[path](n)`` (n: the requests to that path so
    far, from 1), recording every request; routes are set once both servers' URLs are known."""

    REASONS: ClassVar[dict[int, str]] = {
        200: "OK",
        302: "Found",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
    }

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[int], Answer]] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        with self._lock:
            self.received.append(Received(path, environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_DPOP")))
            count = sum(1 for seen in self.received if seen.path == path)
        status, headers = self.routes[path](count) if path in self.routes else (404, [])
        start_response(f"{status} {self.REASONS[status]}", [*headers, ("Content-Length", "0")])
        return [b""]

    def seen(self) -> list[tuple[str, str | None]]:
        return [(seen.path, seen.authorization) for seen in self.received]


@contextmanager
def two_servers(other_host: str) -> Iterator[tuple[Server, str, Server, str]]:
    """The API at ``http://127.0.0.1:<port>`` and another origin: ``other_host`` on another port."""
    api, other = Server(), Server()
    with ExitStack() as stack:
        api_base = stack.enter_context(serve_wsgi(api))
        other_base = stack.enter_context(serve_wsgi(other)).replace("127.0.0.1", other_host)
        yield api, api_base, other, other_base


class Numbered:
    """A token provider handing out token-1, token-2, ... and recording the scopes asked for (and
    the acr_values and max_age, when asked: it can have a person authenticate, RFC 9470 §4)."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def __call__(
        self,
        scopes: frozenset[str] | None,
        *,
        acr_values: tuple[str, ...] | None = None,
        max_age: int | None = None,
    ) -> str:
        self.asked.append(scopes if acr_values is None and max_age is None else (scopes, acr_values, max_age))
        return f"token-{len(self.asked)}"


class RecordingKey(DPoPKey):
    """A real DPoPKey that also records the URL of each proof it signs: the proofs no server
    received are in this list too."""

    __slots__ = ("made",)

    def __init__(self, private_key: Any, alg: str | None = None, *, clock: Any = None) -> None:
        super().__init__(private_key, alg, clock=clock)
        self.made: list[str] = []

    def proof(
        self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None
    ) -> str:
        self.made.append(url)
        return super().proof(method, url, access_token=access_token, nonce=nonce)


@dataclass(frozen=True)
class Got:
    """What the caller got: the final status, the statuses before it, the final challenge."""

    status: int
    history: list[int]
    challenge: str | None


def get_all(client: str, auth: Any, urls: list[str]) -> list[Got]:
    """GET ``urls`` in order through one client of ``client`` with ``auth``, following redirects."""
    if client == "requests":
        with requests.Session() as session:
            responses = [session.get(url, auth=auth, timeout=10) for url in urls]
        return [
            Got(r.status_code, [h.status_code for h in r.history], r.headers.get("WWW-Authenticate"))
            for r in responses
        ]
    library, _, mode = client.partition("-")

    def got(r: Any) -> Got:
        return Got(r.status_code, [h.status_code for h in r.history], r.headers.get("www-authenticate"))

    if not mode:
        with HTTPX[library].Client(auth=auth, follow_redirects=True, timeout=10) as http:
            return [got(http.get(url)) for url in urls]

    async def run() -> list[Got]:
        async with HTTPX[library].AsyncClient(auth=auth, follow_redirects=True, timeout=10) as http:
            return [got(await http.get(url)) for url in urls]

    return asyncio.run(run())


def make_auth(client: str, provider: Numbered, key: DPoPKey | None) -> Any:
    return (RequestsStepUpAuth if client == "requests" else StepUpAuth)(provider, dpop_key=key)


def redirect(location: str) -> Callable[[int], Answer]:
    return lambda n: (302, [("Location", location)])


def claims_of(proof: str | None) -> dict[str, Any]:
    return jwt.decode(proof, options={"verify_signature": False}) if proof else {}


@dataclass(frozen=True)
class Case:
    """The other origin's answer to the redirected request."""

    dpop: bool
    status: int
    challenge: str
    nonce: str | None = None

    def answer(self, n: int) -> Answer:
        headers = [("WWW-Authenticate", self.challenge)]
        return self.status, headers + ([("DPoP-Nonce", self.nonce)] if self.nonce else [])


GREEDY = 'error="insufficient_scope", scope="admin:all billing:write"'
SIGN_IN = 'error="insufficient_user_authentication", acr_values="mfa", max_age="0"'
CASES = {
    "invalid_token": Case(False, 401, 'Bearer realm="other", error="invalid_token"'),
    "insufficient_scope": Case(False, 403, f'Bearer realm="other", {GREEDY}'),
    "dpop-invalid_token": Case(True, 401, 'DPoP algs="ES256", error="invalid_token"'),
    "dpop-insufficient_scope": Case(True, 403, f'DPoP algs="ES256", {GREEDY}'),
    "use_dpop_nonce": Case(True, 401, 'DPoP algs="ES256", error="use_dpop_nonce"', "nonce-of-the-other"),
    "insufficient_user_authentication": Case(False, 401, f'Bearer realm="other", {SIGN_IN}'),
    "dpop-insufficient_user_authentication": Case(True, 401, f'DPoP algs="ES256", {SIGN_IN}'),
}
#: The other origin: another host name (an absolute Location), or the same host on another port
#: (a scheme-relative Location, resolved against the API's URL).
OTHERS = {"localhost": ("localhost", ""), "other-port": ("127.0.0.1", "scheme-relative")}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("other_origin", OTHERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_a_challenge_from_another_origin_is_returned_as_is(client: str, other_origin: str, case: str) -> None:
    """The API redirects to another origin, which challenges: the caller gets that challenge,
    the provider is asked for nothing, and nothing of ours reaches the other origin."""
    answer = CASES[case]
    provider = Numbered()
    key = RecordingKey.generate(clock=FakeClock()) if answer.dpop else None
    scheme = "DPoP" if answer.dpop else "Bearer"
    host, form = OTHERS[other_origin]
    with two_servers(host) as (api, api_base, other, other_base):
        steal = f"{other_base}/steal"
        api.routes["/start"] = redirect(steal.removeprefix("http:") if form else steal)
        api.routes["/ok"] = lambda n: (200, [])
        other.routes["/steal"] = answer.answer
        first, after = get_all(
            client, make_auth(client, provider, key), [f"{api_base}/start", f"{api_base}/ok"]
        )
    assert (first.status, first.history, first.challenge) == (answer.status, [302], answer.challenge)
    assert after == Got(200, [], None)
    assert provider.asked == [None]  # never asked for its scopes, a fresh token, or a new sign-in
    assert api.seen() == [("/start", f"{scheme} token-1"), ("/ok", f"{scheme} token-1")]
    assert other.seen() == [("/steal", None)]  # once: no retry, and no token
    library = client.partition("-")[0]
    if key is None:
        assert [seen.dpop for seen in (*api.received, *other.received)] == [None] * 3
        return
    assert key.made == [f"{api_base}/start", f"{api_base}/ok"]  # no proof made for the other origin
    assert other.received[0].dpop == (api.received[0].dpop if FORWARDS_PROOF[library] else None)
    # The other origin's nonce went nowhere: not to the API's next request.
    assert [claims_of(seen.dpop).get("nonce") for seen in api.received] == [None, None]


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_credentials_follow_a_redirect_within_the_origin(client: str, dpop: bool) -> None:
    """Same origin: the libraries keep Authorization on the redirect, and a step-up asked for there
    is done (requests retries the redirected request; httpx and httpx2 the first one, whose
    redirect they follow again). Every library also copies the DPoP header: the redirected request
    carries the proof made for the first URL."""
    provider = Numbered()
    key = RecordingKey.generate(clock=FakeClock()) if dpop else None
    scheme = "DPoP" if dpop else "Bearer"
    with two_servers("localhost") as (api, api_base, _, _):
        api.routes["/start"] = redirect("/target")
        challenge = f'{scheme} error="insufficient_scope", scope="write"'
        api.routes["/target"] = lambda n: (200, []) if n > 1 else (403, [("WWW-Authenticate", challenge)])
        [got] = get_all(client, make_auth(client, provider, key), [f"{api_base}/start"])
    assert (got.status, provider.asked) == (200, [None, {"write"}])
    retried = ["/target"] if client == "requests" else ["/start", "/target"]
    assert api.seen() == [
        ("/start", f"{scheme} token-1"),
        ("/target", f"{scheme} token-1"),  # the library kept Authorization on the redirect
        *((path, f"{scheme} token-2") for path in retried),
    ]
    if key is not None:
        assert key.made == [f"{api_base}/start", f"{api_base}{retried[0]}"]
        proofs = [seen.dpop for seen in api.received]
        redirected = [1] if client == "requests" else [1, 3]  # each carried the proof before it
        assert [proofs[i] for i in redirected] == [proofs[i - 1] for i in redirected]


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_response_reached_through_another_origin_is_returned_as_is(client: str, dpop: bool) -> None:
    """Out and back: the API redirects to another origin, which redirects to a URL of the API of its
    choosing. The answer there is the other origin's doing: its challenge is returned as it is."""
    provider = Numbered()
    key = RecordingKey.generate(clock=FakeClock()) if dpop else None
    scheme = "DPoP" if dpop else "Bearer"
    with two_servers("localhost") as (api, api_base, other, other_base):
        api.routes["/start"] = redirect(f"{other_base}/bounce")
        other.routes["/bounce"] = redirect(f"{api_base}/admin")
        challenge = f'{scheme} error="insufficient_scope", scope="admin:all"'
        api.routes["/admin"] = lambda n: (403, [("WWW-Authenticate", challenge)])
        [got] = get_all(client, make_auth(client, provider, key), [f"{api_base}/start"])
    assert (got.status, got.history, got.challenge) == (403, [302, 302], challenge)
    assert provider.asked == [None]
    assert api.seen() == [("/start", f"{scheme} token-1"), ("/admin", None)]
    assert other.seen() == [("/bounce", None)]
    if key is not None:
        assert key.made == [f"{api_base}/start"]
        forwarded = api.received[0].dpop if FORWARDS_PROOF[client.partition("-")[0]] else None
        assert [other.received[0].dpop, api.received[1].dpop] == [forwarded, forwarded]


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_retry_that_redirects_to_another_origin_carries_nothing_there(client: str, dpop: bool) -> None:
    """The API refuses the first token, then redirects the retry to another origin: neither token
    nor proof goes there (requests builds the redirect from the first request, not the retry)."""
    provider = Numbered()
    key = RecordingKey.generate(clock=FakeClock()) if dpop else None
    scheme = "DPoP" if dpop else "Bearer"
    with two_servers("localhost") as (api, api_base, other, other_base):
        api.routes["/start"] = lambda n: (
            (401, [("WWW-Authenticate", f'{scheme} error="invalid_token"')])
            if n == 1
            else (302, [("Location", f"{other_base}/elsewhere")])
        )
        other.routes["/elsewhere"] = lambda n: (200, [])
        [got] = get_all(client, make_auth(client, provider, key), [f"{api_base}/start"])
    # requests' own history loses the 401: it files the auth's retry under the redirect it follows.
    assert (got.status, got.history) == (200, [302] if client == "requests" else [401, 302])
    assert provider.asked == [None, None]
    assert api.seen() == [("/start", f"{scheme} token-1"), ("/start", f"{scheme} token-2")]
    assert other.seen() == [("/elsewhere", None)]
    if key is not None:
        assert key.made == [f"{api_base}/start"] * 2
        forwarded = api.received[1].dpop if FORWARDS_PROOF[client.partition("-")[0]] else None
        assert other.received[0].dpop == forwarded


# -- an upgrade from http to https on the default ports ------------------------------------------------


class WSGIAdapter(requests.adapters.BaseAdapter):
    """A requests transport handing each request to a WSGI app in this process, as httpx's
    WSGITransport does: URLs on the default ports (80, 443) without binding them. Sessions,
    redirects and hooks are requests' own."""

    def __init__(self, app: Server) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        environ = EnvironBuilder(
            path=url.path,
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method,
            headers=dict(request.headers),
            data=request.body,
        ).get_environ()
        body, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        response = requests.Response()
        response.status_code, response.reason = int(status[:3]), status[4:]
        response.headers = CaseInsensitiveDict(headers.to_wsgi_list())
        response.raw, response.url, response.request = io.BytesIO(b"".join(body)), request.url, request
        response.connection = self  # type: ignore[assignment]  # a BaseAdapter: what a retry is sent through
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
@pytest.mark.parametrize("library", ["requests", "httpx", "httpx2"])
def test_an_upgrade_to_https_is_another_origin(library: str, dpop: bool) -> None:
    """``http://api.test`` redirects to ``https://api.test``: another origin, on which requests,
    httpx and httpx2 all keep Authorization (and every other header). The requests adapter takes
    its credentials off first; httpx and httpx2 send them below the Auth flow, as docs/clients.md
    says. Either way the challenge found there is returned as it is."""
    provider = Numbered()
    key = RecordingKey.generate(clock=FakeClock()) if dpop else None
    scheme = "DPoP" if dpop else "Bearer"
    plain, tls = Server(), Server()
    plain.routes["/p"] = redirect("https://api.test/p")
    tls.routes["/p"] = lambda n: (401, [("WWW-Authenticate", f'{scheme} error="invalid_token"')])
    auth = make_auth(library, provider, key)
    if library == "requests":
        with requests.Session() as session:
            session.mount("http://api.test", WSGIAdapter(plain))
            session.mount("https://api.test", WSGIAdapter(tls))
            status = session.get("http://api.test/p", auth=auth).status_code
    else:
        transports = {"http://api.test": plain, "https://api.test": tls}
        mounts = {prefix: HTTPX[library].WSGITransport(app=app) for prefix, app in transports.items()}
        with HTTPX[library].Client(mounts=mounts, auth=auth, follow_redirects=True) as http:
            status = http.get("http://api.test/p").status_code
    assert status == 401 and provider.asked == [None]
    assert plain.seen() == [("/p", f"{scheme} token-1")]
    if library == "requests":
        assert tls.received == [Received("/p", None, None)]
    else:  # the library's own doing: the token, and the proof made for http://api.test/p
        assert tls.received == [Received("/p", f"{scheme} token-1", plain.received[0].dpop)]
    if key is not None:
        assert key.made == ["http://api.test/p"]
