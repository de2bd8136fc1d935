"""The request and the app behind Flask's ``request`` and ``current_app`` proxies, each resolved
in one call: every attribute read through a proxy costs a context lookup, and the guard runs on
every request.

Flask types its proxies as the objects they stand for; they are werkzeug ``LocalProxy`` objects,
whose ``_get_current_object`` werkzeug documents for this use. It is bound to its proxy when the
proxy is made, so it is looked up once, here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from flask import Flask, Request, current_app, request

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

__all__ = ["current_app_object", "current_request"]

#: The request being handled (``RuntimeError`` outside a request).
current_request: Callable[[], Request] = cast("LocalProxy[Request]", request)._get_current_object
#: The app handling the request (``RuntimeError`` outside an app context).
current_app_object: Callable[[], Flask] = cast("LocalProxy[Flask]", current_app)._get_current_object
