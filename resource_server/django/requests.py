"""The facts the guard needs from a Django request (WSGI or ASGI), read the way every other adapter
reads them: the ``Authorization`` value, whether a token also came in the query or an urlencoded
body (RFC 6750 §2.2, §2.3: refused), the ``Host`` (validated first), the DPoP header and the URL a
proof names; and bounded reads of the body, which leave it readable by the view and by DRF."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import BadRequest
from django.http import HttpRequest

from .. import asgi_http
from ..bodies import MAX_JSON_BYTES, MAX_JSON_DEPTH, BodyError, json_object
from ..credentials import (
    MAX_FORM_INSPECTED,
    MalformedHost,
    check_host,
    names_access_token,
    request_url,
)
from ..denials import Denial, Refusals
from ..dpop import DPoPRequest, dpop_request

__all__ = ["BadBody", "Facts", "facts", "json_body", "read_body", "request_target"]

_FORM = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]{1,19}")


class BadBody(BodyError, BadRequest):
    """A body :func:`json_body` refused: a :class:`~resource_server.bodies.BodyError`, and
    Django's ``BadRequest``, so one a view lets through is answered ``400``, never a 500."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the guard is told about one request."""

    authorization: str | None
    token_elsewhere: bool
    dpop: DPoPRequest | None


def facts(request: HttpRequest, refusals: Refusals, *, dpop: bool, resource: str | None) -> Facts | Denial:
    """The request's facts, or the ``400`` for a bad ``Host`` (RFC 9112 §3.2: first, whatever
    else the request carries) or a body that had to be read and could not be."""
    meta = request.META
    try:
        check_host(meta.get("HTTP_HOST"))
        # Most requests have neither a query string nor a body: nothing to look into.
        elsewhere = (
            _token_elsewhere(request) if meta.get("QUERY_STRING") or meta.get("CONTENT_TYPE") else False
        )
    except MalformedHost as exc:
        return refusals.bad_host(exc)
    except BodyError as exc:
        return refusals.bad_body(exc)
    authorization = meta.get("HTTP_AUTHORIZATION")
    found = (
        dpop_request(
            authorization, meta.get("HTTP_DPOP"), request.method or "GET", lambda: _url(request, resource)
        )
        if dpop
        else None
    )
    return Facts(authorization, elsewhere, found)


def _url(request: HttpRequest, resource: str | None) -> str:
    """The URL a DPoP proof names (RFC 9449 §4.3), from the ASGI scope or the WSGI environ."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and scope.get("type") == "http":
        return asgi_http.request_url(scope, resource)
    return request_url(request.META, resource)


def _content_length(request: HttpRequest) -> int | None:
    """The declared ``Content-Length`` (RFC 9110 §8.6: ASCII digits), None when absent, -1 when
    it is not a length."""
    value = request.META.get("CONTENT_LENGTH")
    if value is None or value == "":
        return None
    return int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else -1


def _token_elsewhere(request: HttpRequest) -> bool:
    """Whether an ``access_token`` came in the query or an urlencoded body. At most
    ``MAX_FORM_INSPECTED`` bytes of the body are read to look, and the body stays readable
    (``request.body``, ``request.POST``, DRF's ``request.data``); a larger form is not searched
    (a token there is never accepted anyway: only the header is)."""
    query = request.META.get("QUERY_STRING")
    if query and names_access_token(query):
        return True
    content_type = request.META.get("CONTENT_TYPE") or ""
    if content_type[: len(_FORM)].lower() != _FORM:
        return False
    head = _form_head(request)
    return head is not None and len(head) <= MAX_FORM_INSPECTED and names_access_token(head)


def _form_head(request: HttpRequest) -> bytes | None:
    """The urlencoded body, or its first ``MAX_FORM_INSPECTED + 1`` bytes; None when it cannot
    be looked at without reading more than that (or was consumed by the application)."""
    if "_body" in request.__dict__:  # read already (by the application, or by Django's form parsing)
        return request.body  # what was read, kept: nothing is read again
    if getattr(request, "_read_started", False):  # streamed by the application: gone
        return None
    declared = _content_length(request)
    if declared is None:
        # WSGI: Django reads nothing without a length. ASGI: Django has buffered the body in a
        # seekable file; look at its head and put the position back.
        stream = getattr(request, "_stream", None)
        if stream is None or not getattr(stream, "seekable", lambda: False)():
            return None
        try:
            head: bytes = stream.read(MAX_FORM_INSPECTED + 1)
            stream.seek(0)
        except Exception:  # a file Django could not keep: the server's own failure
            raise BodyError("the request body could not be read") from None
        return head
    if declared < 0 or declared > MAX_FORM_INSPECTED:
        return None
    return read_body(request, MAX_FORM_INSPECTED)


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The whole body of ``request``, at most ``limit`` bytes, kept where Django keeps a body it
    has read (``request.body``), so the view, its forms and DRF's parsers read it again whole.
    :class:`~resource_server.bodies.BodyError` when it is larger, cannot be read, ends before its
    ``Content-Length``, or was streamed by the application before it could be checked."""
    too_large = BodyError(f"the request body is larger than {limit} bytes")
    declared = _content_length(request)
    if declared is not None and (declared < 0 or declared > limit):
        raise too_large if declared > limit else BodyError("the Content-Length is not a length")
    if "_body" not in request.__dict__ and getattr(request, "_read_started", False):
        raise BodyError("the request body was consumed before it could be checked")
    if declared is None and "_body" not in request.__dict__:
        data = _bounded_unknown_length(request, limit)
    else:
        try:
            data = request.body  # Django's own read: bounded by the declared length checked above
        except Exception:  # a cut connection, a malformed chunked body, Django's own size limit
            raise BodyError("the request body could not be read") from None
    if len(data) > limit:
        raise too_large
    if declared is not None and len(data) != declared:
        raise BodyError("the request body ended before its Content-Length")
    return data


def _bounded_unknown_length(request: HttpRequest, limit: int) -> bytes:
    """A body without ``Content-Length`` (ASGI, chunked): read at most ``limit + 1`` bytes and,
    when that was all of it, keep it as Django would."""
    try:
        data: bytes = request.read(limit + 1)
    except Exception:
        raise BodyError("the request body could not be read") from None
    if len(data) <= limit:
        request._body = data  # what request.body returns from now on
        request._stream = io.BytesIO(data)
    return data


def json_body(
    request: HttpRequest, *, limit: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """The request's body as one JSON object, at most ``limit`` bytes and nested at most
    ``max_depth`` deep, duplicate members refused: :class:`BadBody` otherwise (a ``BodyError``
    whose ``description`` is safe to send; left unhandled, Django answers it ``400``). DRF's
    ``JSONParser`` lets a body nested 1,000 deep raise ``RecursionError``, a 500."""
    try:
        return json_object(read_body(request, limit), max_depth=max_depth)
    except BodyError as exc:
        raise BadBody(exc.description) from None


def request_target(request: HttpRequest) -> str:
    """The path and query as the client sent them (RFC 9110 §7.1 origin-form), which a viewer
    context's ``htu`` signs; Django's decoded ``request.path`` could differ from it."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and scope.get("type") == "http":
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else scope.get("path", "")
        query = scope.get("query_string") or b""
        return path + (f"?{query.decode('latin-1')}" if query else "")
    raw_uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if isinstance(raw_uri, str) and raw_uri:
        return raw_uri
    query = request.META.get("QUERY_STRING")
    return str(
        request.META.get("SCRIPT_NAME", "")
        + request.META.get("PATH_INFO", "")
        + (f"?{query}" if query else "")
    )
