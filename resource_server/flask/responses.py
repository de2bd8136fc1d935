"""Flask responses for the guard's refusals."""

from __future__ import annotations

from flask import Response

from ..denials import Denial

__all__ = ["denial_response"]


def denial_response(denial: Denial) -> Response:
    """The Flask response for a refusal: its status, headers and JSON body, exactly."""
    return Response(denial.body, status=denial.status, headers=denial.headers)
