"""The connections to the authorization server: ``urllib3`` pools with no retries and no
redirects, and a deadline on the whole answer, not only on each read.

A module of its own so that ``urllib3`` is imported when a verifier first builds a client
(:class:`~resource_server.tokens.http.JSONFetcher`, an
:class:`~resource_server.tokens.IntrospectionVerifier`), not by ``import resource_server``: a
verifier with a static key set never loads it.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Mapping
from typing import Any

import urllib3
import urllib3.connection

__all__ = ["ERRORS", "NO_RETRIES", "endpoint_pool", "pool_manager"]

#: What a request or the reading of its answer raises when the exchange fails: urllib3's own
#: errors, the socket's, and http.client's for a malformed answer.
ERRORS = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
#: No retries and no redirects (a retry is the client's call, after our 503): what urllib3 makes
#: of ``retries=False, redirect=False``, made once rather than on every request.
NO_RETRIES = urllib3.Retry(total=False, redirect=False)
# Headers that say how a request's body is framed: a request carrying one is sent as it is.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class _DeadlineReader(io.RawIOBase):
    """A socket's byte stream in which each read gets only the time left before a deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive in time")
        self._sock.settimeout(left)
        # The socket itself, not socket.SocketIO.readinto: its checks are for sockets without a
        # timeout, or for one read again after a timeout, which this one never is.
        return self._sock.recv_into(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, read so that the status line, headers and body together arrive
    within the read timeout: a socket timeout bounds each read, not their sum, and a server
    trickling a byte at a time would otherwise hold the request for as long as it liked."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        budget = sock.gettimeout()  # urllib3 has just set it to what is left of the timeout
        if budget is not None:
            raw = self.fp.detach()  # nothing has been read or buffered yet
            self.fp = io.BufferedReader(_DeadlineReader(raw, sock, time.monotonic() + budget))


class _HTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection, its answers read by :class:`_DeadlineResponse`, and a request with a
    body of bytes sent in one write, head and body together: in two writes it is two TCP
    segments (urllib3 turns Nagle's algorithm off), and a server may wake up for the head alone,
    which it cannot answer yet (measured on loopback with the machine busy: an introspection
    call 20 to 100 µs shorter)."""

    response_class = _DeadlineResponse
    _held: bytes | None = None  # the body, sent by send() right after the head

    def request(  # type: ignore[override]  # urllib3's own signature, which it marks so too
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        self._held = None
        if (
            type(body) is bytes
            and body
            and headers is not None
            and not options.get("chunked")
            and _FRAMING.isdisjoint(map(str.lower, headers))
        ):
            self._held, body = body, None
            headers = {**headers, "Content-Length": str(len(self._held))}
        super().request(method, url, body, headers, **options)

    def send(self, data: Any) -> None:
        # http.client sends the head first, in one call; the body, held back, goes with it.
        held, self._held = self._held, None
        super().send(data + held if held is not None else data)


class _HTTPSConnection(_HTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def pool_manager(timeout: float, *, max_idle: int = 16, pools: int = 1) -> urllib3.PoolManager:
    """Pooled keep-alive connections; no retries and no redirects (a retry is the client's
    call, after our 503); ``total`` makes the read timeout what the connect left over."""
    manager = urllib3.PoolManager(
        num_pools=pools,
        maxsize=max_idle,
        block=False,  # more connections when busy; only this many are kept
        retries=NO_RETRIES,
        timeout=urllib3.Timeout(connect=timeout, read=timeout, total=timeout),
    )
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


def endpoint_pool(url: str, timeout: float, *, max_idle: int = 16) -> tuple[urllib3.HTTPConnectionPool, str]:
    """:func:`pool_manager`'s connections to the origin of ``url``, and the request target (path
    and query) to send there, for a client that only ever calls that one endpoint: its requests
    go to the pool itself, without the manager's URL parsing and pool lookup on each (40 µs of a
    loopback POST's 260, measured)."""
    return (
        pool_manager(timeout, max_idle=max_idle).connection_from_url(url),
        urllib3.util.parse_url(url).request_uri,
    )
