"""What the extension records on the views it protects, for its tooling: ``flask scopes check``
and ``explain`` (:mod:`~resource_server.flask.routes`) and the OpenAPI security it generates."""

from __future__ import annotations

__all__ = ["mark"]

#: Every mark's attribute name starts with this (a name no view defines by itself).
PREFIX = "_resource_server_"


def mark(view: object, **marks: object) -> None:
    """Record ``marks`` on ``view`` (a function, or a view class): ``mark(view, public=True)``
    sets ``view._resource_server_public``, which the tooling reads with ``getattr``."""
    for name, value in marks.items():
        setattr(view, PREFIX + name, value)
