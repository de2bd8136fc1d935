"""Hostile JSON-RPC bodies against ``protect_mcp`` around a real MCP SDK server: oversized, deeply
nested, not JSON, not UTF-8, batches, ``tools/call`` without params or a string name, duplicate
members (parsers disagree on which one wins), chunked bodies and clients that leave halfway. The
answer is never a 500 and the body never reaches a tool: every tool counts its runs.

The caller is an authenticated member (the wrapper reads bodies only after authentication) whose
role and token allow the read tool and not the write tool, so a body that smuggled the write
tool past the decision would show as a run of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import Roles
from resource_server import JWTVerifier
from resource_server.mcp import ProtectedMcp, protect_mcp
from tests.resource_server.test_mcp import HEADERS, Projects, call, client, run, serve
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

RESOURCE = "https://api.test/mcp"
ROLES = Roles({"reader": ["project:read"], "writer": ["project:read", "project:write"]})
TOOL_SCOPES = {"read_project": "project:read", "write_project": "project:write"}
LIMIT = 4096
TIMEOUT = 20.0  # a hang fails the test instead of stalling the suite

SIGNER = es256("es-hostile")
# The reader's token carries project:write too: only the member's role stands between a
# smuggled write_project and its run.
TOKEN = SIGNER.token(sub="reader-1", scope="project:read project:write")
AUTHORIZED = {**HEADERS, "authorization": f"Bearer {TOKEN}"}


def membership(subject: str, org: str | None) -> str | None:
    return "reader" if subject == "reader-1" else None


def protected(app: Any, **options: Any) -> ProtectedMcp:
    """``app`` (a :class:`Projects`' app, or any ASGI app) behind protect_mcp, bodies limited to
    ``LIMIT`` bytes unless told otherwise."""
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW))
    settings: dict[str, Any] = {"max_body_bytes": LIMIT}
    settings.update(options)
    return protect_mcp(
        app.app if isinstance(app, Projects) else app,
        verifier=verifier,
        roles=ROLES,
        membership=membership,
        tool_scopes=TOOL_SCOPES,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        **settings,
    )


def stateless() -> Projects:
    return Projects(path="/mcp", stateless_http=True, json_response=True)


def deep(levels: int) -> bytes:
    arguments = b'{"a":' * levels + b"1" + b"}" * levels
    return (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_project","arguments":'
        + arguments
        + b"}}"
    )


PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602

# body → (status, JSON-RPC error code, request id echoed)
HOSTILE: dict[str, tuple[bytes, int, int, Any]] = {
    "empty": (b"", 400, PARSE_ERROR, None),
    "not JSON": (b'{"jsonrpc":"2.0","method":"tools/call",', 400, PARSE_ERROR, None),
    "not UTF-8": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_\xff"}}',
        400,
        PARSE_ERROR,
        None,
    ),
    "UTF-16": (json.dumps(call("read_project")).encode("utf-16"), 400, PARSE_ERROR, None),
    "a byte-order mark": (
        b"\xef\xbb\xbf" + json.dumps(call("read_project")).encode(),
        400,
        PARSE_ERROR,
        None,
    ),
    "NaN": (json.dumps(call("read_project", a=float("nan"))).encode(), 400, PARSE_ERROR, None),
    "a number": (b"5", 400, PARSE_ERROR, None),
    "a string": (b'"tools/call"', 400, PARSE_ERROR, None),
    "nested 33 deep": (deep(31), 400, PARSE_ERROR, None),
    "nested 600 deep": (deep(600), 400, PARSE_ERROR, None),
    "nested 2,000 deep (a batch)": (b"[" * 2000 + b"]" * 2000, 400, INVALID_REQUEST, None),
    "nested 800 deep, unclosed": (b'{"a":' * 800, 400, PARSE_ERROR, None),
    "a batch": (json.dumps([call("read_project")]).encode(), 400, INVALID_REQUEST, None),
    "a batch after whitespace": (
        b" \r\n\t" + json.dumps([call("write_project")]).encode(),
        400,
        INVALID_REQUEST,
        None,
    ),
    "an empty batch": (b"[]", 400, INVALID_REQUEST, None),
    "no params": (b'{"jsonrpc":"2.0","id":3,"method":"tools/call"}', 400, INVALID_PARAMS, 3),
    "params null": (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":null}', 400, INVALID_PARAMS, 3),
    "params a list": (
        b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":["write_project"]}',
        400,
        INVALID_PARAMS,
        "a",
    ),
    "params a string": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"write_project"}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "no name": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "name null": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":null}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "name a number": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":7}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "name true": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":true}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "name a list": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":["write_project"]}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "name an object": (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":{"name":"write_project"}}}',
        400,
        INVALID_PARAMS,
        3,
    ),
    "duplicate name": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_project","name":"write_project"}}',
        400,
        INVALID_REQUEST,
        None,
    ),
    "duplicate name, escaped": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_project","n\\u0061me":"write_project"}}',
        400,
        INVALID_REQUEST,
        None,
    ),
    "duplicate params": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_project"},"params":{"name":"write_project"}}',
        400,
        INVALID_REQUEST,
        None,
    ),
    "duplicate method": (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"write_project"}}',
        400,
        INVALID_REQUEST,
        None,
    ),
    "a method that is no string": (
        b'{"jsonrpc":"2.0","id":9,"method":["tools/call"],"params":{"name":"write_project"}}',
        400,
        INVALID_REQUEST,
        9,
    ),
    "an unknown tool, case changed": (json.dumps(call("Write_Project", 4)).encode(), 400, INVALID_PARAMS, 4),
    "an unknown tool, a NUL added": (
        json.dumps(call("write_project\u0000", 4)).encode(),
        400,
        INVALID_PARAMS,
        4,
    ),
    "an id that is an object": (
        b'{"jsonrpc":"2.0","id":{"x":1},"method":"tools/call","params":{"name":5}}',
        400,
        INVALID_PARAMS,
        None,
    ),
}


def assert_rpc_error(response: httpx.Response, status: int, code: int, request_id: Any) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert set(document) == {"jsonrpc", "id", "error"}
    assert (document["jsonrpc"], document["id"], document["error"]["code"]) == ("2.0", request_id, code)
    assert document["error"]["message"] and "Traceback" not in document["error"]["message"]


def test_hostile_bodies_are_answered_by_the_wrapper() -> None:
    projects = stateless()
    app = protected(projects)

    async def scenario() -> None:
        async with client(projects, app) as http:
            for name, (body, status, code, request_id) in HOSTILE.items():
                response = await http.post("/mcp", content=body, headers=AUTHORIZED)
                try:
                    assert_rpc_error(response, status, code, request_id)
                except AssertionError as failure:
                    raise AssertionError(f"{name}: {failure}") from None

    run(scenario)
    assert projects.calls == []


def test_escapes_are_read_as_the_sdk_reads_them() -> None:
    """The decision is made on the decoded name, the one the SDK runs: an escaped write tool is
    the write tool (refused), an escaped read tool the read tool (run)."""
    projects = stateless()
    app = protected(projects)
    write = b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"write\\u005fproject","arguments":{"name":"x"}}}'
    read = b'{"jsonrpc":"2.0","id":2,"method":"tools\\u002fcall","params":{"name":"read\\u005fproject","arguments":{"name":"x"}}}'

    async def scenario() -> None:
        async with client(projects, app) as http:
            assert (await http.post("/mcp", content=write, headers=AUTHORIZED)).status_code == 403
            assert (await http.post("/mcp", content=read, headers=AUTHORIZED)).status_code == 200

    run(scenario)
    assert projects.calls == ["read_project"]


def test_oversized_bodies_are_413_however_they_come() -> None:
    projects = stateless()
    app = protected(projects)
    padded = call("read_project", name="x" * LIMIT)

    async def pieces(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 100):
            yield data[start : start + 100]

    async def scenario() -> None:
        async with client(projects, app) as http:
            declared = await http.post("/mcp", json=padded, headers=AUTHORIZED)
            assert_rpc_error(declared, 413, INVALID_REQUEST, None)
            # No Content-Length (chunked): counted as it arrives, refused past the limit.
            streamed = await http.post(
                "/mcp", content=pieces(json.dumps(padded).encode()), headers=AUTHORIZED
            )
            assert_rpc_error(streamed, 413, INVALID_REQUEST, None)
            # A body within the limit, in 100-byte pieces, reaches the tool whole.
            small = json.dumps(call("read_project", name="y" * 1000)).encode()
            assert (await http.post("/mcp", content=pieces(small), headers=AUTHORIZED)).status_code == 200

    run(scenario)
    assert projects.calls == ["read_project"]


def test_the_default_limit_is_the_sdk_s_and_large_bodies_are_parsed_off_the_loop() -> None:
    projects = stateless()
    app = protect_mcp(
        projects.app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW)),
        roles=ROLES,
        membership=membership,
        tool_scopes=TOOL_SCOPES,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
    )
    assert app.max_body_bytes == 4 * 1024 * 1024  # the SDK's own limit: neither refuses what the other takes
    # Parsed in a worker thread (past 64 KiB), whole or refused.
    large = json.dumps(call("read_project", name="z" * 1_000_000)).encode()
    broken = large[:-1]
    duplicated = large[:-2] + b', "name": "write_project"}}'
    too_large = json.dumps(call("read_project", name="z" * (4 * 1024 * 1024))).encode()

    async def scenario() -> None:
        async with client(projects, app) as http:
            assert (await http.post("/mcp", content=large, headers=AUTHORIZED)).status_code == 200
            assert_rpc_error(
                await http.post("/mcp", content=broken, headers=AUTHORIZED), 400, PARSE_ERROR, None
            )
            assert_rpc_error(
                await http.post("/mcp", content=duplicated, headers=AUTHORIZED), 400, INVALID_REQUEST, None
            )
            assert_rpc_error(
                await http.post("/mcp", content=too_large, headers=AUTHORIZED), 413, INVALID_REQUEST, None
            )

    run(scenario)
    assert projects.calls == ["read_project"]


def test_bodies_are_not_read_before_authentication() -> None:
    projects = stateless()
    app = protected(projects)

    async def scenario() -> None:
        async with client(projects, app) as http:
            for body in (b"[" * 100_000, b"\xff" * (LIMIT * 2), json.dumps(call("write_project")).encode()):
                answer = await http.post("/mcp", content=body, headers=HEADERS)
                assert answer.status_code == 401

    run(scenario)
    assert projects.calls == []


async def _drive(
    app: Any, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> list[dict[str, Any]]:
    """One request straight through the ASGI interface: ``messages`` are what ``receive``
    gives, in order (then a disconnect once the answer is complete); returns what was sent."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    return sent


def _asgi_headers(extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in {**AUTHORIZED, **(extra or {})}.items()]


def test_a_client_that_leaves_mid_body_reaches_no_tool() -> None:
    projects = stateless()
    app = protected(projects)
    body = json.dumps(call("read_project")).encode()

    async def scenario() -> None:
        async with projects.server.session_manager.run():
            cut = [
                {"type": "http.request", "body": body[:20], "more_body": True},
                {"type": "http.disconnect"},
            ]
            for headers in (_asgi_headers({"content-length": str(len(body))}), _asgi_headers()):
                sent = await _drive(app, cut, headers)
                assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
                assert json.loads(sent[1]["body"])["error"]["code"] == INVALID_REQUEST
            # The same body, whole, in one-byte messages: read, replayed to the SDK, run once.
            whole = [
                {"type": "http.request", "body": body[i : i + 1], "more_body": True} for i in range(len(body))
            ]
            whole.append({"type": "http.request", "body": b"", "more_body": False})
            sent = await _drive(app, whole, _asgi_headers())
            assert sent[0]["status"] == 200

    run(scenario)
    assert projects.calls == ["read_project"]


def test_a_method_spelled_in_lower_case_is_still_decided() -> None:
    projects = stateless()
    app = protected(projects)
    body = json.dumps(call("write_project")).encode()

    async def scenario() -> None:
        async with projects.server.session_manager.run():
            message = [{"type": "http.request", "body": body, "more_body": False}]
            sent = await _drive(app, message, _asgi_headers(), method="post")
            assert sent[0]["status"] == 403

    run(scenario)
    assert projects.calls == []


# -- over a real server: raw sockets against uvicorn ------------------------------------------------


def _exchange(address: tuple[str, int], raw: bytes, *, close_early: bool = False) -> bytes:
    """Send raw bytes and read the whole answer; with ``close_early``, close the connection
    right after sending (a client that dies halfway through its body)."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        if close_early:
            sock.sendall(raw)
            return b""
        sender = threading.Thread(target=_send, args=(sock, raw), daemon=True)
        sender.start()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sender.join(TIMEOUT)
    return data


def _send(sock: socket.socket, raw: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may answer and close first
        sock.sendall(raw)


def _request(port: int, body: bytes, *, framing: str) -> bytes:
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"Authorization: Bearer {TOKEN}\r\n{framing}\r\n"
    )
    return head.encode() + body


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def uvicorn_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING):
        yield caplog
    errors = [
        r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("uvicorn")
    ]
    assert errors == [], [r.getMessage() for r in errors]


def test_over_uvicorn_chunked_cut_and_oversized_bodies(uvicorn_records: pytest.LogCaptureFixture) -> None:
    projects = Projects(path="/mcp", stateless_http=True, json_response=True)
    app = protected(projects)  # top-level: uvicorn's lifespan reaches the SDK through the wrapper
    read = json.dumps(call("read_project")).encode()
    write = json.dumps(call("write_project")).encode()
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        address = ("127.0.0.1", port)
        # A tool name split across chunks is decided whole.
        assert (
            _status(
                _exchange(
                    address, _request(port, _chunked(read, 7), framing="Transfer-Encoding: chunked\r\n")
                )
            )
            == 200
        )
        assert (
            _status(
                _exchange(
                    address, _request(port, _chunked(write, 7), framing="Transfer-Encoding: chunked\r\n")
                )
            )
            == 403
        )
        oversized = _chunked(json.dumps(call("read_project", name="x" * LIMIT)).encode(), 512)
        assert (
            _status(_exchange(address, _request(port, oversized, framing="Transfer-Encoding: chunked\r\n")))
            == 413
        )
        declared = _request(port, b"{}", framing=f"Content-Length: {LIMIT + 1}\r\n")
        assert _status(_exchange(address, declared)) == 413
        malformed = _request(
            port, b"zz\r\nnot a chunk size\r\n0\r\n\r\n", framing="Transfer-Encoding: chunked\r\n"
        )
        assert _status(_exchange(address, malformed)) == 400  # the server's own answer
        # Clients that die halfway through their body: by length, and chunked.
        for framing, body in (
            (f"Content-Length: {len(read)}\r\n", read[:30]),
            ("Transfer-Encoding: chunked\r\n", _chunked(read, 7)[:60]),
        ):
            _exchange(address, _request(port, body, framing=framing), close_early=True)
        # The server is still well and answers the next request.
        with httpx.Client(timeout=TIMEOUT) as http:
            assert http.post(f"{url}/mcp", content=read, headers=AUTHORIZED).status_code == 200
    assert projects.calls == ["read_project", "read_project"]


# -- properties: whatever the body, a forwarded tools/call names a tool the caller may run ---------


class Recorder:
    """An ASGI app in the SDK's place that records the bodies it receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


KEYS = st.sampled_from(
    ["jsonrpc", "id", "method", "params", "name", "arguments", "n\\u0061me", "meth\\u006fd"]
)
# Mostly plain values; NaN, an overflowing number and a lone surrogate now and then.
_STRINGS = [
    '"tools/call"',
    '"tools\\/call"',
    '"read_project"',
    '"write_project"',
    '"write\\u005fproject"',
    '""',
]
_OTHERS = ["1", "null", "true", "-0", "[]", "{}", "NaN", "1e999", '"\\ud800"']
SCALARS = st.sampled_from([*_STRINGS, *_OTHERS])


def _object(members: st.SearchStrategy[list[tuple[str, str]]]) -> st.SearchStrategy[str]:
    """A JSON object written out member by member, so that names may repeat."""
    return members.flatmap(st.permutations).map(lambda ms: "{" + ",".join(f'"{k}":{v}' for k, v in ms) + "}")


def _value(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return SCALARS
    member = st.tuples(KEYS, _value(depth - 1))
    arrays = st.lists(_value(depth - 1), max_size=3).map(lambda vs: "[" + ",".join(vs) + "]")
    return st.one_of(SCALARS, _object(st.lists(member, max_size=4)), arrays)


def _extra(depth: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.one_of(st.just([]), st.lists(st.tuples(KEYS, _value(depth)), min_size=1, max_size=2))


# Mostly JSON-RPC shaped: a method and params with a name, then more members (maybe repeated).
TOOLS = st.sampled_from(
    ["read_project", "write_project", "read\\u005fproject", "write\\u005fproject", "delete"]
)
NAMES = st.one_of(TOOLS.map(lambda t: f'"{t}"'), _value(1))
PARAMS = st.one_of(
    _object(st.tuples(st.tuples(st.just("name"), NAMES), _extra(1)).map(lambda p: [p[0], *p[1]])), _value(1)
)
METHODS = st.one_of(st.sampled_from(['"tools/call"', '"tools\\/call"', '"tools/list"']), SCALARS)
MESSAGES = _object(
    st.tuples(METHODS, PARAMS, _extra(1)).map(
        lambda m: [("jsonrpc", '"2.0"'), ("id", "1"), ("method", m[0]), ("params", m[1]), *m[2]]
    )
)


def _views(body: bytes) -> list[tuple[object, object]]:
    """(method, name) as a first-wins and a last-wins parser would read the body."""
    views = []
    for pick in (lambda pairs: dict(reversed(pairs)), dict):
        try:
            message = json.loads(body, object_pairs_hook=pick)
        except ValueError:
            continue
        if isinstance(message, dict):
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            views.append((message.get("method"), name))
    return views


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=MESSAGES.map(str.encode))
def test_no_json_rpc_message_smuggles_a_tool_past_the_decision(body: bytes) -> None:
    _check_decision(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_value(3).map(str.encode) | st.binary(max_size=64))
def test_no_body_smuggles_a_tool_past_the_decision(body: bytes) -> None:
    _check_decision(body)


def _check_decision(body: bytes) -> None:
    recorder = Recorder()
    app = protected(recorder)  # the same decision, with a recorder in the SDK's place

    sent = asyncio.run(
        _drive(app, [{"type": "http.request", "body": body, "more_body": False}], _asgi_headers())
    )
    status = sent[0]["status"]
    assert status in (200, 400, 403, 413), status
    if status == 200:
        (forwarded,) = recorder.bodies
        assert forwarded == body  # replayed untouched
        for method, name in _views(body):
            if method == "tools/call":
                assert name == "read_project"
    else:
        assert recorder.bodies == []
        if status == 400:
            document = json.loads(sent[1]["body"])
            assert document["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS)
