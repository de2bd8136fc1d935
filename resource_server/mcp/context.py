"""What a tool, a resource or a prompt sees of the request being served: the grant
:func:`~resource_server.mcp.protect_mcp` admitted it with, through :func:`current_access` and
:func:`current_token`."""

from __future__ import annotations

from contextvars import ContextVar

from policy import Access

from ..guard import Granted
from ..tokens import VerifiedToken

__all__ = ["GRANTED", "current_access", "current_token"]

#: The grant of the request being served; set by the wrapper around the app's call. The SDK runs
#: each message's handler in the context of the request that sent it, so a tool sees its own.
GRANTED: ContextVar[Granted | None] = ContextVar("resource_server_mcp_granted", default=None)


def current_access() -> Access:
    """The :class:`policy.Access` of the MCP request being served (inside a tool, a resource or
    a prompt of an app wrapped by :func:`protect_mcp`): subject, org, effective scopes.
    ``RuntimeError`` outside one."""
    return _current().access


def current_token() -> VerifiedToken:
    """The :class:`~resource_server.tokens.VerifiedToken` of the MCP request being served."""
    token = _current().token
    assert token is not None  # protect_mcp admits access tokens only
    return token


def _current() -> Granted:
    granted = GRANTED.get()
    if granted is None:
        raise RuntimeError(
            "current_access() and current_token() exist only inside a request protect_mcp admitted"
        )
    return granted
