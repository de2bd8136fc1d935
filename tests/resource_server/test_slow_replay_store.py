"""A DPoP proof checked against a shared replay store (Redis) waits on the network, so the async
adapters check it in a worker thread even when its token is cached: while one request waits on a
slow Redis, the other requests on the event loop go on. The companion of the slow-JWKS test in
``test_asgi.py``, under uvicorn on loopback, with a real ``redis-server`` made slow by a proxy
that holds one command until the test lets it through.

No timing is measured: the proxy holds the DPoP request's ``SET`` until a bearer request sent
after it has been answered. Were the proof checked on the loop, that answer could not come: the
proxy would give up holding after its bound, and the test would see it had to."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis
import uvicorn

from policy import Roles
from resource_server import JWTVerifier
from resource_server.asgi import BearerMiddleware
from resource_server.dpop import DPoPVerifier
from resource_server.state import RedisReplayCache
from tests.support import AUDIENCE, ISSUER, FakeClock, dpop_key, es256, jwks, next_jti

RESOURCE = "https://api.test"
PATH = "/orgs/acme/projects"
#: How long the proxy holds a command when nobody releases it: only reached when the loop stalls.
HOLD_LIMIT = 10.0


class GatedRedisProxy:
    """A TCP proxy on 127.0.0.1 in front of a Redis server's Unix socket. Bytes pass through,
    except that once :meth:`arm` is called, the next command any client sends is held until
    :attr:`release` is set (``holding`` is set meanwhile), or for ``HOLD_LIMIT`` seconds, after
    which ``gave_up`` is true."""

    def __init__(self, unix_path: str) -> None:
        self.unix_path = unix_path
        self.holding = threading.Event()
        self.release = threading.Event()
        self.gave_up = False
        self._armed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self._armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.unix_path)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, commands: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if commands and self._armed.is_set():
                    self._armed.clear()
                    self.holding.set()
                    self.gave_up = not self.release.wait(HOLD_LIMIT)
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.release.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a loopback socket bound to port 0; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def echo(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_slow_redis_replay_store_does_not_stall_the_loop_under_uvicorn(redis_url: str) -> None:
    """A DPoP request whose token is cached waits on Redis (its proof's jti) while a bearer
    request with a cached token, sent after it, is answered on the same server."""
    assert redis_url.startswith("unix://")
    proxy = GatedRedisProxy(redis_url.removeprefix("unix://"))
    store = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=3 * HOLD_LIMIT)
    clock = FakeClock()
    signer, key = es256("slow-store-1"), dpop_key("ES256")
    app = BearerMiddleware(
        echo,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=clock),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: "member" if (subject, org) == ("user-1", "acme") else None,
        routes={"/orgs/{org}/projects": {"GET": "project:read"}},
        dpop=DPoPVerifier(
            clock=clock, replay_cache=RedisReplayCache(store, prefix=f"{next_jti('slow-')}:", clock=clock)
        ),
        resource=RESOURCE,
    )
    bound = signer.token(cnf={"jkt": key.jkt})
    bearer = {"Authorization": f"Bearer {signer.token()}"}

    def dpop() -> dict[str, str]:
        return {
            "Authorization": f"DPoP {bound}",
            "DPoP": key.proof("GET", f"{RESOURCE}{PATH}", access_token=bound),
        }

    async def scenario(base: str) -> tuple[int, bool, int]:
        async with httpx.AsyncClient(base_url=base, timeout=6 * HOLD_LIMIT) as client:
            # Both tokens verified and cached; the DPoP one's first proof recorded in Redis.
            assert (await client.get(PATH, headers=dpop())).status_code == 200
            assert (await client.get(PATH, headers=bearer)).status_code == 200
            proxy.arm()
            slow = asyncio.create_task(client.get(PATH, headers=dpop()))
            assert await asyncio.to_thread(proxy.holding.wait, 3 * HOLD_LIMIT)  # its SET is held
            warm = await client.get(PATH, headers=bearer)
            waiting = not slow.done()
            proxy.release.set()
            return warm.status_code, waiting, (await slow).status_code

    try:
        with serve(app) as base:
            warm, waiting, slow = asyncio.run(scenario(base))
    finally:
        proxy.close()
        store.close()
    assert not proxy.gave_up, "the loop stalled: the bearer request waited for the held Redis command"
    assert (warm, waiting, slow) == (200, True, 200)
