"""ASGI request plumbing every async adapter shares (the ASGI middleware, FastAPI, MCP): header
lookup, the ``Host`` check and the request URL for DPoP, bounded body reading with replay, token-elsewhere detection,
and sending a :class:`~resource_server.denials.Denial`. No framework below it: only the ASGI
``scope``/``receive``/``send`` contract."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from .bodies import BodyError
from .credentials import (
    MAX_FORM_INSPECTED,
    MalformedHost,
    check_host,
    http_scheme,
    names_access_token,
    parse_host,
    resource_origin,
    server_authority,
)
from .denials import Denial, Refusals
from .dpop import DPoPRequest
from .dpop import dpop_request as dpop_request_for

__all__ = [
    "ASGIApp",
    "Receive",
    "Scope",
    "Send",
    "adding_headers",
    "authorization_and_form",
    "bad_host",
    "content_length",
    "dpop_request",
    "header",
    "read_body",
    "replaying",
    "request_url",
    "send_denial",
    "token_elsewhere",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application (Starlette's and FastAPI's apps among them).
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_FORM = b"application/x-www-form-urlencoded"


def header(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lower case bytes), repeated ones joined by ``", "`` as WSGI
    servers join them (RFC 9110 §5.3), so two ``Authorization`` or ``DPoP`` headers are seen as
    two; None when absent. Decoded as Latin-1, as ASGI servers pass the bytes on."""
    values = [value for key, value in scope.get("headers", ()) if key == name]
    if not values:
        return None
    return ", ".join(value.decode("latin-1") for value in values)


def bad_host(scope: Scope) -> Denial | None:
    """The ``400`` for a request whose ``Host`` is not a valid host[:port] (RFC 9110 §7.2), or
    that has more than one (RFC 9112 §3.2), else None. Adapters ask it first, for every request
    they guard."""
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    try:
        if len(hosts) > 1:
            raise MalformedHost("more than one Host header was sent")
        check_host(hosts[0].decode("latin-1") if hosts else None)
    except MalformedHost as exc:
        return Refusals.bad_host(exc)
    return None


def request_url(scope: Scope, resource: str | None = None) -> str:
    """The URL the client used, without query, for DPoP's ``htu`` (RFC 9449 §4.3): ``resource``'s
    scheme and authority when configured, else the request's own scheme and validated ``Host``
    (no Host: the server's address), the URL built from the parsed parts; the path as sent
    (``raw_path``) when the server gives it. :class:`~resource_server.credentials.MalformedHost`
    when no valid URL can be named."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(b"/"):
        path = raw.split(b"?", 1)[0].split(b"#", 1)[0].decode("latin-1")
    else:
        path = quote(scope.get("root_path", "") + scope.get("path", ""), safe="/;=!$&'()*+,:@~") or "/"
    if resource is not None:
        return resource_origin(resource) + path
    scheme = http_scheme(scope.get("scheme", "http"))
    host = header(scope, b"host")
    if host is not None:
        return parse_host(host).url(scheme, path)
    server = scope.get("server")
    name, port = server if isinstance(server, (tuple, list)) and len(server) == 2 else (None, None)
    return server_authority(name, port).url(scheme, path)


_DIGITS = re.compile(r"[0-9]{1,19}")


def content_length(scope: Scope) -> int | None:
    """The declared ``Content-Length`` (RFC 9110 §8.6: 1*DIGIT, ASCII digits only), None when
    absent, -1 when it is not a length (several, a sign, ``"²"``, more than 19 digits)."""
    value = header(scope, b"content-length")
    if value is None:
        return None
    value = value.strip(" \t")
    return int(value) if _DIGITS.fullmatch(value) else -1


def dpop_request(scope: Scope, authorization: str | None, resource: str | None) -> DPoPRequest | None:
    """What a DPoP request's proof is checked against, or None when the scheme is not DPoP."""
    return dpop_request_for(
        authorization,
        header(scope, b"dpop"),
        scope.get("method", "GET"),
        lambda: request_url(scope, resource),
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes: :class:`BodyError` beyond it, or when the
    client disconnects first. Every chunk is counted as it arrives (a chunked body declares no
    length), so nothing past the limit is ever kept."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError("the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyError(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app ``body`` (already read) first, then whatever the
    connection says next (a disconnect), so the app reads the request untouched."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def token_elsewhere(scope: Scope, receive: Receive) -> tuple[bool, Receive]:
    """Whether a token also came in the query or a form body (RFC 6750 §2.2, §2.3: refused, the
    header is the only method accepted), and the ``receive`` the app must use next (the form
    body, when read here, is replayed). Forms larger than ``MAX_FORM_INSPECTED`` are not read:
    a token there is never accepted anyway."""
    query = scope.get("query_string", b"")
    if query and names_access_token(query):
        return True, receive
    content_type = (header(scope, b"content-type") or "").encode("latin-1")
    if content_type[: len(_FORM)].lower() != _FORM:
        return False, receive
    declared = content_length(scope)
    if declared is not None and (declared < 0 or declared > MAX_FORM_INSPECTED):
        return False, receive
    head, complete = await _peek(receive, MAX_FORM_INSPECTED)
    if not complete:  # a chunked form past the limit: passed on unread, as the WSGI side does
        return False, _replaying_chunks(head, receive)
    body = b"".join(head)
    return names_access_token(body), replaying(body, receive)


async def _peek(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The body's first chunks, up to just past ``limit`` bytes, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyError("the client went away before the body was complete")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, True
        if size > limit:
            return chunks, False


def _replaying_chunks(chunks: list[bytes], receive: Receive) -> Receive:
    """A ``receive`` that gives back the chunks already read (more to come), then the rest."""
    pending = list(chunks)

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": True}
        return await receive()

    return replay


async def send_denial(send: Send, denial: Denial, response: str = "http.response") -> None:
    """The refusal as an HTTP response: its status, headers and JSON body, exactly. ``response``
    names the messages: ``"websocket.http.response"`` answers a WebSocket handshake with it (the
    ASGI ``websocket.http.response`` extension)."""
    body = denial.body
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in denial.headers]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": f"{response}.start", "status": denial.status, "headers": headers})
    await send({"type": f"{response}.body", "body": body})


def authorization_and_form(scope: Scope) -> tuple[str | None, bool]:
    """The ``Authorization`` value (repeated fields joined as :func:`asgi_http.header` joins
    them, so two are seen as two) and whether the body is a form, in one pass over the headers."""
    authorization: str | None = None
    form = False
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1")
            authorization = text if authorization is None else f"{authorization}, {text}"
        elif name == b"content-type":
            form = form or value[: len(_FORM)].lower() == _FORM
    return authorization, form


def adding_headers(extra: tuple[tuple[str, str], ...], send: Send) -> Send:
    """``send`` with ``extra`` headers added to the response start (or WebSocket accept)."""
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra]

    async def sending(message: Any) -> None:
        if message["type"] in ("http.response.start", "websocket.accept"):
            message = {**message, "headers": [*message.get("headers", ()), *encoded]}
        await send(message)

    return sending
