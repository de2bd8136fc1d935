"""The body of a Flask request, read by the library and left whole for the view: a bounded read
(:func:`request_body`), one strict JSON object (:func:`json_body`), and whether a form body also
carries an access token (:func:`token_elsewhere_of`), in a request the application may have read
already."""

from __future__ import annotations

import io
from typing import Any

from flask import Request

from ..bodies import MAX_JSON_BYTES, MAX_JSON_DEPTH, BodyError, json_object, read_body
from ..credentials import MAX_FORM_INSPECTED, names_access_token, token_elsewhere
from .proxies import current_request

__all__ = ["json_body", "request_body", "token_elsewhere_of"]

_FORM = "application/x-www-form-urlencoded"


def token_elsewhere_of(req: Request) -> bool:
    """:func:`resource_server.credentials.token_elsewhere` for a Flask request, which the
    application may have read already (a ``before_request`` hook, another extension)."""
    if "stream" not in req.__dict__:  # werkzeug opens the body lazily: nobody has read it yet
        return token_elsewhere(req.environ)
    if req.environ.get("QUERY_STRING") and "access_token" in req.args:
        return True
    if req.environ.get("CONTENT_TYPE", "")[: len(_FORM)].lower() != _FORM:
        return False
    if "form" in req.__dict__:  # parsed already: the raw bytes may be gone, the fields are not
        return "access_token" in req.form
    length = req.content_length
    if length is None or length > MAX_FORM_INSPECTED:
        return False  # opened by the app and unbounded or large: not buffered to look
    return names_access_token(request_body(req, MAX_FORM_INSPECTED))


def request_body(req: Request, limit: int) -> bytes:
    """The body of a Flask request, at most ``limit`` bytes, still readable by the view
    afterwards (``get_data``, ``form``, ``get_json``). :class:`BodyError` when it cannot be
    read, ends before its ``Content-Length``, is larger than ``limit``, or was consumed by the
    application's own form parsing before it could be checked."""
    if "stream" not in req.__dict__:  # werkzeug builds the stream lazily: nobody has read yet
        return read_body(req.environ, limit=limit)
    too_large = BodyError(f"the request body is larger than {limit} bytes")
    length = req.content_length
    if length is not None and length > limit:
        raise too_large
    data = getattr(req, "_cached_data", None)  # werkzeug keeps what get_data() read
    if data is None:
        if "form" in req.__dict__:
            # Form parsing read the stream without keeping the bytes; an empty body would be a lie.
            raise BodyError("the request body was consumed before it could be checked")
        try:
            data = req.stream.read(limit + 1)
        except Exception:  # a malformed chunked body, a cut connection
            raise BodyError("the request body could not be read") from None
        if length is not None and len(data) != length:
            raise BodyError("the request body ended before its Content-Length")
        req.__dict__["stream"] = io.BytesIO(data)  # the view reads it whole after us
    if len(data) > limit:
        raise too_large
    return data


def json_body(*, limit: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The current request's body as one JSON object, at most ``limit`` bytes and nested at most
    ``max_depth`` deep, duplicate members refused. Raises :class:`~resource_server.bodies.BodyError`,
    which an app with the extension answers ``400`` with a JSON error. Use it instead of
    ``request.get_json()``, which lets a body nested 1,000 deep raise ``RecursionError`` (a 500)."""
    return json_object(request_body(current_request(), limit), max_depth=max_depth)
