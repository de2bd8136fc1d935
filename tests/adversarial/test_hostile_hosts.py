"""Hostile ``Host`` headers (RFC 9110 §7.2), sent as raw bytes over sockets to real gunicorn
(the WSGI middleware, Flask) and real uvicorn (the ASGI middleware, FastAPI, ``protect_mcp``).

With no ``resource`` configured, the request's Host names the URL a DPoP proof is checked
against. A Host that carried a path and a ``?`` or ``#`` moved that URL: a proof for
``GET http://api.test/orgs/acme/projects`` was accepted for ``GET /orgs/acme/projects/42`` sent
with ``Host: api.test/orgs/acme/projects?``. Neither server refuses such a Host itself (the
answers below are the library's own JSON), so every guarded request with a Host that is not
``host[:port]`` is refused with ``400`` before any check: never a challenge, never a spent proof.
Legitimate hosts (a port, upper case, an IPv6 literal, a trailing dot) keep working."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app

from resource_server.dpop import DPoPNonces
from tests.adversarial import host_apps
from tests.adversarial.host_apps import NONCE_SECRET, REACHED
from tests.resource_server.test_mcp import serve as uvicorn_serve
from tests.support import NOW, dpop_key, es256, jwks
from tests.support import gunicorn as serve_gunicorn

ROOT = str(Path(__file__).resolve().parents[2])
TIMEOUT = 20.0  # a hang fails the test instead of stalling the suite

SIGNER = es256("es-hosts")
JWK_SET = json.dumps(jwks(SIGNER))
KEY = dpop_key()
SCOPE = "project:read project:write"
TOKEN = SIGNER.token(cnf={"jkt": KEY.jkt}, scope=SCOPE)  # DPoP-bound (RFC 9449 §6)
BEARER = SIGNER.token(scope=SCOPE)
NONCE = DPoPNonces(NONCE_SECRET).current(NOW)

LISTED = "http://api.test/orgs/acme/projects"
ONE = "/orgs/acme/projects/42"

#: The issue's reproduction: the Host ends in a path and a query or fragment delimiter.
MOVING = ["api.test/orgs/acme/projects?", "api.test/orgs/acme/projects#"]
#: Other values no RFC 9110 §7.2 Host takes (the server passes each of them through).
HOSTILE = [
    *MOVING,
    "api.test/orgs/acme/projects/42",
    "api.test?",
    "api.test#x",
    "evil.test@api.test",
    "api.test:443/x",
    "api.test evil.test",
    "api.test,evil.test",
    "api.test;x=y",
    "%61pi.test",
    "é.test",
    "api.test:99999",
    "api.test:80:80",
    "[::1",
    "[fe80::1%25eth0]",
    "[v1.x]",
    "",
]


def proof_headers(method: str, htu: str, nonces: bool, token: str = TOKEN) -> dict[str, str]:
    claims = {"nonce": NONCE} if nonces else {}
    return {"Authorization": f"DPoP {token}", "DPoP": KEY.proof(method, htu, access_token=token, **claims)}


def raw_request(
    method: str, path: str, host: str | None, headers: dict[str, str], version: str = "1.1"
) -> bytes:
    """One request, byte for byte: clients normalize Host, so it is written by hand (UTF-8 for
    the non-ASCII one); ``host=None`` sends none."""
    body = b"{}" if method == "POST" else b""
    lines = [f"{method} {path} HTTP/{version}", "Connection: close"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(address: tuple[str, int], raw: bytes) -> Answer:
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    if headers.get("transfer-encoding") == "chunked":  # uvicorn, for the apps' own answers
        body = _unchunked(body)
    return Answer(int(status_line.split()[1]), headers, body)


def _unchunked(data: bytes) -> bytes:
    out = b""
    while True:
        size, _, rest = data.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            return out
        out, data = out + rest[:length], rest[length + 2 :]


def assert_bad_host(answer: Answer) -> None:
    """The library's own 400 (not the server's): JSON, no challenge, no nonce."""
    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/json"
    assert "www-authenticate" not in answer.headers and "dpop-nonce" not in answer.headers
    document = json.loads(answer.body)
    assert document["error"] == "invalid_request"
    assert "Host" in document["error_description"] or "scheme" in document["error_description"]


def assert_reached(answer: Answer) -> None:
    assert answer.status == 200, answer
    assert answer.body == REACHED


# -- the servers ------------------------------------------------------------------------------------


def gunicorn(factory: str, nonces: bool) -> AbstractContextManager[tuple[str, int]]:
    """``gunicorn -w 1`` serving ``host_apps.<factory>(JWK_SET, nonces)``; yields (host, port)
    once its worker has booted."""
    return serve_gunicorn(f"tests.adversarial.host_apps:{factory}({JWK_SET!r}, {nonces!r})", timeout=TIMEOUT)


@contextmanager
def uvicorn(factory: str, nonces: bool) -> Iterator[tuple[str, int]]:
    with uvicorn_serve(getattr(host_apps, factory)(JWK_SET, nonces)) as url:
        yield "127.0.0.1", int(url.rsplit(":", 1)[1])


SERVED = {
    "middleware": gunicorn,
    "flask_app": gunicorn,
    "asgi_middleware": uvicorn,
    "fastapi_app": uvicorn,
}


@dataclass(frozen=True)
class Server:
    address: tuple[str, int]
    nonces: bool


@pytest.fixture(
    scope="module",
    params=[(factory, nonces) for factory in SERVED for nonces in (False, True)],
    ids=lambda p: f"{p[0]}-{SERVED[p[0]].__name__}-{'nonces' if p[1] else 'no-nonces'}",
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    factory, nonces = request.param
    with SERVED[factory](factory, nonces) as address:
        yield Server(address, nonces)


# -- over the real servers ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", MOVING)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_host_cannot_move_a_proof_to_another_url(server: Server, method: str, host: str) -> None:
    headers = proof_headers(method, LISTED, server.nonces)
    assert_bad_host(exchange(server.address, raw_request(method, ONE, host, headers)))
    # Refused before the proof was read: its jti is unspent, and it holds for its own URL only.
    assert_reached(exchange(server.address, raw_request(method, "/orgs/acme/projects", "api.test", headers)))
    elsewhere = exchange(
        server.address, raw_request(method, ONE, "api.test", proof_headers(method, LISTED, server.nonces))
    )
    assert elsewhere.status == 401 and json.loads(elsewhere.body)["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("host", HOSTILE)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_guarded_request_with_a_hostile_host_is_a_400(server: Server, method: str, host: str) -> None:
    for headers in (
        proof_headers(method, f"http://{host}{ONE}", server.nonces),
        {"Authorization": f"Bearer {BEARER}"},
        {},
    ):
        assert_bad_host(exchange(server.address, raw_request(method, ONE, host, headers)))


LEGITIMATE = {
    "api.test": "http://api.test",
    "API.Test": "http://api.test",
    "api.test:8080": "http://api.test:8080",
    "api.test:80": "http://api.test",
    "api.test.": "http://api.test.",
    "my_service:8000": "http://my_service:8000",
    "127.0.0.1:5000": "http://127.0.0.1:5000",
    "[::1]:8443": "http://[::1]:8443",
    "[2001:DB8::1]": "http://[2001:db8::1]",
    "[::ffff:192.0.2.1]": "http://[::ffff:192.0.2.1]",
}


@pytest.mark.parametrize("host", list(LEGITIMATE))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_legitimate_hosts_keep_working(server: Server, method: str, host: str) -> None:
    origin = LEGITIMATE[host]
    headers = proof_headers(method, f"{origin}{ONE}", server.nonces)
    assert_reached(exchange(server.address, raw_request(method, ONE, host, headers)))
    bearer = {"Authorization": f"Bearer {BEARER}"}
    assert_reached(exchange(server.address, raw_request(method, ONE, host, bearer)))
    # The URL is still the request's: a proof for another path on that host is refused.
    other = proof_headers(method, f"{origin}/orgs/acme/projects", server.nonces)
    assert exchange(server.address, raw_request(method, ONE, host, other)).status == 401


def test_without_a_host_the_server_address_names_the_url(server: Server) -> None:
    """HTTP/1.0 has no Host: the URL is the address the server listens on (validated too)."""
    host, port = server.address
    headers = proof_headers("GET", f"http://{host}:{port}{ONE}", server.nonces)
    assert_reached(exchange(server.address, raw_request("GET", ONE, None, headers, version="1.0")))


def test_protect_mcp_refuses_a_hostile_host_before_the_body() -> None:
    from tests.adversarial.test_hostile_mcp import TOKEN as MCP_TOKEN
    from tests.adversarial.test_hostile_mcp import protected, stateless
    from tests.resource_server.test_mcp import call

    projects = stateless()
    body = json.dumps(call("read_project")).encode()

    def post(port: int, host: str) -> bytes:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Authorization: Bearer {MCP_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    with uvicorn_serve(protected(projects)) as url:
        port = int(url.rsplit(":", 1)[1])
        for host in HOSTILE:
            assert_bad_host(exchange(("127.0.0.1", port), post(port, host)))
        assert projects.calls == []  # refused before the body was read or a tool ran
        assert exchange(("127.0.0.1", port), post(port, f"127.0.0.1:{port}")).status == 200
        assert projects.calls == ["read_project"]


# -- in process: what the servers never send, and proxies that rewrite the request ----------------


def wsgi_call(app: Any, environ: dict[str, Any]) -> Answer:
    body, status, headers = run_wsgi_app(app, environ)
    return Answer(int(status.split()[0]), {k.lower(): v for k, v in headers.items()}, b"".join(body))


@pytest.mark.parametrize("factory", [host_apps.middleware, host_apps.flask_app])
def test_wsgi_without_host_and_an_address_naming_no_host_is_a_400(factory: Callable[..., Any]) -> None:
    """No Host and a server address that names no host (here an empty ``SERVER_NAME``): the
    URL cannot be named, so a DPoP request is refused before its proof is read."""
    app = factory(JWK_SET, False)
    headers = proof_headers("GET", f"http://api.test{ONE}", False)
    environ = EnvironBuilder(path=ONE, headers=headers).get_environ()
    del environ["HTTP_HOST"]
    environ["SERVER_NAME"] = ""
    assert_bad_host(wsgi_call(app, environ))
    environ = EnvironBuilder(path=ONE, headers=headers, base_url="http://api.test").get_environ()
    assert_reached(wsgi_call(app, environ))  # the same proof: its jti was not spent


def asgi_call(app: Any, scope: dict[str, Any]) -> tuple[Answer | None, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    if not sent or sent[0]["type"] != "http.response.start":
        return None, sent
    headers = {k.decode().lower(): v.decode() for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return Answer(sent[0]["status"], headers, body), sent


def asgi_scope(headers: dict[str, str], host: str | None, **extra: Any) -> dict[str, Any]:
    pairs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if host is not None:
        pairs.append((b"host", host.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": ONE,
        "raw_path": ONE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": pairs,
        "server": ("127.0.0.1", 8000),
        **extra,
    }


@pytest.mark.parametrize("factory", [host_apps.asgi_middleware, host_apps.fastapi_app])
def test_asgi_without_host_over_a_unix_socket_is_a_400(factory: Callable[..., Any]) -> None:
    """No Host, and the server is a Unix socket (``scope["server"]`` names a path): no URL."""
    app = factory(JWK_SET, False)
    headers = proof_headers("GET", f"http://api.test{ONE}", False)
    answer, _ = asgi_call(app, asgi_scope(headers, None, server=("/run/api.sock", None)))
    assert answer is not None
    assert_bad_host(answer)
    answer, _ = asgi_call(app, asgi_scope(headers, "api.test"))
    assert answer is not None
    assert_reached(answer)  # the same proof: its jti was not spent


@pytest.mark.parametrize("factory", [host_apps.asgi_middleware, host_apps.fastapi_app])
@pytest.mark.parametrize("host", ["api.test/orgs/acme/projects?", "api.test\x00", "api.test\r\nX-A: b"])
def test_asgi_refuses_what_a_server_might_pass(factory: Callable[..., Any], host: str) -> None:
    app = factory(JWK_SET, False)
    answer, _ = asgi_call(app, asgi_scope(proof_headers("GET", LISTED, False), host))
    assert answer is not None
    assert_bad_host(answer)


def test_two_host_headers_are_refused() -> None:
    """RFC 9112 §3.2: more than one Host line is a 400 (servers refuse it first, when they do)."""
    app = host_apps.asgi_middleware(JWK_SET, False)
    scope = asgi_scope({"Authorization": f"Bearer {BEARER}"}, "api.test")
    scope["headers"].append((b"host", b"evil.test"))
    answer, _ = asgi_call(app, scope)
    assert answer is not None
    assert_bad_host(answer)


def test_a_websocket_handshake_with_a_hostile_host_is_refused() -> None:
    app = host_apps.asgi_middleware(JWK_SET, False)
    scope = asgi_scope(proof_headers("GET", LISTED, False), MOVING[0], type="websocket", scheme="ws")
    answer, sent = asgi_call(app, scope)
    assert answer is None and sent == [{"type": "websocket.close", "code": 1008, "reason": "invalid_request"}]


def test_a_host_proxy_fix_copied_from_x_forwarded_host_is_checked() -> None:
    """werkzeug's ProxyFix, applied before the library, sets ``HTTP_HOST`` from
    ``X-Forwarded-Host``: the value is checked like any Host."""
    client = Client(ProxyFix(host_apps.middleware(JWK_SET, False), x_host=1))
    for forwarded in MOVING:
        headers = {**proof_headers("GET", LISTED, False), "X-Forwarded-Host": forwarded}
        response = client.get(ONE, headers=headers)
        assert response.status_code == 400 and "WWW-Authenticate" not in response.headers
    headers = {**proof_headers("GET", f"http://api.test{ONE}", False), "X-Forwarded-Host": "api.test"}
    assert client.get(ONE, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "proto", ["http://api.test/orgs/acme/projects?", "https://api.test/orgs/acme/projects#", "ftp"]
)
def test_a_scheme_proxy_fix_copied_from_x_forwarded_proto_is_checked(proto: str) -> None:
    """ProxyFix copies ``X-Forwarded-Proto`` into ``wsgi.url_scheme`` as it is: a scheme that
    carried an authority and a path moved the URL the same way. Only http and https name one."""
    client = Client(ProxyFix(host_apps.middleware(JWK_SET, False), x_proto=1))
    headers = {**proof_headers("GET", LISTED, False), "X-Forwarded-Proto": proto}
    response = client.get(ONE, headers=headers)
    assert response.status_code == 400 and "WWW-Authenticate" not in response.headers
    assert response.get_json()["error_description"] == "the request's scheme is not http or https"
    headers = {**proof_headers("GET", f"https://api.test{ONE}", False), "X-Forwarded-Proto": "HTTPS"}
    assert client.get(ONE, headers=headers, base_url="http://api.test").status_code == 200
