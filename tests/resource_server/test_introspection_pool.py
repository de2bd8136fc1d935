"""The connection pool the introspection verifier sends through (resource_server/tokens/pool.py):
a body of bytes leaves in one write with the head, under a Content-Length the pool adds, unless
the caller framed it already; then it is sent as framed, never with a second length. Against a
real loopback server that keeps each request's Content-Length lines."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from resource_server.tokens.pool import NO_RETRIES, endpoint_pool
from tests.support import serving


class _Framing(ThreadingHTTPServer):
    """Answers every POST with 204, keeping each request's Content-Length lines and body."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                lengths = self.headers.get_all("Content-Length") or []
                body = self.rfile.read(int(lengths[0])) if len(lengths) == 1 else b""
                owner.seen.append((lengths, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.mark.parametrize("header", ["Content-Length", "content-length"])
def test_a_body_framed_by_its_caller_is_sent_as_framed(header: str) -> None:
    framing = _Framing()
    with serving(framing):
        pool, target = endpoint_pool(f"http://127.0.0.1:{framing.server_port}/x", 2.0)
        for headers in ({header: "5"}, {"Accept": "text/plain"}):
            response = pool.urlopen("POST", target, body=b"hello", headers=headers, retries=NO_RETRIES)
            assert response.status == 204
    # One Content-Length each time: the caller's, or the one the pool adds for a body of bytes.
    assert framing.seen == [(["5"], b"hello"), (["5"], b"hello")]
