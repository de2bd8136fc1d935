"""The RFC 9728 protected resource metadata document as an ASGI app, for the MCP wrapper (or an
enclosing app) to serve where MCP clients look for it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..asgi_http import Receive, Scope, Send

__all__ = ["ResourceMetadata"]


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
