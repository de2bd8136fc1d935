"""A fast RFC 7662 introspection endpoint for the benchmarks, run as a process of its own.

It answers every POST on loopback with one precomputed answer (the token active for ``user-1``
in ``acme``, for an hour from its start), over HTTP/1.1 keep-alive, from an ``asyncio``
protocol: tens of microseconds a request, so that what the benchmark's introspection case adds
over one bare POST to it is our verifier's own work, not an authorization server's. In a process
of its own, it does not share the benchmark's interpreter lock. It prints its port on stdout and
exits when its stdin closes (the benchmark ended, however it ended).

    python benchmarks/introspection_endpoint.py https://api.load.test
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time


def answer(audience: str) -> bytes:
    """The whole HTTP response, computed once: status line, headers and the RFC 7662 §2.2 body."""
    now = int(time.time())
    body = json.dumps(
        {
            "active": True,
            "sub": "user-1",
            "client_id": "load-client",
            "aud": audience,
            "scope": "project:read",
            "org_id": "acme",
            "token_type": "Bearer",
            "iat": now,
            "exp": now + 3600,
        }
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class Introspection(asyncio.Protocol):
    """One connection: each complete request (head and ``Content-Length`` body) gets the answer."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport  # asyncio sets TCP_NODELAY on TCP sockets itself

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.reply)


async def serve(audience: str) -> None:
    loop = asyncio.get_running_loop()
    reply = answer(audience)
    server = await loop.create_server(lambda: Introspection(reply), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main() -> None:
    def exit_with_parent() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
