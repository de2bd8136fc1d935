"""``StepUpAuth`` on httpx2, the fork the MCP SDK 2.x client and Starlette's test client are built
on: one auth object for both libraries, the MCP SDK's streamable HTTP client stepping up against a
real MCP server on a loopback uvicorn, and Starlette's TestClient. The step-up, DPoP and nonce
behaviour on both libraries is tested in test_client.py and test_client_dpop.py, parametrized."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.testclient import TestClient
from werkzeug.wsgi import get_input_stream

from policy import Challenge, format_challenge
from resource_server.client import StepUpAuth
from tests.support import serve_wsgi


class Issuer:
    """Stands in for an authorization server: token-1, token-2, ..., each granting the scopes asked
    for (``read`` when none), and records what was asked."""

    def __init__(self) -> None:
        self.asked: list[frozenset[str] | None] = []
        self.granted: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, scopes: frozenset[str] | None) -> str:
        with self._lock:
            self.asked.append(scopes)
            token = f"token-{len(self.asked)}"
            self.granted[token] = scopes or frozenset({"read"})
        return token

    def refusal(self, authorization: str, needs: str) -> tuple[int, str] | None:
        """The status and challenge for a request needing ``needs`` with these credentials, or
        None when they are enough (RFC 6750 §3.1)."""
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or token not in self.granted:
            return 401, format_challenge(Challenge("Bearer", {"realm": "api", "error": "invalid_token"}))
        if needs not in self.granted[token]:
            params = {"realm": "api", "error": "insufficient_scope", "scope": needs}
            return 403, format_challenge(Challenge("Bearer", params))
        return None


class ScopedAPI:
    """A WSGI API: GET needs ``read``, POST ``write``; answers with the body it received."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.seen: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, authorization = environ["REQUEST_METHOD"], environ.get("HTTP_AUTHORIZATION", "")
        body = get_input_stream(environ).read()
        with self._lock:
            self.seen.append((method, authorization, body))
        refused = self.issuer.refusal(authorization, "write" if method == "POST" else "read")
        if refused is not None:
            status, challenge = refused
            reason = "Unauthorized" if status == 401 else "Forbidden"
            start_response(f"{status} {reason}", [("WWW-Authenticate", challenge), ("Content-Length", "0")])
            return [b""]
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


def test_one_auth_object_for_both_libraries() -> None:
    """Either client takes the same object, and they share its token: the step-up done through
    httpx serves the httpx2 clients after it, sync and async."""
    issuer = Issuer()
    api = ScopedAPI(issuer)
    auth = StepUpAuth(issuer, scopes={"read"})
    assert isinstance(auth, httpx.Auth) and isinstance(auth, httpx2.Auth)

    async def post_async(url: str) -> httpx2.Response:
        async with httpx2.AsyncClient(auth=auth) as http:
            return await http.post(url, content=b"three")

    with serve_wsgi(api) as base:
        with httpx.Client(auth=auth) as http:
            first = http.post(f"{base}/p", content=b"one")
        with httpx2.Client(auth=auth) as http:
            second = http.post(f"{base}/p", content=b"two")
        third = asyncio.run(post_async(f"{base}/p"))
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert (first.content, second.content, third.content) == (b"one", b"two", b"three")
    assert [r.status_code for r in first.history] == [403] and second.history == third.history == []
    assert issuer.asked == [{"read"}, {"read", "write"}]
    assert [(auth, body) for _, auth, body in api.seen] == [
        ("Bearer token-1", b"one"),
        ("Bearer token-2", b"one"),
        ("Bearer token-2", b"two"),
        ("Bearer token-2", b"three"),
    ]


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_an_async_provider_needs_an_async_client(library: str) -> None:
    async def provider(scopes: frozenset[str] | None) -> str:
        return "token"

    client = {"httpx": httpx, "httpx2": httpx2}[library].Client(auth=StepUpAuth(provider))
    with client, pytest.raises(TypeError, match="async token provider needs an AsyncClient"):
        client.get("http://127.0.0.1:9/never-sent")


# -- the MCP SDK's client, against a real MCP server ---------------------------------------------------


class ScopeGate:
    """ASGI middleware in front of an MCP server: every HTTP request needs ``mcp:tools``."""

    def __init__(self, app: Callable[..., Any], issuer: Issuer) -> None:
        self.app, self.issuer = app, issuer
        self.seen: list[tuple[str, str]] = []

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http":
            authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            self.seen.append((scope["method"], authorization))
            refused = self.issuer.refusal(authorization, "mcp:tools")
            if refused is not None:
                status, challenge = refused
                headers = [(b"www-authenticate", challenge.encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


@contextmanager
def serve_asgi(app: Callable[..., Any]) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a loopback port the OS picks; yields its base URL. The
    socket listens before uvicorn starts, so the first request waits in its backlog, not in a loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.mark.parametrize("json_response", [False, True], ids=["sse", "json"])
def test_the_mcp_sdk_client_steps_up(json_response: bool) -> None:
    """``streamable_http_client(url, http_client=httpx2.AsyncClient(auth=StepUpAuth(...)))``: the
    first request is refused with insufficient_scope, retried with a token that has it, and every
    request after carries that token; streamed (SSE) answers reach the MCP client untouched."""
    mcp = MCPServer("adder")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        return a + b

    issuer = Issuer()
    gate = ScopeGate(mcp.streamable_http_app(stateless_http=True, json_response=json_response), issuer)

    async def call(url: str) -> Any:
        auth = StepUpAuth(issuer, scopes={"mcp:read"})
        async with (
            httpx2.AsyncClient(auth=auth, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return await client.call_tool("add", {"a": 2, "b": 3})

    with serve_asgi(gate) as base:
        result = asyncio.run(call(f"{base}/mcp"))
    assert result.structured_content == {"result": 5} and not result.is_error
    assert issuer.asked == [{"mcp:read"}, {"mcp:read", "mcp:tools"}]
    assert gate.seen[:2] == [("POST", "Bearer token-1"), ("POST", "Bearer token-2")]
    assert {authorization for _, authorization in gate.seen[1:]} == {"Bearer token-2"}


def test_starlettes_test_client() -> None:
    """Starlette's TestClient (an httpx2 client where httpx2 is installed) takes it as any auth."""
    issuer = Issuer()

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        refused = issuer.refusal(authorization, "write")
        status, headers = (
            (200, []) if refused is None else (refused[0], [(b"www-authenticate", refused[1].encode())])
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(app)  # not entered: this app has no lifespan
    try:
        response = client.post("/p", json={"name": "x"}, auth=StepUpAuth(issuer))
    finally:
        client.close()
    assert response.status_code == 200 and [r.status_code for r in response.history] == [403]
    assert issuer.asked == [None, {"write"}]
