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
from typing import Any

import urllib3
import urllib3.connection

__all__ = ["ERRORS", "pool_manager"]

#: What a request or the reading of its answer raises when the exchange fails: urllib3's own
#: errors, the socket's, and http.client's for a malformed answer.
ERRORS = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)


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
        return self._raw.readinto(buffer)

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
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


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
        retries=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout, total=timeout),
    )
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager
