"""A header sent twice is two headers, in every async adapter (the ASGI middleware, FastAPI,
``protect_mcp``): two ``DPoP`` lines are refused (RFC 9449 §7.1: exactly one proof), two
``Authorization`` lines are malformed credentials (RFC 9110 §5.3 joins them into a list no
credentials grammar accepts), and two ``Content-Length`` lines are not a length to trust.

Keeping only the first line would look harmless and be wrong: a proxy or a client library may
have added the second, and a check that saw one of two values decided on half of the request.

The lines are sent raw, over a socket to uvicorn (HTTP clients merge repeated headers before
sending them), and through direct ASGI calls with a hand-built ``headers`` list (what any ASGI
server may pass on, h11's deduplication of ``Content-Length`` aside)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import Depends, FastAPI
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount

from policy import Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.asgi import BearerMiddleware
from resource_server.dpop import DPoPVerifier
from resource_server.fastapi import ResourceServer
from resource_server.mcp import protect_mcp
from tests.support import AUDIENCE, ISSUER, FakeClock, ProofSigner, dpop_key, es256, jwks

RESOURCE = "https://api.test"
ROLES = Roles({"member": ["project:read", "mcp:use"]})
HOST = "127.0.0.1:8000"  # the MCP SDK's DNS-rebinding protection admits loopback hosts only
SIGNER = es256("repeated-1")
KEY = dpop_key("ES256")


def membership(subject: str, org: str | None) -> str | None:
    return "member" if (subject, org) == ("user-1", "acme") else None


# -- the three async adapters, each with DPoP, under /orgs/acme/... --------------------------------


@dataclass
class Adapter:
    """An app, the request it protects, and what runs around its requests (a lifespan)."""

    app: Any
    method: str
    path: str
    body: bytes
    headers: list[tuple[str, str]]
    running: Callable[[], AbstractAsyncContextManager[Any]]


def _verifier() -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock())


def _dpop() -> DPoPVerifier:
    return DPoPVerifier(clock=FakeClock())


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # uvicorn's start-up and shut-down: nothing to do
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b'{"reached": true}'
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


def asgi_middleware() -> Adapter:
    app = BearerMiddleware(
        _echo,
        verifier=_verifier(),
        roles=ROLES,
        membership=membership,
        routes={"/orgs/{org}/projects": {"GET": "project:read", "POST": "project:read"}},
        dpop=_dpop(),
        resource=RESOURCE,
    )
    return Adapter(app, "GET", "/orgs/acme/projects", b"", [], nullcontext)


def fastapi_app() -> Adapter:
    rs = ResourceServer(
        verifier=_verifier(),
        roles=ROLES,
        membership=membership,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        dpop=_dpop(),
    )
    app = FastAPI()

    @app.api_route(
        "/orgs/{org}/projects",
        methods=["GET", "POST"],
        dependencies=[Depends(rs.require({"GET": "project:read", "POST": "project:read"}))],
    )
    async def projects(org: str) -> dict[str, bool]:
        return {"reached": True}

    rs.install(app)
    return Adapter(app, "GET", "/orgs/acme/projects", b"", [], nullcontext)


def mcp_app() -> Adapter:
    server = MCPServer("projects", log_level="WARNING")

    @server.tool()
    def read_project(name: str) -> str:
        return f"project {name}"

    inner = server.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True)
    protected = protect_mcp(
        inner,
        verifier=_verifier(),
        roles=ROLES,
        membership=membership,
        tool_scopes={"read_project": "project:read"},
        org="org",
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        dpop=_dpop(),
    )
    app = Starlette(
        routes=[Mount("/orgs/{org}/mcp", app=protected)], lifespan=lambda app: server.session_manager.run()
    )
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "read_project", "arguments": {"name": "apollo"}},
    }
    headers = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]
    return Adapter(
        app, "POST", "/orgs/acme/mcp/", json.dumps(call).encode(), headers, server.session_manager.run
    )


ADAPTERS = {"asgi": asgi_middleware, "fastapi": fastapi_app, "mcp": mcp_app}


def bearer_token() -> str:
    return SIGNER.token(scope="project:read mcp:use")


def bound_token(key: ProofSigner) -> str:
    return SIGNER.token(scope="project:read mcp:use", cnf={"jkt": key.jkt})


def proof(adapter: Adapter, token: str) -> str:
    return KEY.proof(adapter.method, f"{RESOURCE}{adapter.path}", access_token=token)


# -- two ways to send repeated lines ---------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def error(self) -> str | None:
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value.get("error") if isinstance(value, dict) else None

    def challenge_errors(self) -> set[str | None]:
        values = [v for n, v in self.headers if n.lower() == "www-authenticate"]
        return {c.get("error") for v in values for c in parse_challenges(v)}


@contextmanager
def serve(app: Any) -> Iterator[int]:
    """``app`` under uvicorn (h11) on a loopback socket bound to port 0; yields the port. The socket
    listens before uvicorn starts, so the first request waits in its backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def over_socket(port: int, adapter: Adapter, lines: list[tuple[str, str]]) -> Answer:
    """One request written byte for byte, each of ``lines`` a header line of its own."""
    head = [f"{adapter.method} {adapter.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{name}: {value}" for name, value in [*adapter.headers, *lines]]
    head += [f"Content-Length: {len(adapter.body)}", "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall("\r\n".join(head).encode("latin-1") + adapter.body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return Answer(response.status, response.getheaders(), response.read())


async def over_asgi(adapter: Adapter, lines: list[tuple[str, str]], *, content_length: bool = True) -> Answer:
    """One request handed to the app as an ASGI server would, ``lines`` in the ``headers`` list
    as they are, repeated names included."""
    headers = [(b"host", HOST.encode())]
    headers += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in [*adapter.headers, *lines]]
    if content_length:
        headers.append((b"content-length", str(len(adapter.body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": adapter.method,
        "scheme": "http",
        "path": adapter.path,
        "raw_path": adapter.path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    done = asyncio.Event()
    delivered = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": adapter.body, "more_body": False}
        await done.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await adapter.app(scope, receive, send)
    headers_out = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start.get("headers", [])]
    return Answer(start["status"], headers_out, b"".join(chunks))


def asgi_requests(adapter: Adapter, *requests: list[tuple[str, str]]) -> list[Answer]:
    async def scenario() -> list[Answer]:
        async with adapter.running():
            return [await over_asgi(adapter, lines) for lines in requests]

    return asyncio.run(scenario())


# -- two DPoP lines: RFC 9449 §7.1 asks for exactly one proof --------------------------------------


def dpop_requests(adapter: Adapter) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """One request with one good proof, then one with two good proofs on two lines."""
    token = bound_token(KEY)
    one = [("Authorization", f"DPoP {token}"), ("DPoP", proof(adapter, token))]
    two = [
        ("Authorization", f"DPoP {token}"),
        ("DPoP", proof(adapter, token)),
        ("DPoP", proof(adapter, token)),
    ]
    return one, two


def assert_two_proofs_refused(single: Answer, double: Answer) -> None:
    assert single.status == 200, single
    assert double.status == 401, double
    assert double.error() == "invalid_dpop_proof"
    assert "invalid_dpop_proof" in double.challenge_errors()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_two_dpop_lines_are_refused_over_uvicorn(name: str) -> None:
    adapter = ADAPTERS[name]()
    one, two = dpop_requests(adapter)
    with serve(adapter.app) as port:
        single = over_socket(port, adapter, one)
        double = over_socket(port, adapter, two)
    assert_two_proofs_refused(single, double)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_two_dpop_lines_are_refused_in_the_asgi_headers(name: str) -> None:
    adapter = ADAPTERS[name]()
    assert_two_proofs_refused(*asgi_requests(adapter, *dpop_requests(adapter)))


# -- two Authorization lines: malformed credentials (RFC 6750 §2.1, RFC 9110 §5.3) -----------------


def authorization_requests() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """One good bearer token on one line, then the same token on two lines."""
    token = bearer_token()
    return [("Authorization", f"Bearer {token}")], [("Authorization", f"Bearer {token}")] * 2


def assert_two_authorizations_refused(single: Answer, double: Answer) -> None:
    assert single.status == 200, single
    assert double.status == 400, double
    assert double.error() == "invalid_request"
    assert "invalid_request" in double.challenge_errors()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_two_authorization_lines_are_refused_over_uvicorn(name: str) -> None:
    adapter = ADAPTERS[name]()
    one, two = authorization_requests()
    with serve(adapter.app) as port:
        single = over_socket(port, adapter, one)
        double = over_socket(port, adapter, two)
    assert_two_authorizations_refused(single, double)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_two_authorization_lines_are_refused_in_the_asgi_headers(name: str) -> None:
    adapter = ADAPTERS[name]()
    assert_two_authorizations_refused(*asgi_requests(adapter, *authorization_requests()))


# -- two Content-Length lines: not a length, whichever comes first ---------------------------------


def content_length_answers(adapter: Adapter, prefix: list[tuple[str, str]]) -> tuple[Answer, Answer]:
    """The same request with its true length and a huge one on two lines, in both orders. (Over
    uvicorn h11 refuses conflicting lengths itself: only an ASGI call shows the adapter.)"""
    true, huge = str(len(adapter.body)), "999999999"

    async def scenario() -> tuple[Answer, Answer]:
        async with adapter.running():
            first = await over_asgi(
                adapter, [*prefix, ("Content-Length", huge), ("Content-Length", true)], content_length=False
            )
            second = await over_asgi(
                adapter, [*prefix, ("Content-Length", true), ("Content-Length", huge)], content_length=False
            )
            return first, second

    return asyncio.run(scenario())


async def _body_echo(scope: Any, receive: Any, send: Any) -> None:
    """An app that answers with the body it was given, read to its end."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_two_content_length_lines_in_mcp_are_not_a_length() -> None:
    """``protect_mcp`` refuses a declared length over its limit before reading (413); two lines
    are no declared length, so the small body is read, counted and passed on whole, whichever
    line comes first. (The app behind is a plain ASGI app: the MCP SDK applies a size rule of its
    own to the first line.)"""
    adapter = mcp_app()
    adapter.app = protect_mcp(
        _body_echo,
        verifier=_verifier(),
        roles=ROLES,
        membership=membership,
        tool_scopes={"read_project": "project:read"},
        org=None,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
    )
    adapter.running = nullcontext
    prefix = [("Authorization", f"Bearer {bearer_token()}")]
    for answer in content_length_answers(adapter, prefix):
        assert answer.status == 200, answer
        assert answer.body == adapter.body


def test_two_content_length_lines_on_a_form_are_not_a_length() -> None:
    """The ASGI middleware looks into a form body for a second token (RFC 6750 §2.2) only when
    its length is known and small; two lines are no known length, whichever comes first. (Today
    such a form is passed on uninspected, as a chunked one past the limit is; refusing both
    orders would be as good. Deciding on the first line alone is not.)"""
    token = bearer_token()
    adapter = asgi_middleware()
    adapter.method, adapter.body = "POST", f"access_token={token}".encode()
    prefix = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/x-www-form-urlencoded")]
    huge_first, true_first = content_length_answers(adapter, prefix)
    assert huge_first.status == true_first.status, (huge_first, true_first)
    assert huge_first.status < 500
