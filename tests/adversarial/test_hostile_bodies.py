"""Hostile request bodies over real servers (gunicorn and werkzeug's), sent through raw sockets:
every body the library reads (viewer-context binding, form-token detection, the agent endpoints)
and the demo's own JSON views answer malformed chunked encodings, cut connections, oversized and
deeply nested JSON with a 400 JSON error: never a 500, never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from resource_server.viewer_context import ViewerContextSigner
from tests.adversarial.body_apps import (
    GATEWAY_KEY,
    PASSWORD,
    auth_server,
    demo,
    demo_touched,
    gateway,
    middleware,
)
from tests.support import gunicorn as serve_gunicorn
from tests.support import serve_wsgi

DEEP_ARRAY = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
MALFORMED_CHUNKED = b"zz\r\nnot a chunk size\r\n0\r\n\r\n"
TIMEOUT = 20.0  # a hang fails the test instead of stalling the suite


def gunicorn(factory: str) -> AbstractContextManager[tuple[str, int]]:
    """``gunicorn -w 1`` serving a body app; yields (host, port) once it listens."""
    return serve_gunicorn(f"tests.adversarial.body_apps:{factory}()", timeout=TIMEOUT)


@contextmanager
def werkzeug(factory: str) -> Iterator[tuple[str, int]]:
    factories = {
        "auth_server": auth_server,
        "demo": demo,
        "demo_touched": demo_touched,
        "gateway": gateway,
        "middleware": middleware,
    }
    with serve_wsgi(factories[factory]()) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


SERVERS = {"gunicorn": gunicorn, "werkzeug": werkzeug}


@pytest.fixture(
    scope="module",
    params=[(server, app) for server in SERVERS for app in ("demo", "demo_touched")],
    ids=lambda param: "-".join(param),
)
def demo_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    server, app = request.param
    with SERVERS[server](app) as address:
        yield address


@pytest.fixture(scope="module", params=list(SERVERS))
def gateway_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with SERVERS[request.param]("gateway") as address:
        yield address


@pytest.fixture(scope="module", params=list(SERVERS))
def middleware_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with SERVERS[request.param]("middleware") as address:
        yield address


@pytest.fixture(scope="module")
def cookie(demo_server: tuple[str, int]) -> str:
    """A first-party session of an admin of acme, from the demo's own login."""
    host, port = demo_server
    response = httpx.post(
        f"http://{host}:{port}/login", json={"username": "user-admin", "password": PASSWORD}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return f"session={response.cookies['session']}"


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, close our sending side (a request shorter than its Content-Length is then
    a client that died halfway through its body), and read the whole answer."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        # Sent from a thread: a server may answer (and stop reading) before the body ends, as
        # HTTP allows, and then a blocking send would never finish.
        sender = threading.Thread(target=_send, args=(sock, raw), daemon=True)
        sender.start()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sender.join(TIMEOUT)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    return int(status_line.split()[1]), headers, body


def _send(sock: socket.socket, raw: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may close first
        sock.sendall(raw)
        # Without it, werkzeug's server, draining a body it did not read, waits for more.
        sock.shutdown(socket.SHUT_WR)


def request(
    path: str,
    body: bytes,
    *,
    chunked: bool = False,
    length: int | None = None,
    content_type: str = "application/json",
    extra: str = "",
) -> bytes:
    framing = (
        "Transfer-Encoding: chunked\r\n"
        if chunked
        else f"Content-Length: {len(body) if length is None else length}\r\n"
    )
    head = f"POST {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\nContent-Type: {content_type}\r\n"
    return f"{head}{framing}{extra}\r\n".encode() + body


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def assert_bad_request(answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    status, headers, body = answer
    assert status == 400, body[:300]
    assert headers["content-type"].startswith("application/json")
    assert b"Traceback" not in body
    document = json.loads(body)
    assert document["error"] == "invalid_request" and document["error_description"]
    return document


# Every way to break a body, each sent whole (so the server's answer is the only variable).
BROKEN = {
    "malformed chunked": {"body": MALFORMED_CHUNKED, "chunked": True},
    "nested 1,000 deep (array)": {"body": DEEP_ARRAY},
    "nested 1,000 deep (object), chunked": {"body": chunked(DEEP_OBJECT), "chunked": True},
    "oversized": {"body": b'{"x": "' + b"a" * 200_000 + b'"}'},
    "not JSON": {"body": b"{'single': 'quotes'}"},
    "duplicate members": {"body": b'{"sessionId": "a", "sessionId": "b"}'},
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize(
    "path", ["/orgs/acme/agent-token", "/orgs/acme/agent-approvals", "/orgs/acme/projects"]
)
def test_json_endpoints_refuse_broken_bodies(
    demo_server: tuple[str, int], cookie: str, path: str, case: str
) -> None:
    options = dict(BROKEN[case])
    body = options.pop("body")
    assert_bad_request(exchange(demo_server, request(path, body, extra=f"Cookie: {cookie}\r\n", **options)))


@pytest.mark.parametrize("case", list(BROKEN))
def test_login_refuses_broken_bodies(demo_server: tuple[str, int], case: str) -> None:
    options = dict(BROKEN[case])
    body = options.pop("body")
    assert_bad_request(exchange(demo_server, request("/login", body, **options)))


@pytest.mark.parametrize("path", ["/login", "/orgs/acme/agent-token", "/orgs/acme/projects"])
def test_a_connection_cut_before_the_body_ends_is_a_400(
    demo_server: tuple[str, int], cookie: str, path: str
) -> None:
    raw = request(path, b'{"name": "abc"', length=1000, extra=f"Cookie: {cookie}\r\n")
    assert_bad_request(exchange(demo_server, raw))


def viewer_context(body: bytes = b"{}") -> str:
    """A genuine context from the demo's gateway key for POST /orgs/acme/projects with ``body``:
    the body is read only for a context sound in every other respect."""
    signer = ViewerContextSigner(
        keys={"gw-1": GATEWAY_KEY}, signing_kid="gw-1", issuer="demo-gateway", audience="https://api.test"
    )
    headers = signer.headers(user_id="user-admin", method="POST", path="/orgs/acme/projects", body=body)
    return f"X-Viewer-Context: {headers['X-Viewer-Context']}\r\n"


@pytest.mark.parametrize(
    "body", [MALFORMED_CHUNKED, chunked(b"x" * (2 * 1024 * 1024))], ids=["malformed", "2 MiB"]
)
def test_a_viewer_context_bound_to_a_broken_body_is_a_400(demo_server: tuple[str, int], body: bytes) -> None:
    """No credentials but an X-Viewer-Context: the context is bound to the body's hash, so the
    body is read to verify it; a body that cannot be read (or is too large) is the client's error."""
    raw = request("/orgs/acme/projects", body, chunked=True, extra=viewer_context())
    assert_bad_request(exchange(demo_server, raw))


def test_a_viewer_context_with_a_cut_body_is_a_400(demo_server: tuple[str, int]) -> None:
    raw = request("/orgs/acme/projects", b"{}", length=500, extra=viewer_context())
    assert_bad_request(exchange(demo_server, raw))


def test_a_forged_viewer_context_reads_no_body(demo_server: tuple[str, int]) -> None:
    """The signature is checked before the body is read: a forged header with a broken body is
    a plain 401 (no credentials), not a 400 about a body nobody needed to read."""
    raw = request("/orgs/acme/projects", MALFORMED_CHUNKED, chunked=True, extra="X-Viewer-Context: a.b.c\r\n")
    status, _, body = exchange(demo_server, raw)
    assert status == 401 and json.loads(body)["error"] == "unauthorized"


def test_a_genuine_viewer_context_with_its_body_is_accepted(demo_server: tuple[str, int]) -> None:
    body = b'{"name": "via context"}'
    status, _, answer = exchange(
        demo_server, request("/orgs/acme/projects", body, extra=viewer_context(body))
    )
    assert status == 201 and json.loads(answer)["created_by"] == "user-admin"


FORM = "application/x-www-form-urlencoded"


def test_the_middleware_refuses_a_broken_form_body(middleware_server: tuple[str, int]) -> None:
    raw = request("/orgs/acme/projects", MALFORMED_CHUNKED, chunked=True, content_type=FORM)
    assert_bad_request(exchange(middleware_server, raw))


def test_the_middleware_refuses_a_cut_form_body(middleware_server: tuple[str, int]) -> None:
    raw = request("/orgs/acme/projects", b"a=1&b=2", length=900, content_type=FORM)
    assert_bad_request(exchange(middleware_server, raw))


def test_sound_bodies_still_work(demo_server: tuple[str, int], cookie: str) -> None:
    """The guards refuse what is broken, and only that: the same requests, well formed, succeed."""
    created = exchange(
        demo_server,
        request(
            "/orgs/acme/projects",
            chunked(b'{"name": "chunked"}'),
            chunked=True,
            extra=f"Cookie: {cookie}\r\n",
        ),
    )
    assert created[0] == 201 and json.loads(created[2])["name"] == "chunked"
    minted = exchange(
        demo_server,
        request("/orgs/acme/agent-token", b'{"sessionId": "s-1"}', extra=f"Cookie: {cookie}\r\n"),
    )
    assert minted[0] == 200 and json.loads(minted[2])["token"].startswith("cap_")


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_gateway_login_refuses_broken_bodies(gateway_server: tuple[str, int], case: str) -> None:
    options = dict(BROKEN[case])
    body = options.pop("body")
    assert_bad_request(exchange(gateway_server, request("/login", body, **options)))


def test_the_gateway_does_not_forward_a_broken_body(gateway_server: tuple[str, int]) -> None:
    host, port = gateway_server
    login = httpx.post(
        f"http://{host}:{port}/login", json={"username": "user-admin", "password": PASSWORD}, timeout=TIMEOUT
    )
    cookie = f"session={login.cookies['session']}"
    for raw in (
        request("/api/orgs/acme/projects", MALFORMED_CHUNKED, chunked=True, extra=f"Cookie: {cookie}\r\n"),
        request(
            "/api/orgs/acme/projects",
            chunked(b"x" * (2 * 1024 * 1024)),
            chunked=True,
            extra=f"Cookie: {cookie}\r\n",
        ),
        request("/api/orgs/acme/projects", b"{}", length=300, extra=f"Cookie: {cookie}\r\n"),
    ):
        assert_bad_request(exchange(gateway_server, raw))


@pytest.fixture(scope="module", params=list(SERVERS))
def auth_server_address(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with SERVERS[request.param]("auth_server") as address:
        yield address


@pytest.mark.parametrize("path", ["/token", "/authorize?response_type=code&client_id=x"])
@pytest.mark.parametrize("cut", [False, True], ids=["malformed chunked", "cut"])
def test_the_demo_authorization_server_refuses_broken_bodies(
    auth_server_address: tuple[str, int], path: str, cut: bool
) -> None:
    raw = (
        request(path, b"grant_type=client", length=400, content_type=FORM)
        if cut
        else request(path, MALFORMED_CHUNKED, chunked=True, content_type=FORM)
    )
    status, _, body = exchange(auth_server_address, raw)
    assert status == 400, body[:300]
    assert b"Traceback" not in body
