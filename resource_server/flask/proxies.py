"""The request and the app behind Flask's ``request`` and ``current_app`` proxies, each resolved
in one call: every attribute read through a proxy costs a context lookup, and the guard runs on
every request.

Flask types its proxies as the objects they stand for; they are werkzeug ``LocalProxy`` objects,
whose ``_get_current_object`` werkzeug documents for this use. It is bound to its proxy when the
proxy is made, so it is looked up once, here.

:func:`current_context` gives both from one lookup, for the code every protected request runs."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, cast

from flask import Flask, Request, current_app, request

_context: ContextVar[Any]
try:  # Flask 3.0 and 3.1 keep the request context (request and app) in a context variable
    from flask.globals import _cv_request

    _context = _cv_request
except ImportError:  # Flask 3.2 merged it into the app context, which holds the request too
    from flask.globals import _cv_app

    _context = _cv_app

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

__all__ = ["RequestContext", "current_app_object", "current_context", "current_request"]

#: The request being handled (``RuntimeError`` outside a request).
current_request: Callable[[], Request] = cast("LocalProxy[Request]", request)._get_current_object
#: The app handling the request (``RuntimeError`` outside an app context).
current_app_object: Callable[[], Flask] = cast("LocalProxy[Flask]", current_app)._get_current_object


class RequestContext(Protocol):
    """What Flask's context for a request holds: the request and the app handling it."""

    @property
    def request(self) -> Request: ...  # Flask 3.2: RuntimeError in an app context without one

    @property
    def app(self) -> Flask: ...


#: ``current_context(None)``: the context of the request being handled (its ``request`` and
#: ``app``), or None outside one: one context lookup where the two proxies above make one each,
#: and neither's function call. Flask's own, private, context variable, so a test pins it to what
#: the public proxies resolve to (tests/resource_server/test_flask_hot_path.py). On the
#: benchmark's warm request, 1.8k instructions fewer than the two proxies (cachegrind).
current_context: Callable[[None], RequestContext | None] = cast("ContextVar[RequestContext]", _context).get
