"""Step-up clients (httpx, httpx2, requests) against the demo's real authorization server and API,
and against loopback servers that never accept (the retry cap), over real HTTP; and each adapter
without the other libraries installed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests
from werkzeug.wsgi import get_input_stream

from resource_server.client import InsufficientScope, RequestsStepUpAuth, StepUpAuth, insufficient_scope
from tests.support import serve_wsgi

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import Demo, demo_servers
from demo_auth_server import PASSWORDS, fetch_token_with_code

#: StepUpAuth is the auth of a client of either library.
HTTPX = {"httpx": httpx, "httpx2": httpx2}


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running:
        yield running


class Provider:
    """Gets real tokens from the demo authorization server, counting the calls."""

    def __init__(
        self,
        demo: Demo,
        username: str = "user-admin",
        first: str | None = None,
        grants_at_most: frozenset[str] | None = None,
    ) -> None:
        self.demo, self.username, self.first = demo, username, first
        # An authorization server may grant less than asked (RFC 6749 §3.3): this one never
        # grants more than these scopes, whatever the client asks for.
        self.grants_at_most = grants_at_most
        self.asked: list[frozenset[str] | None] = []

    def __call__(self, scopes: frozenset[str] | None) -> str:
        self.asked.append(scopes)
        if self.first is not None and len(self.asked) == 1:
            return self.first
        wanted = scopes or {"project:read"}
        if self.grants_at_most is not None:
            wanted = wanted & self.grants_at_most
        with httpx.Client(timeout=10) as http:
            return fetch_token_with_code(
                self.demo.issuer,
                username=self.username,
                password=PASSWORDS[self.username],
                org="acme",
                scope=" ".join(sorted(wanted)),
                client=http,
            )["access_token"]


@pytest.mark.parametrize("library", HTTPX)
def test_httpx_steps_up_once_and_keeps_its_scopes(demo: Demo, library: str) -> None:
    provider = Provider(demo)
    auth = StepUpAuth(provider, scopes={"project:read"})
    with HTTPX[library].Client(base_url=demo.resource, auth=auth) as client:
        assert client.get("/orgs/acme/projects").status_code == 200
        created = client.post("/orgs/acme/projects", json={"name": f"from-{library}"})
        assert (created.status_code, created.json()["name"]) == (
            201,
            f"from-{library}",
        )  # the body was replayed
        assert [r.status_code for r in created.history] == [403]
        assert client.post("/orgs/acme/projects", json={"name": "again"}).status_code == 201
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]


def test_requests_steps_up_too(demo: Demo) -> None:
    provider = Provider(demo)
    with requests.Session() as session:
        session.auth = RequestsStepUpAuth(provider, scopes={"project:read"})
        created = session.post(f"{demo.resource}/orgs/acme/projects", json={"name": "from-requests"})
        assert (created.status_code, created.json()["name"]) == (201, "from-requests")
        assert [r.status_code for r in created.history] == [403]
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]


@pytest.mark.parametrize("library", HTTPX)
def test_async_client_with_an_async_provider(demo: Demo, library: str) -> None:
    provider = Provider(demo)

    async def provide(scopes: frozenset[str] | None) -> str:
        return await asyncio.to_thread(provider, scopes)

    async def run() -> int:
        auth = StepUpAuth(provide, scopes={"project:read"})
        async with HTTPX[library].AsyncClient(base_url=demo.resource, auth=auth) as client:
            return (await client.post("/orgs/acme/projects", json={"name": "from-async"})).status_code

    assert asyncio.run(run()) == 201
    assert len(provider.asked) == 2


@pytest.mark.parametrize("library", HTTPX)
def test_no_loop_when_the_new_token_still_falls_short(demo: Demo, library: str) -> None:
    """The admin's role holds project:write, but the authorization server grants only
    project:read: the retry gets the same challenge again, and it is returned."""
    provider = Provider(demo, grants_at_most=frozenset({"project:read"}))
    with HTTPX[library].Client(
        base_url=demo.resource, auth=StepUpAuth(provider, scopes={"project:read"}, max_retries=3)
    ) as client:
        response = client.post("/orgs/acme/projects", json={"name": "x"})
    assert response.status_code == 403
    assert provider.asked == [{"project:read"}, {"project:read", "project:write"}]
    denied = insufficient_scope(response.status_code, response.headers.get_list("www-authenticate"))
    assert isinstance(denied, InsufficientScope) and denied.scope == {"project:write"}
    assert denied.resource_metadata == f"{demo.resource}/.well-known/oauth-protected-resource"


@pytest.mark.parametrize("library", HTTPX)
def test_no_step_up_when_the_role_cannot_write(demo: Demo, library: str) -> None:
    """A member's role lacks project:write, so no token could help: the 403 carries no challenge
    and the client does not send its user to re-authorize for nothing."""
    provider = Provider(demo, username="user-member")
    with HTTPX[library].Client(
        base_url=demo.resource, auth=StepUpAuth(provider, scopes={"project:read"}, max_retries=3)
    ) as client:
        response = client.post("/orgs/acme/projects", json={"name": "x"})
    assert response.status_code == 403 and "www-authenticate" not in response.headers
    assert provider.asked == [{"project:read"}]
    assert insufficient_scope(response.status_code, response.headers.get_list("www-authenticate")) is None


@pytest.mark.parametrize("library", [*HTTPX, "requests"])
def test_invalid_token_gets_one_fresh_token(demo: Demo, library: str) -> None:
    provider = Provider(demo, first="expired-or-revoked")
    url = f"{demo.resource}/orgs/acme/projects"
    if library in HTTPX:
        status = HTTPX[library].get(url, auth=StepUpAuth(provider)).status_code
    else:
        status = requests.get(url, auth=RequestsStepUpAuth(provider), timeout=10).status_code
    assert status == 200
    assert provider.asked == [None, None]


def test_requests_does_not_retry_a_body_it_cannot_replay(demo: Demo) -> None:
    provider = Provider(demo)
    chunks = iter([b'{"name": ', b'"streamed"}'])
    response = requests.post(
        f"{demo.resource}/orgs/acme/projects",
        data=chunks,
        headers={"Content-Type": "application/json"},
        auth=RequestsStepUpAuth(provider, scopes={"project:read"}),
        timeout=10,
    )
    assert response.status_code == 403
    assert len(provider.asked) == 1


@pytest.mark.parametrize(
    "values",
    [
        ['Basic realm="x"', 'Bearer realm="api", error="insufficient_scope", scope="a:b c:d"'],
        ['DPoP algs="ES256", Bearer error="insufficient_scope", scope="a:b c:d"'],
        ['Bearer error="insufficient_scope", scope="a:b c:d", Basic realm="x, y"'],
    ],
)
def test_the_bearer_challenge_is_picked_among_others(values: list[str]) -> None:
    denied = insufficient_scope(403, values)
    assert denied is not None and denied.scope == {"a:b", "c:d"}


@pytest.mark.parametrize(
    ("status", "values"),
    [
        (403, []),
        (403, ['Bearer error="invalid_token"']),
        (403, ['Basic realm="x"']),
        (403, ['Bearer error="insufficient_scope", scope="bad\u00a0scope"']),
        (403, ['Bearer error="insufficient_scope", scope="unterminated']),
        (401, ['Bearer error="insufficient_scope", scope="a"']),
    ],
)
def test_no_usable_insufficient_scope(status: int, values: list[str]) -> None:
    denied = insufficient_scope(status, values)
    assert denied is None or not denied.scope


# -- the max_retries cap, against a server that never accepts --------------------------------------


class Refuser:
    """A WSGI app that refuses every request with ``status`` and the challenge ``challenge(n)`` for
    the n-th request, recording the Authorization header and body of each."""

    def __init__(self, status: str, challenge: Callable[[int], str]) -> None:
        self.status, self.challenge = status, challenge
        self.seen: list[tuple[str | None, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = get_input_stream(environ).read()  # by its length, or to its end when chunked
        with self._lock:
            self.seen.append((environ.get("HTTP_AUTHORIZATION"), body))
            count = len(self.seen)
        headers = [("WWW-Authenticate", self.challenge(count)), ("Content-Type", "application/json")]
        start_response(self.status, [*headers, ("Content-Length", "2")])
        return [b"{}"]


class Numbered:
    """A token provider handing out token-1, token-2, ... and recording the scopes asked for."""

    def __init__(self) -> None:
        self.asked: list[frozenset[str] | None] = []

    def __call__(self, scopes: frozenset[str] | None) -> str:
        self.asked.append(scopes)
        return f"token-{len(self.asked)}"


BODY = b'{"name": "x"}'


def post_with_step_up(
    client: str,
    url: str,
    provider: Numbered,
    max_retries: int,
    scopes: set[str] | None = None,
    *,
    streamed: bool = False,
) -> int:
    """POST a small body through the step-up adapter of ``client`` (``httpx``, ``httpx2``,
    ``requests``; ``-async`` for an AsyncClient); the final status. ``streamed``: the body comes
    from a generator, sent chunked."""

    def chunks() -> Iterator[bytes]:
        yield from (BODY[:5], BODY[5:])

    async def async_chunks() -> Any:
        for chunk in chunks():
            yield chunk

    if client == "requests":
        auth = RequestsStepUpAuth(provider, max_retries=max_retries, scopes=scopes)
        return requests.post(url, data=chunks() if streamed else BODY, auth=auth, timeout=10).status_code
    library, _, mode = client.partition("-")
    auth = StepUpAuth(provider, max_retries=max_retries, scopes=scopes)
    if not mode:
        with HTTPX[library].Client(auth=auth) as http:
            return http.post(url, content=chunks() if streamed else BODY).status_code

    async def run() -> int:
        async with HTTPX[library].AsyncClient(auth=auth) as http:
            return (await http.post(url, content=async_chunks() if streamed else BODY)).status_code

    return asyncio.run(run())


CLIENTS = ["httpx", "httpx-async", "httpx2", "httpx2-async", "requests"]


@pytest.mark.parametrize("max_retries", [0, 1, 3])
@pytest.mark.parametrize("client", CLIENTS)
def test_invalid_token_forever_stops_after_max_retries(client: str, max_retries: int) -> None:
    server = Refuser("401 Unauthorized", lambda n: 'Bearer realm="api", error="invalid_token"')
    provider = Numbered()
    with serve_wsgi(server) as base:
        status = post_with_step_up(client, f"{base}/orgs/acme/projects", provider, max_retries)
    assert status == 401
    assert len(server.seen) == max_retries + 1
    # Each attempt carried a fresh token, and the body every time.
    assert server.seen == [(f"Bearer token-{n}", BODY) for n in range(1, max_retries + 2)]
    assert provider.asked == [None] * (max_retries + 1)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
@pytest.mark.parametrize("client", CLIENTS)
def test_insufficient_scope_growing_forever_stops_after_max_retries(client: str, max_retries: int) -> None:
    """Each refusal asks for one scope more, so every retry looks worth it: only the cap ends it."""

    def challenge(n: int) -> str:
        wanted = " ".join(f"s:{i}" for i in range(1, n + 1))
        return f'Bearer realm="api", error="insufficient_scope", scope="{wanted}"'

    server = Refuser("403 Forbidden", challenge)
    provider = Numbered()
    with serve_wsgi(server) as base:
        status = post_with_step_up(client, f"{base}/p", provider, max_retries, scopes={"base:read"})
    assert status == 403
    assert len(server.seen) == max_retries + 1
    assert [auth for auth, _ in server.seen] == [f"Bearer token-{n}" for n in range(1, max_retries + 2)]
    assert provider.asked == [
        frozenset({"base:read", *(f"s:{i}" for i in range(1, n + 1))}) for n in range(max_retries + 1)
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_streamed_bodies_are_replayed(client: str) -> None:
    """httpx and httpx2 hold a generator's body for the retry; requests cannot, and does not retry."""
    server = Refuser("401 Unauthorized", lambda n: 'Bearer realm="api", error="invalid_token"')
    provider = Numbered()
    with serve_wsgi(server) as base:
        assert post_with_step_up(client, f"{base}/p", provider, max_retries=1, streamed=True) == 401
    attempts = 1 if client == "requests" else 2
    assert server.seen == [(f"Bearer token-{n}", BODY) for n in range(1, attempts + 1)]


# -- each adapter works without the other libraries -------------------------------------------------

#: Run in a fresh interpreter: make the libraries named in argv[1] impossible to import (argv[3]
#: "alias": first make ``import httpx`` give httpx2, as ``httpx2.alias_httpx()`` does), then use
#: whatever resource_server.client still offers, with every library left, against the server at argv[2].
WITHOUT = """
import importlib, json, sys

class Uninstalled:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

blocked = {name for name in sys.argv[1].split(",") if name}
sys.meta_path.insert(0, Uninstalled(blocked))
if sys.argv[3:] == ["alias"]:
    import httpx2
    httpx2.alias_httpx()

import resource_server.client as client
from resource_server.client import InsufficientScope, bearer_challenge_of, insufficient_scope
from resource_server.client import InsufficientUserAuthentication, insufficient_user_authentication

report = {"all": sorted(client.__all__), "missing": {}, "loaded": sorted(blocked & set(sys.modules))}
for name in ("StepUpAuth", "RequestsStepUpAuth"):
    try:
        exec(f"from resource_server.client import {name}")
    except ImportError as error:
        report["missing"][name] = str(error)
denied = insufficient_scope(403, ['Bearer error="insufficient_scope", scope="a:b"'])
step_up = insufficient_user_authentication(401, ['Bearer error="insufficient_user_authentication", max_age="60"'])
report["helpers"] = [isinstance(denied, InsufficientScope) and sorted(denied.scope),
                     dict(bearer_challenge_of(['Bearer error="invalid_token"'])),
                     isinstance(step_up, InsufficientUserAuthentication) and step_up.max_age]
if "StepUpAuth" in client.__all__:
    report["bases"] = sorted(base.__module__.partition(".")[0] for base in client.StepUpAuth.__bases__)

def provide():
    tokens = iter(["stale", "fresh"])
    return lambda scopes: next(tokens)

report["status"] = {}
for name in ("httpx", "httpx2"):
    if name not in blocked:
        library = importlib.import_module(name)
        report["status"][library.__name__] = library.get(sys.argv[2], auth=client.StepUpAuth(provide())).status_code
        with library.Client(auth=client.StepUpAuth(provide())) as http:  # a client, not only the function
            assert http.get(sys.argv[2]).status_code == 401
if "requests" not in blocked:
    import requests
    auth = client.RequestsStepUpAuth(provide())
    report["status"]["requests"] = requests.get(sys.argv[2], auth=auth, timeout=10).status_code
print(json.dumps(report))
"""


def run_without(blocked: str, url: str, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT, blocked, url, *extra],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


HELPERS = [
    "DPoPKey",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "bearer_challenge_of",
    "insufficient_scope",
    "insufficient_user_authentication",
]


@pytest.mark.parametrize(
    "blocked",
    [
        "requests",
        "httpx",
        "httpx2",
        "httpx,requests",
        "httpx2,requests",
        "httpx,httpx2",
        "httpx,httpx2,requests",
    ],
)
def test_each_adapter_works_without_the_other_libraries(blocked: str) -> None:
    gone = set(blocked.split(","))
    httpx_left = sorted({"httpx", "httpx2"} - gone)
    kept = {"StepUpAuth": bool(httpx_left), "RequestsStepUpAuth": "requests" not in gone}
    server = Refuser("401 Unauthorized", lambda n: 'Bearer error="invalid_token"')
    with serve_wsgi(server) as base:
        report = run_without(blocked, f"{base}/p")
    assert report["loaded"] == []
    assert report["all"] == sorted([*HELPERS, *(name for name, there in kept.items() if there)])
    assert set(report["missing"]) == {name for name, there in kept.items() if not there}
    if not kept["StepUpAuth"]:  # says what to install
        assert "StepUpAuth needs httpx2 or httpx" in report["missing"]["StepUpAuth"]
        assert "pip install httpx2" in report["missing"]["StepUpAuth"]
    else:  # an Auth of each library left, so that either client takes it
        assert report["bases"] == httpx_left
    if not kept["RequestsStepUpAuth"]:
        assert "RequestsStepUpAuth needs requests" in report["missing"]["RequestsStepUpAuth"]
    assert report["helpers"] == [["a:b"], {"error": "invalid_token"}, 60]
    used = [*httpx_left, *(["requests"] if kept["RequestsStepUpAuth"] else [])]
    assert report["status"] == dict.fromkeys(used, 401)
    # It really ran: each client asked for a fresh token after the first was refused.
    calls = len(used) + len(httpx_left)  # one function call and one client per httpx library
    assert [auth for auth, _ in server.seen] == ["Bearer stale", "Bearer fresh"] * calls


def test_httpx_aliased_to_httpx2() -> None:
    """After ``httpx2.alias_httpx()``, ``import httpx`` is httpx2: one Auth base, not the same one twice."""
    server = Refuser("401 Unauthorized", lambda n: 'Bearer error="invalid_token"')
    with serve_wsgi(server) as base:
        report = run_without("requests", f"{base}/p", "alias")
    assert report["bases"] == ["httpx2"]
    assert report["status"] == {"httpx2": 401}  # "httpx" was httpx2 under another name
    assert [auth for auth, _ in server.seen] == ["Bearer stale", "Bearer fresh"] * 4
