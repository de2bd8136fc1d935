"""A token in a form body, in a FastAPI request that may have read its body already."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..asgi_http import Receive, header, token_elsewhere
from ..credentials import MAX_FORM_INSPECTED, names_access_token

__all__ = ["token_elsewhere_of"]

_FORM = "application/x-www-form-urlencoded"


async def token_elsewhere_of(request: Request) -> bool:
    """Whether an access token also came in the query or a form body (RFC 6750 §2.2, §2.3:
    refused; the header is the only method accepted). FastAPI reads the body before the
    dependencies when the endpoint declares ``Form`` or body parameters; otherwise the form is
    read here and kept where Starlette keeps a body it has read, so the endpoint's ``body()``,
    ``form()`` and ``json()`` still see it whole."""
    scope = request.scope
    query = scope.get("query_string")
    if query and names_access_token(query):
        return True
    content_type = header(scope, b"content-type")
    if not content_type or content_type[: len(_FORM)].lower() != _FORM:
        return False
    form = getattr(request, "_form", None)
    body = request.__dict__.get("_body")
    if form is not None:
        return "access_token" in form
    if body is not None:
        return len(body) <= MAX_FORM_INSPECTED and names_access_token(body)
    if getattr(request, "_stream_consumed", False):
        return False  # read by the app without keeping it: nothing left to look into
    elsewhere, receive = await token_elsewhere(scope, request.receive)
    if receive is not request.receive:  # the form was read, and is replayed from its start
        first = await receive()
        if not first.get("more_body", False):
            request._body = first["body"]  # all of it
        else:  # a chunked form too large to look into, passed on unread: the rest follows
            request._receive = _prepending(first, receive)
    return elsewhere


def _prepending(message: Any, receive: Receive) -> Receive:
    """A ``receive`` that gives ``message`` back first, then whatever ``receive`` says next."""
    pending = [message]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay
