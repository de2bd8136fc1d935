"""The RFC 9728 protected resource metadata document as an ASGI app, for the MCP wrapper, FastMCP's
auth hook (or an enclosing app) to serve where MCP clients look for it, and the authorization
servers it names."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..asgi_http import Receive, Scope, Send
from ..checks import authorization_servers as servers_of

__all__ = ["ResourceMetadata", "authorization_servers_of"]


class ResourceMetadata:
    """An ASGI app serving one RFC 9728 protected resource metadata document (§3.2) for GET and
    HEAD, wherever it is mounted: ``Route(protected.metadata_path, protected.metadata_app)``."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = dict(document)
        self._body = json.dumps(self.document).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method")
        if method not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body if method == "GET" else b""})


def authorization_servers_of(servers: str | Collection[str] | None, verifier: object) -> tuple[str, ...]:
    """The RFC 9728 ``authorization_servers``: those given, else the verifier's issuers. MCP
    clients find their authorization server there, so at least one is needed."""
    found = servers_of(servers if servers is None or isinstance(servers, str) else tuple(servers), verifier)
    if not found or not all(isinstance(s, str) and urlsplit(s).scheme in ("https", "http") for s in found):
        unnamed = "; the verifier names no issuer, so give them" if servers is None else ""
        raise ValueError(
            f"authorization_servers must name at least one authorization server by its issuer URL{unnamed}"
        )
    return found
