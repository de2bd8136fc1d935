"""Django responses for the guard's refusals.

Every refusal's JSON body carries both spellings of what went wrong: ``detail``, which DRF
clients read, and ``error`` / ``error_description``, which RFC 6750 §3 clients read::

    {"detail": "...", "error": "insufficient_scope", "error_description": "..."}

``detail`` and ``error_description`` hold the same sentence; ``error`` is the challenge's error
code (``unauthorized`` without credentials, ``forbidden`` for a 403 no token could fix).
"""

from __future__ import annotations

import json
from typing import TypeVar

from django.http import HttpResponse

from ..denials import Denial
from ..guard import Granted

__all__ = ["denial_body", "denial_response", "with_grant_headers"]

R = TypeVar("R")  # whatever the view answers: a response, or what a middleware passes on


def denial_body(denial: Denial) -> dict[str, str]:
    """The JSON body of ``denial`` as the Django adapter sends it."""
    return {"detail": denial.description, "error": denial.error, "error_description": denial.description}


def denial_response(denial: Denial) -> HttpResponse:
    """The response for a refusal: its status, ``WWW-Authenticate``, ``Retry-After`` or
    ``DPoP-Nonce`` and ``Cache-Control: no-store``, and the JSON body above."""
    response = HttpResponse(
        json.dumps(denial_body(denial)), status=denial.status, content_type="application/json"
    )
    for name, value in denial.headers:
        if name != "Content-Type":
            response[name] = value
    return response


def with_grant_headers(response: R, granted: Granted | None) -> R:
    """``response`` with the grant's headers (a fresh ``DPoP-Nonce``, RFC 9449 §8.2) added."""
    if granted is not None and granted.headers and isinstance(response, HttpResponse):
        for name, value in granted.headers:
            response[name] = value
    return response
