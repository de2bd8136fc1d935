"""The JSON-RPC rules of the MCP wrapper: one strict message object per POST, read within its
size limit, and the errors it answers itself (JSON-RPC 2.0 §5.1)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..asgi_http import Receive, Scope, Send, content_length, read_body
from ..bodies import BodyError
from ..strict_json import parse_object, strict_json_decoder

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "NotJson",
    "Refused",
    "parse_message",
    "read_message",
    "request_id",
    "send_rpc_error",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


class Refused(Exception):
    """A JSON-RPC request the wrapper answers itself: ``status`` and a JSON-RPC error."""

    def __init__(self, status: int, code: int, message: str, request_id: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class NotJson(Refused):
    def __init__(self, message: str) -> None:
        super().__init__(400, PARSE_ERROR, message)


def _duplicate() -> Refused:
    # RFC 8259 §4: parsers disagree on which of two members counts, so the SDK could run another
    # tool than the one decided on.
    return Refused(400, INVALID_REQUEST, "the request has duplicate member names")


# The decoder's own refusals are not ValueErrors: parse_object lets them through as they are.
_DECODER = strict_json_decoder(
    _duplicate, lambda: NotJson("the request holds NaN or Infinity, which JSON does not have")
)


async def read_message(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body of a JSON-RPC POST, at most ``limit`` bytes: ``413`` beyond (a declared
    length is refused before anything is read), ``400`` when the client leaves halfway."""
    declared = content_length(scope)  # a malformed one: the body is read and counted instead
    if declared is not None and declared > limit:
        raise Refused(413, INVALID_REQUEST, f"the request body is larger than {limit} bytes")
    gone = False

    async def watched() -> Any:
        nonlocal gone
        message = await receive()
        gone = message["type"] == "http.disconnect"
        return message

    try:
        return await read_body(watched, limit)
    except BodyError:
        if gone:
            raise Refused(400, INVALID_REQUEST, "the client went away before the body was complete") from None
        raise Refused(413, INVALID_REQUEST, f"the request body is larger than {limit} bytes") from None


def parse_message(body: bytes) -> dict[str, Any]:
    """The body as one JSON-RPC message object (strict JSON: UTF-8, no duplicate member names,
    nesting bounded), or :class:`Refused`."""
    if body.lstrip(b" \t\r\n")[:1] == b"[":
        # JSON-RPC 2.0 §6 batches (dropped from MCP in 2025-06-18): one call per POST, so each
        # is decided and answered on its own.
        raise Refused(400, INVALID_REQUEST, "JSON-RPC batches are not accepted: send one request per POST")
    return parse_object(body, _DECODER, NotJson, what="request body")


def request_id(message: Mapping[str, Any]) -> object:
    """The request's ``id`` to echo in an error (JSON-RPC 2.0 §5: a string, a number or null)."""
    value = message.get("id")
    return value if value.__class__ in (str, int) else None


async def send_rpc_error(send: Send, refused: Refused) -> None:
    """The refusal as a JSON-RPC error response (JSON-RPC 2.0 §5.1), which MCP clients hand to
    their caller as the request's error, whatever the HTTP status."""
    error = {"code": refused.code, "message": refused.message}
    body = json.dumps({"jsonrpc": "2.0", "id": refused.request_id, "error": error}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
