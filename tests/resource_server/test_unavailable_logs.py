"""503s are logged at ERROR once per cause a minute, not once per request: a flood of tokens with
made-up kids while a refetch may not start yet, or of proofs a full replay cache cannot record,
writes one ERROR line (the security event ``verification_unavailable``), then one a minute with
the number of refusals since, each of which is a decision event at INFO. The minute is the verifier's clock, injected here: nothing waits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from werkzeug.test import Client

from policy import Roles
from resource_server import JWTVerifier
from resource_server.wsgi import BearerMiddleware
from tests.resource_server.test_dpop_guard import bound, fresh, replay_app
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, JWKSServer, Signer, dpop_key, jwks

FLOOD = 30


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every ERROR line of the package's loggers."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("resource_server")
    ]


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"reached"]


def get(client: Client, token: str) -> int:
    return client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_flood_of_made_up_kids_is_one_error_line_a_minute(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(NOW)
    with JWKSServer(jwks(es)).running() as server:
        client = Client(
            BearerMiddleware(
                plain,
                verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=clock),
                roles=Roles({"member": ["project:read"]}),
                membership=lambda subject, org: "member",
                routes={"/orgs/<org>/projects": {"GET": "project:read"}},
            )
        )
        assert get(client, es.token(now=NOW)) == 200  # the set is fetched
        with caplog.at_level(logging.DEBUG, logger="resource_server"):
            # Inside the 5 s refetch interval: each made-up kid cannot be settled yet.
            assert {
                get(client, es.token(now=NOW, headers={"kid": f"made-up-{n}"})) for n in range(FLOOD)
            } == {503}
            assert errors(caplog) == [
                f"503 temporarily_unavailable: a token's key is not in the JWK Set of {server.url} as last"
                " fetched, and the set cannot be fetched again yet"
            ]
            # Every refusal is still one decision event (INFO, on resource_server.audit).
            decisions = [r for r in caplog.records if r.name == "resource_server.audit"]
            assert [r.audit["status"] for r in decisions] == [503] * FLOOD  # type: ignore[attr-defined]
            paced = [
                r
                for r in caplog.records
                if getattr(r, "audit", {}).get("event") == "verification_unavailable"
            ]
            assert len(paced) == 1 and paced[0].levelno == logging.ERROR
            caplog.clear()
            clock.advance(60)
            assert get(client, es.token(now=int(clock.now), headers={"kid": "made-up"})) == 401  # refetched
            assert get(client, es.token(now=int(clock.now), headers={"kid": "made-up-again"})) == 503
            (line,) = errors(caplog)
            assert line.endswith(f"(and {FLOOD - 1} more since the last line)")


def test_a_flood_of_proofs_a_full_replay_cache_cannot_record_is_one_error_line(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache's own description says why (and how full); it is logged by the refusal, paced."""
    clock = FakeClock(NOW)
    key = dpop_key("ES256")
    client = replay_app(es, clock, 1, max_proofs_per_key=5)
    token = bound(es, key)
    assert fresh(client, token, key, clock).status_code == 200
    with caplog.at_level(logging.DEBUG, logger="resource_server"):
        assert {fresh(client, token, key, clock).status_code for _ in range(FLOOD)} == {503}
    assert errors(caplog) == [
        "503 temporarily_unavailable: the replay cache is full: 1 entries, all live; size it larger"
    ]
