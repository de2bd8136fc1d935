"""The test project over real loopback servers: gunicorn (WSGI, another process) and uvicorn (ASGI,
Django's async handler, async views): the status table as clients see it, and hostile bodies and
forms sent through raw sockets (malformed chunked encodings, cut connections, oversized forms),
each a 400 JSON error or the view's answer: never a 500, a traceback or a hang."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from policy import parse_challenges
from tests.django.helpers import RESOURCE_METADATA, token
from tests.support import gunicorn as serve_gunicorn

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0  # a hang fails the test instead of stalling the suite


def gunicorn() -> AbstractContextManager[tuple[str, int]]:
    """``gunicorn -w 1`` with the test project's settings, key and database (all in the
    environment); yields (host, port) once it listens."""
    return serve_gunicorn(
        "tests.django.project.wsgi:application", env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=TIMEOUT
    )


@contextmanager
def uvicorn_server() -> Iterator[tuple[str, int]]:
    """uvicorn in a thread of this process, serving the project's ASGI application."""
    import uvicorn

    from tests.django.project.asgi import application

    config = uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # start-up, not expiry: polled until it listens, bounded
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)


SERVERS = {"gunicorn": gunicorn, "uvicorn": uvicorn_server}


@pytest.fixture(scope="module", params=list(SERVERS))
def address(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with SERVERS[request.param]() as found:
        yield found


def url(address: tuple[str, int], path: str) -> str:
    return f"http://{address[0]}:{address[1]}{path}"


PATHS = [
    "/orgs/acme/projects",
    "/plain/orgs/acme/projects",
    "/async/orgs/acme/projects",
    "/acbv/orgs/acme/projects",
]


@pytest.mark.parametrize("path", PATHS)
def test_the_status_table_over_the_wire(address: tuple[str, int], path: str) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        granted = client.get(url(address, path), headers={"Authorization": f"Bearer {token()}"})
        anonymous = client.get(url(address, path))
        stepped = client.get(
            url(address, path), headers={"Authorization": f"Bearer {token(scope='team:write')}"}
        )
        stranger = client.get(url(address, path), headers={"Authorization": f"Bearer {token(sub='user-3')}"})
        expired = client.get(url(address, path), headers={"Authorization": f"Bearer {token(exp=1)}"})
    assert granted.status_code == 200 and granted.json()["subject"] == "user-1"
    assert anonymous.status_code == 401
    assert (
        parse_challenges(anonymous.headers["WWW-Authenticate"])[0].params["resource_metadata"]
        == RESOURCE_METADATA
    )
    assert stepped.status_code == 403
    assert parse_challenges(stepped.headers["WWW-Authenticate"])[0].params["scope"] == "project:read"
    assert stranger.status_code == 403 and "WWW-Authenticate" not in stranger.headers
    assert expired.status_code == 401
    assert parse_challenges(expired.headers["WWW-Authenticate"])[0].params["error"] == "invalid_token"
    for response in (anonymous, stepped, stranger, expired):
        found = response.json()
        assert found["detail"] == found["error_description"] and found["error"]


def test_metadata_over_the_wire(address: tuple[str, int]) -> None:
    document = httpx.get(url(address, "/.well-known/oauth-protected-resource"), timeout=TIMEOUT).json()
    assert document["resource"] == "https://api.test" and "project:read" in document["scopes_supported"]


# -- hostile bodies, through raw sockets ---------------------------------------------------------------


MALFORMED_CHUNKED = b"zz\r\nnot a chunk size\r\n0\r\n\r\n"


def exchange(
    address: tuple[str, int], raw: bytes, *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes] | None:
    """Send raw bytes and read the whole answer (the request says ``Connection: close``); None
    when the server closes without one. ``half_close`` closes our sending side after the bytes:
    a request shorter than its Content-Length is then a client that died halfway through."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    if not received:
        return None
    head, _, content = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        content = _dechunked(content)
    return int(lines[0].split()[1]), headers, content


def _dechunked(content: bytes) -> bytes:
    out = b""
    while content:
        size, _, content = content.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out, content = out + content[:length], content[length + 2 :]
    return out


def request(
    path: str, body: bytes, *, headers: dict[str, str], length: int | None = None, chunked: bool = False
) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(
        "Transfer-Encoding: chunked"
        if chunked
        else f"Content-Length: {len(body) if length is None else length}"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def assert_client_error(answer: tuple[int, dict[str, str], bytes] | None, *, gone: bool = False) -> None:
    """A 4xx without a traceback; or, when the client went away (``gone``), no answer at all is
    fine too (an ASGI server has nobody left to answer)."""
    if answer is None and gone:
        return
    assert answer is not None
    status, _, content = answer
    assert 400 <= status < 500, (status, content)
    assert b"Traceback" not in content and b"Internal Server Error" not in content


def assert_no_server_error(answer: tuple[int, dict[str, str], bytes] | None) -> None:
    assert answer is not None
    status, _, content = answer
    assert status < 500 and b"Traceback" not in content, (status, content)


@pytest.mark.parametrize("path", [*PATHS[1:3], "/orgs/acme/projects"])
def test_forms_the_library_reads(address: tuple[str, int], path: str) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    form = urlencode({"name": "x"}).encode()
    cut = exchange(
        address, request(path, form, headers={**FORM, **auth}, length=len(form) + 50), half_close=True
    )
    assert_client_error(cut, gone=True)
    if cut is not None:
        assert json.loads(cut[2])["error"] == "invalid_request"
    # Malformed chunks: refused by the server, or never read (Django's WSGI reads no chunked body).
    assert_no_server_error(
        exchange(address, request(path, MALFORMED_CHUNKED, headers={**FORM, **auth}, chunked=True))
    )
    with_token = urlencode({"access_token": token()}).encode()
    elsewhere = exchange(address, request(path, with_token, headers=FORM))
    assert (
        elsewhere is not None
        and elsewhere[0] == 400
        and json.loads(elsewhere[2])["error"] == "invalid_request"
    )
    big = b"name=" + b"x" * (100 * 1024)  # larger than the library inspects: passed on unread
    answer = exchange(address, request(path, big, headers={**FORM, **auth}))
    assert answer is not None and answer[0] in (200, 201), answer


def test_a_chunked_form_with_a_token_is_refused_or_never_read(address: tuple[str, int]) -> None:
    """A chunked form (no Content-Length): uvicorn's Django reads it whole, gunicorn's WSGI Django
    reads none of it; either way a token inside is never accepted."""
    body = urlencode({"access_token": token()}).encode()
    answer = exchange(
        address, request("/plain/orgs/acme/projects", chunked(body), headers=FORM, chunked=True)
    )
    assert answer is not None and answer[0] in (400, 401), answer
    assert json.loads(answer[2])["error"] in ("invalid_request", "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        b"[" * 1000 + b"]" * 1000,
        b'{"a": 1, "a": 2}',
        b"\xff",
        b"x" * 70_000,
    ],
    ids=["deep object", "deep array", "duplicate members", "not UTF-8", "too large"],
)
def test_json_bodies_the_library_parses(address: tuple[str, int], body: bytes) -> None:
    """The agent endpoint and json_body() in a view: bounded and strict, a 400 with a JSON error."""
    auth = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    for path in ("/orgs/acme/agent-token", "/cbv/orgs/acme/projects"):
        answer = exchange(address, request(path, body, headers=auth))
        assert_client_error(answer)
        if path.endswith("agent-token"):
            assert answer is not None and json.loads(answer[2])["error"] == "invalid_request"


def test_hostile_headers(address: tuple[str, int]) -> None:
    """Two Authorization headers, a bad Host, a huge token: 400s and 401s, never a 500."""
    raw = token()
    cases = [
        f"GET /plain/orgs/acme/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {raw}\r\nAuthorization: Bearer {raw}\r\nConnection: close\r\n\r\n",
        f"GET /orgs/acme/projects HTTP/1.1\r\nHost: bad_host:99999\r\nAuthorization: Bearer {raw}\r\nConnection: close\r\n\r\n",
        f"GET /async/orgs/acme/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {'a' * 8100}\r\nConnection: close\r\n\r\n",
    ]
    statuses = [answer[0] if (answer := exchange(address, case.encode())) else None for case in cases]
    assert statuses == [400, 400, 401], statuses
