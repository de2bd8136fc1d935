"""Telemetry never fails a request (DESIGN.md: never a 500): a meter provider or a tracer whose
objects raise (an SDK bug, a broken exporter or view), or an audit hook that raises even
``SystemExit``, costs a log line, not an answer, and nothing the library keeps (a fetched key
set) is lost to it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from policy import Roles
from resource_server import JWTVerifier, telemetry
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, JWKSServer, es256, jwks

SIGNER = es256("telemetry-failures")


class Broken(Exception):
    """What the broken SDK objects raise."""


class RaisingInstrument:
    def record(self, *args: Any, **kwargs: Any) -> None:
        raise Broken("record")

    def add(self, *args: Any, **kwargs: Any) -> None:
        raise Broken("add")


class RaisingMeter:
    def create_histogram(self, *args: Any, **kwargs: Any) -> RaisingInstrument:
        return RaisingInstrument()

    def create_counter(self, *args: Any, **kwargs: Any) -> RaisingInstrument:
        return RaisingInstrument()

    def create_observable_counter(self, *args: Any, **kwargs: Any) -> None:
        return None

    def create_observable_up_down_counter(self, *args: Any, **kwargs: Any) -> None:
        return None

    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> None:
        return None


class RaisingMeterProvider:
    def get_meter(self, *args: Any, **kwargs: Any) -> RaisingMeter:
        return RaisingMeter()


class RaisingTracer:
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise Broken("span")


class RaisingTracerProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> RaisingTracer:
        return RaisingTracer()


@pytest.fixture
def broken(request: pytest.FixtureRequest) -> Iterator[None]:
    telemetry.configure(**request.param)
    try:
        yield
    finally:
        telemetry.configure()


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def protected(verifier: JWTVerifier) -> Client:
    return Client(
        BearerMiddleware(
            app,
            verifier=verifier,
            roles=Roles({"admin": ["project:read"]}),
            membership=lambda subject, org: "admin",
            routes={"/orgs/<org>/projects": {"GET": "project:read"}},
        )
    )


BROKEN = {
    "meter provider": {"meter_provider": RaisingMeterProvider()},
    "tracer provider": {"tracer_provider": RaisingTracerProvider()},
}


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys(), indirect=True)
@pytest.mark.usefixtures("broken")
def test_requests_are_answered_and_the_fetched_key_set_kept(caplog: pytest.LogCaptureFixture) -> None:
    with JWKSServer(jwks(SIGNER)).running() as server:
        verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=FakeClock(NOW))
        client = protected(verifier)
        with caplog.at_level(logging.ERROR, logger="resource_server"):
            for _ in range(3):  # new tokens: each verified, timed and traced
                token = SIGNER.token()
                assert (
                    client.get(
                        "/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}
                    ).status_code
                    == 200
                )
            assert (
                client.get("/orgs/acme/projects", headers={"Authorization": "Bearer a.b.c"}).status_code
                == 401
            )
            assert client.get("/orgs/acme/projects").status_code == 401
        assert server.requests == 1  # the key set was kept although recording its fetch failed
    failures = [r for r in caplog.records if r.getMessage().startswith("telemetry failed")]
    assert failures and len(failures) <= 8  # once per place, not once per request


def test_a_hook_raising_system_exit_does_not_stop_the_events_after_it() -> None:
    seen: list[int] = []

    def hook(event: Any) -> None:
        seen.append(event["n"])
        if event["n"] == 0:
            raise SystemExit("the hook quit")

    telemetry.configure(audit_hook=hook)
    try:
        from resource_server.telemetry import audit

        for n in range(5):
            audit._hook.submit({"event": "decision", "n": n})
        assert telemetry.flush(5.0)
    finally:
        telemetry.configure()
    assert seen == [0, 1, 2, 3, 4]
