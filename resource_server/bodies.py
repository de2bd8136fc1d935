"""Request bodies the library reads itself, read with bounds and parsed strictly.

The library reads a body in three places: to bind a viewer context to it (its SHA-256), to look
for an ``access_token`` form field (RFC 6750 §2.2, refused), and in the endpoints it owns (agent
tokens and approvals). A client controls every byte of it, and the transport can fail halfway
(a malformed chunked encoding, a connection cut before ``Content-Length`` bytes). Each of those,
and bodies that are too large or nested too deeply, becomes a :class:`BodyError`, which every
adapter answers with ``400`` and a JSON error: never a 500, never a hang.

WSGI bodies are read through werkzeug's bounded streams, imported by the first read rather than
with this module: every adapter imports :class:`BodyError` from here, and ``import werkzeug``
loads its development server and test client too (tens of milliseconds), which an ASGI app, or
one that only verifies tokens, never uses.
"""

from __future__ import annotations

import io
from typing import Any

from .strict_json import parse_object, strict_json_decoder

__all__ = [
    "MAX_BOUND_BODY",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "BodyError",
    "json_object",
    "peek_body",
    "read_body",
]

#: The largest body a viewer context can be bound to (its hash is taken over the whole body).
MAX_BOUND_BODY = 1024 * 1024

#: The endpoints this library owns take small JSON objects; nothing legitimate comes near this.
MAX_JSON_BYTES = 64 * 1024
#: Objects and arrays nested deeper than this are refused before the JSON parser sees them
#: (CPython's parser recurses, and a body nested 1,000 deep raised RecursionError).
MAX_JSON_DEPTH = 32


class BodyError(ValueError):
    """A request body that cannot be accepted. ``description`` is safe to send to the client
    (it never echoes the body); adapters answer with ``400 invalid_request``."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def read_body(environ: dict[str, Any], *, limit: int) -> bytes:
    """The whole request body of a WSGI ``environ``, at most ``limit`` bytes.

    The body is put back into ``environ`` (``wsgi.input`` and ``CONTENT_LENGTH``), so the
    application, or a second call, still reads it whole. Reading stops at ``Content-Length``, or
    at the end of input when the server terminates the stream (``wsgi.input_terminated``, set by
    servers that decode chunked bodies); a body with neither is empty, since reading it could
    block forever (werkzeug's ``get_input_stream`` rules).
    """
    from werkzeug.exceptions import RequestEntityTooLarge  # on first use: see the module docstring
    from werkzeug.wsgi import get_content_length, get_input_stream

    too_large = BodyError(f"the request body is larger than {limit} bytes")
    try:
        # One byte over the limit: werkzeug's limited stream stops at its limit without an error,
        # so a body that reaches limit + 1 is how "more than the limit" shows.
        data = get_input_stream(environ, max_content_length=limit + 1).read()
    except RequestEntityTooLarge:  # Content-Length says so before anything is read
        raise too_large from None
    except Exception:  # a malformed chunked body, a cut connection: the server's own exceptions
        raise BodyError("the request body could not be read") from None
    if len(data) > limit:
        raise too_large
    declared = get_content_length(environ)
    if declared is not None and len(data) != declared:
        # Servers that terminate the input (wsgi.input_terminated) report a cut connection as
        # an early end of input, not as an error.
        raise BodyError("the request body ended before its Content-Length")
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # the body is now a plain, counted one
    return data


def peek_body(environ: dict[str, Any], *, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes from the start of the request body, put back in front of the
    rest, which stays unread: the application still receives the body whole, however large.

    The rest is read through werkzeug's limited stream, so nothing past ``Content-Length`` is
    ever read (on a keep-alive connection that would block on the next request); a body with
    neither a length nor a server-terminated stream is empty. :class:`BodyError` when the body
    cannot be read or ends before its ``Content-Length``.
    """
    from werkzeug.wsgi import get_content_length, get_input_stream  # on first use: see the module docstring

    declared = get_content_length(environ)
    try:
        stream = get_input_stream(environ)
        head = stream.read(limit + 1)
    except Exception:  # a malformed chunked body, a cut connection: the server's own exceptions
        raise BodyError("the request body could not be read") from None
    if declared is not None and len(head) < min(declared, limit + 1):
        raise BodyError("the request body ended before its Content-Length")
    environ["wsgi.input"] = io.BufferedReader(_Prefixed(head, stream))
    return head


class _Prefixed(io.RawIOBase):
    """The bytes already read, then the rest of a (bounded) input stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._head.readinto(buffer)
        if count:
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_DECODER = strict_json_decoder(
    lambda: BodyError("the JSON body has duplicate member names"),
    lambda: BodyError("the JSON body holds NaN or Infinity, which JSON does not have"),
)


def json_object(data: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse ``data`` as one JSON object (RFC 8259, UTF-8 only), refusing duplicate member
    names, NaN/Infinity, and nesting deeper than ``max_depth``; :class:`BodyError` otherwise."""
    return parse_object(data, _DECODER, BodyError, what="body", max_depth=max_depth)
