"""Telemetry beyond the status table (tests/resource_server/test_telemetry_adapters.py): spans and
their parents, the trace context sent to the authorization server, DPoP's rows and replay
checks, the security events, bounded cardinality and the audit hook's bound. Read back from the
OpenTelemetry SDK's in-memory metric reader and span exporter and from the audit logger, every
event validated against the shipped JSON Schema (tests/otel.py)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from werkzeug.test import Client

from policy import Access, Roles, ScopeMap
from resource_server import IntrospectionVerifier, JWTVerifier, telemetry
from resource_server.dpop import DPoPNonces
from resource_server.fastapi import ResourceServer as FastAPIServer
from resource_server.flask import ResourceServer as FlaskServer
from resource_server.guard import Guard
from resource_server.tokens import TrustedIssuers
from resource_server.wsgi import BearerMiddleware
from tests.otel import HeaderServer, Recorded, key, recording
from tests.resource_server.test_asgi import serve as serve_asgi
from tests.resource_server.test_dpop_guard import URL, bound, dpop_headers, flask_app, fresh, replay_app
from tests.resource_server.test_viewer_context import mint
from tests.resource_server.test_viewer_context import verifier as viewer_verifier
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, dpop_key, es256, jwks, serve_wsgi

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
SCOPES = {"GET": "project:read", "POST": "project:write"}


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if org == "acme" else None


def trace_context(headers: Mapping[str, str]) -> tuple[str, str]:
    """The trace and parent span ids of a W3C ``traceparent`` header (version 00)."""
    version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    return trace_id, span_id


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def parent_of(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


# -- spans: children of the framework's request span, nothing on the warm path --------------------


def request_spans(app: Callable[..., Any], recorded: Recorded) -> Callable[..., Any]:
    """A WSGI app in a SERVER span per request, as OpenTelemetry's WSGI instrumentation does."""
    tracer = recorded.tracer_provider.get_tracer("framework")

    def traced(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with tracer.start_as_current_span("GET /orgs/<org>/projects", kind=SpanKind.SERVER):
            return list(app(environ, start_response))

    return traced


def asgi_request_spans(app: Any, recorded: Recorded) -> Any:
    """An ASGI app in a SERVER span per HTTP request, as OpenTelemetry's ASGI instrumentation does."""
    tracer = recorded.tracer_provider.get_tracer("framework")

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with tracer.start_as_current_span("GET /orgs/{org}/projects", kind=SpanKind.SERVER):
            await app(scope, receive, send)

    return traced


def flask_with_keys(jwks_uri: str) -> Flask:
    app = Flask(__name__)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_uri, clock=FakeClock(NOW))
    rs = FlaskServer(app, verifier=verifier, roles=ROLES, membership=membership)

    @app.get("/orgs/<org>/projects")
    @rs.require(SCOPES)
    def projects(org: str) -> dict[str, str]:
        return {"org": org}

    return app


def fastapi_with_keys(jwks_uri: str) -> FastAPI:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_uri, clock=FakeClock(NOW))
    rs = FastAPIServer(verifier=verifier, roles=ROLES, membership=membership)
    app = FastAPI()
    requirement = rs.require(SCOPES)

    @app.get("/orgs/{org}/projects")
    async def projects(org: str, access: Access = Depends(requirement)) -> dict[str, str]:  # noqa: B008
        return {"org": org}

    rs.install(app)
    return app


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_new_work_is_traced_under_the_request_span_and_the_authorization_server_joins(
    framework: str,
) -> None:
    es = es256("es-1")
    token = es.token(now=NOW)
    with HeaderServer(jwks(es)).running() as keys, recording() as recorded:
        # Kept until the end: the cache size is observed from the guards alive when collected.
        app: Any = flask_with_keys(keys.url) if framework == "flask" else fastapi_with_keys(keys.url)
        if framework == "flask":
            served = serve_wsgi(request_spans(app, recorded))
        else:
            served = serve_asgi(asgi_request_spans(app, recorded))
        with served as base, httpx.Client(timeout=10) as http:
            for _ in range(3):  # new, then warm twice
                answer = http.get(f"{base}/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200
        spans = recorded.spans()
        names = sorted(span.name for span in spans)
        assert names == sorted(
            ["resource_server.token.verify", "resource_server.jwks.fetch"]
            + [span.name for span in spans if span.kind == SpanKind.SERVER]
        )
        requests = [span for span in spans if span.kind == SpanKind.SERVER]
        assert len(requests) == 3  # the warm requests add nothing of ours
        (verify,) = [span for span in spans if span.name == "resource_server.token.verify"]
        (fetch,) = [span for span in spans if span.name == "resource_server.jwks.fetch"]
        first = min(requests, key=lambda span: span.start_time or 0)
        assert parent_of(verify) == ids(first)[1] and ids(verify)[0] == ids(first)[0]
        assert parent_of(fetch) == ids(verify)[1] and fetch.kind == SpanKind.CLIENT
        assert fetch.attributes is not None
        assert fetch.attributes["resource_server.issuer"] == ISSUER
        assert fetch.attributes["url.full"] == keys.url
        # The key set fetch carried the trace: the authorization server's span joins as a child.
        (sent,) = keys.headers
        assert trace_context(sent) == ids(fetch)
        assert recorded.points("resource_server.jwks.fetches") == {
            key({"resource_server.fetch.result": "success", "resource_server.issuer": ISSUER}): 1
        }
        # One point per issuer of every key set alive in the process (other tests' too, until
        # collected): this issuer's among them.
        assert key({"resource_server.issuer": ISSUER}) in recorded.metrics()["resource_server.jwks.age"]
        # The entries of every guard alive in the process: this one's token among them.
        ((size_attributes, size),) = recorded.points("resource_server.token_cache.size").items()
        assert size_attributes == key({}) and size >= 1
        del app


def test_the_age_of_the_key_set_in_use_is_reported_by_issuer() -> None:
    es, issuer = es256("es-1"), "https://age.test"
    clock = FakeClock(NOW)
    with HeaderServer(jwks(es)).running() as keys, recording() as recorded:
        verifier = JWTVerifier(issuer=issuer, audience=AUDIENCE, jwks_uri=keys.url, clock=clock)
        verifier.verify(es.token(now=NOW, iss=issuer))
        clock.advance(120)
        ages = recorded.metrics()["resource_server.jwks.age"]
        assert ages[key({"resource_server.issuer": issuer})] == 120
        del verifier


def test_discovery_and_introspection_carry_the_trace_context() -> None:
    es = es256("es-1")
    with HeaderServer({"error": "not here"}, status=404).running() as server:
        issuer = server.base
        server.routes.update(
            {
                "/.well-known/oauth-authorization-server": {"issuer": issuer, "jwks_uri": f"{issuer}/keys"},
                "/keys": jwks(es),
                "/introspect": {
                    "active": True,
                    "sub": "user-1",
                    "scope": "project:read",
                    "aud": AUDIENCE,
                    "iss": "https://opaque.test",
                },
            }
        )
        clock = FakeClock(NOW)
        discovering = JWTVerifier(issuer=issuer, audience=AUDIENCE, discover=True, clock=clock)
        introspecting = IntrospectionVerifier(
            endpoint=f"{issuer}/introspect",
            client_id="rs",
            client_secret="s" * 32,
            audience=AUDIENCE,
            issuer="https://opaque.test",
            clock=clock,
        )
        with recording() as recorded:
            tracer = recorded.tracer_provider.get_tracer("framework")
            with tracer.start_as_current_span("request"):
                assert discovering.verify(es.token(now=NOW, iss=issuer)).subject == "user-1"
                assert introspecting.verify("opaque-token-1").subject == "user-1"
            by_name = {span.name: span for span in recorded.spans()}
            assert set(by_name) == {
                "request",
                "resource_server.discovery.fetch",
                "resource_server.jwks.fetch",
                "resource_server.introspection",
            }
            sent = [trace_context(headers) for headers in server.headers]
            assert sent == [
                ids(by_name["resource_server.discovery.fetch"]),
                ids(by_name["resource_server.jwks.fetch"]),
                ids(by_name["resource_server.introspection"]),
            ]
            assert {trace for trace, _ in sent} == {ids(by_name["request"])[0]}
            assert recorded.points("resource_server.discovery.fetches") == {
                key({"resource_server.fetch.result": "success", "resource_server.issuer": issuer}): 1
            }
            assert recorded.points("resource_server.introspection.duration") == {
                key(
                    {
                        "resource_server.introspection.result": "active",
                        "resource_server.issuer": "https://opaque.test",
                    }
                ): 1
            }


def test_outside_a_trace_no_traceparent_is_invented() -> None:
    es = es256("es-1")
    with HeaderServer(jwks(es)).running() as keys:
        verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=keys.url, clock=FakeClock(NOW))
        with recording() as recorded:
            verifier.verify(es.token(now=NOW))
            (fetch,) = recorded.spans()
        # The fetch is a root span of its own: its context is what is sent.
        assert trace_context(keys.headers[0]) == ids(fetch)


# -- DPoP: the rows and the replay checks ----------------------------------------------------------


def test_dpop_rows_replays_and_the_wrong_key() -> None:
    es, key_a, key_b = es256("es-1"), dpop_key("ES256"), dpop_key("ES256")
    clock = FakeClock(NOW)
    with recording() as recorded:
        client = replay_app(es, clock, 1000)
        token = bound(es, key_a)
        assert fresh(client, token, key_a, clock).status_code == 200
        proof = key_a.proof("GET", URL, access_token=token, now=NOW)
        assert client.get("/orgs/acme/projects", headers=dpop_headers(token, proof)).status_code == 200
        replayed = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
        assert replayed.status_code == 401 and replayed.get_json()["error"] == "invalid_dpop_proof"
        wrong = client.get(
            "/orgs/acme/projects",
            headers=dpop_headers(token, key_b.proof("GET", URL, access_token=token, now=NOW)),
        )
        assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_token"

        route = {"http.route": "/orgs/<org>/projects"}
        issuer = {"resource_server.issuer": ISSUER}
        assert recorded.points("resource_server.refusals") == {
            key({"http.response.status_code": 401, "error.type": "invalid_dpop_proof", **issuer, **route}): 1,
            key({"http.response.status_code": 401, "error.type": "invalid_token", **issuer, **route}): 1,
        }
        assert recorded.points("resource_server.replay.checks") == {
            key({"resource_server.replay.kind": "dpop", "resource_server.replay.result": "fresh"}): 2,
            key({"resource_server.replay.kind": "dpop", "resource_server.replay.result": "replay"}): 1,
        }
        # A bound token is cached but its proof is new work each time: every request is timed.
        dpop = {"resource_server.authentication.scheme": "dpop", **issuer}
        assert recorded.points("resource_server.authentication.duration") == {
            key({**dpop, "resource_server.authentication.result": "success"}): 2,
            key(
                {
                    **dpop,
                    "resource_server.authentication.result": "failure",
                    "error.type": "invalid_dpop_proof",
                }
            ): 1,
            key(
                {**dpop, "resource_server.authentication.result": "failure", "error.type": "invalid_token"}
            ): 1,
        }
        (replay,) = recorded.events("dpop_proof_replayed")
        assert replay["details"] == {"jkt": key_a.jkt} and replay["source"] == "dpop"
        (mismatch,) = recorded.events("dpop_key_mismatch")
        assert (mismatch["status"], mismatch["subject"], mismatch["issuer"]) == (401, "user-1", ISSUER)
        assert [event["error"] for event in recorded.events("decision")] == [
            "invalid_dpop_proof",
            "invalid_token",
        ]


def test_a_nonce_demanded_is_a_use_dpop_nonce_refusal() -> None:
    es, key_a = es256("es-1"), dpop_key("ES256")
    clock = FakeClock(NOW)
    with recording() as recorded:
        client = flask_app(es, clock, nonces=DPoPNonces(b"n" * 32, ttl=60)).test_client()
        token = bound(es, key_a)
        first = client.get(
            "/orgs/acme/projects", headers=dpop_headers(token, key_a.proof("GET", URL, access_token=token))
        )
        assert first.status_code == 401
        assert recorded.points("resource_server.refusals") == {
            key(
                {
                    "http.response.status_code": 401,
                    "error.type": "use_dpop_nonce",
                    "resource_server.issuer": ISSUER,
                    "http.route": "/orgs/<org>/projects",
                }
            ): 1
        }
        (decision,) = recorded.events("decision")
        assert (decision["error"], decision["source"]) == ("use_dpop_nonce", "dpop")


# -- security events -------------------------------------------------------------------------------


def test_a_replayed_viewer_context_is_a_security_event() -> None:
    clock = FakeClock(NOW)
    verifier = viewer_verifier(clock)
    headers = mint(clock, path="/p")
    with recording() as recorded:
        assert verifier.verify(headers, method="GET", path="/p") is not None
        assert verifier.verify(headers, method="GET", path="/p") is None
        (replayed,) = recorded.events("viewer_context_replayed")
        assert (replayed["source"], replayed["method"]) == ("viewer", "GET")
        assert recorded.points("resource_server.replay.checks") == {
            key({"resource_server.replay.kind": "viewer_context", "resource_server.replay.result": result}): 1
            for result in ("fresh", "replay")
        }
        assert headers["X-Viewer-Context"] not in json.dumps(recorded.events())


def test_a_key_rotation_and_a_failed_fetch_are_security_events() -> None:
    old, new = es256("old-1"), es256("new-1")
    clock = FakeClock(NOW)
    with HeaderServer(jwks(old)).running() as keys, recording() as recorded:
        verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=keys.url, clock=clock)
        verifier.verify(old.token(now=NOW))
        keys.document = jwks(new)
        clock.advance(60)  # past the refetch interval: an unknown kid refetches the set
        verifier.verify(new.token(now=NOW + 60))
        (rotated,) = recorded.events("jwks_rotated")
        assert rotated["details"] == {"uri": keys.url, "added": ["new-1"], "removed": ["old-1"]}
        assert rotated["issuer"] == ISSUER
        assert recorded.points("resource_server.jwks.rotations") == {
            key({"resource_server.issuer": ISSUER}): 1
        }
        keys.status = 503
        clock.advance(3600)  # the set is stale: refetched, and the fetch fails
        verifier.verify(new.token(now=NOW + 3660))  # the cached keys still serve
        (failed,) = recorded.events("jwks_fetch_failed")
        assert failed["details"]["uri"] == keys.url
        assert recorded.points("resource_server.jwks.fetches") == {
            key({"resource_server.fetch.result": "success", "resource_server.issuer": ISSUER}): 2,
            key({"resource_server.fetch.result": "failure", "resource_server.issuer": ISSUER}): 1,
        }


def test_a_failing_introspection_endpoint_is_a_security_event_and_a_503() -> None:
    with HeaderServer({"error": "server_error"}, status=500).running() as server, recording() as recorded:
        verifier = IntrospectionVerifier(
            endpoint=f"{server.base}/introspect",
            client_id="rs",
            client_secret="s" * 32,
            audience=AUDIENCE,
            issuer="https://opaque.test",
            clock=FakeClock(NOW),
        )
        client = Client(
            BearerMiddleware(
                lambda environ, start_response: [],
                verifier=verifier,
                roles=ROLES,
                membership=membership,
                routes={"/orgs/<org>/projects": SCOPES},
            )
        )
        answer = client.get("/orgs/acme/projects", headers={"Authorization": "Bearer opaque-token-1"})
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        (failed,) = recorded.events("introspection_failed")
        assert failed["details"]["uri"] == f"{server.base}/introspect"
        (decision,) = recorded.events("decision")
        assert (decision["status"], decision["cause"]) == (503, "introspection")
        assert recorded.points("resource_server.introspection.duration") == {
            key(
                {
                    "resource_server.introspection.result": "error",
                    "resource_server.issuer": "https://opaque.test",
                }
            ): 1
        }
        assert recorded.points("resource_server.refusals") == {
            key(
                {
                    "http.response.status_code": 503,
                    "error.type": "temporarily_unavailable",
                    "resource_server.unavailable.cause": "introspection",
                    "resource_server.issuer": "https://opaque.test",
                    "http.route": "/orgs/<org>/projects",
                }
            ): 1
        }
        spans = {span.name: span for span in recorded.spans()}
        assert set(spans) == {"resource_server.token.verify", "resource_server.introspection"}
        call = spans["resource_server.introspection"]
        assert call.status.status_code.name == "ERROR" and call.kind == SpanKind.CLIENT
        assert call.attributes is not None and call.attributes["error.type"] == "temporarily_unavailable"
        assert parent_of(call) == ids(spans["resource_server.token.verify"])[1]


def test_a_misconfiguration_refused_at_start_up_is_a_security_event() -> None:
    es = es256("es-1")
    with recording() as recorded:
        with pytest.raises(ValueError) as refused:
            BearerMiddleware(
                lambda environ, start_response: [],
                verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW)),
                roles=ROLES,
                membership=membership,
                routes={"/orgs/<org>/projects": {"GET": "project:nothing"}},
            )
        (event,) = recorded.events("misconfiguration_refused")
        assert event["details"]["reason"] == str(refused.value)
        assert recorded.capture.records[-1].levelno == logging.ERROR


# -- cardinality -----------------------------------------------------------------------------------

#: Every attribute a metric may carry (docs/observability.md lists their values).
BOUNDED = {
    "resource_server.authentication.scheme",
    "resource_server.authentication.result",
    "resource_server.authorization.result",
    "resource_server.issuer",
    "resource_server.unavailable.cause",
    "resource_server.fetch.result",
    "resource_server.introspection.result",
    "resource_server.replay.kind",
    "resource_server.replay.result",
    "error.type",
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "otel.metric.overflow",
}


def test_metric_attributes_are_bounded_whatever_the_tokens_carry() -> None:
    """200 requests, each from another subject, org, client and jti, by made-up methods and to
    another path, with tokens of an issuer nobody configured: the series stay the same few, and
    no value from a token or a URL is in them."""
    es, stranger = es256("es-1"), es256("x-1")
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return []

    client = Client(
        BearerMiddleware(
            app,
            verifier=TrustedIssuers(
                [JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW))]
            ),
            roles=ROLES,
            membership=lambda subject, org: "admin",
            routes={"/orgs/<org>/projects/<project>": SCOPES},
        )
    )
    with recording() as recorded:
        for n in range(200):
            values = [f"user-{n}", f"org-{n}", f"client-{n}", f"jti-{n}", f"p{n}"]
            seen += values
            signer = es if n % 2 else stranger
            token = signer.token(
                sub=values[0],
                org_id=values[1],
                client_id=values[2],
                jti=values[3],
                iss=ISSUER if n % 2 else f"https://as-{n}.test",
            )
            client.open(
                f"/orgs/{values[1]}/projects/{values[4]}",
                method=("GET", "POST", f"M{n}")[n % 3],
                headers={"Authorization": f"Bearer {token}"},
            )
        points = {
            name: points for name, points in recorded.metrics().items() if name != "resource_server.jwks.age"
        }
    series = [attributes for found in points.values() for attributes in found]
    assert {name for attributes in series for name, _ in attributes} <= BOUNDED
    values = {str(value) for attributes in series for _, value in attributes}
    assert not values & set(seen)
    assert not any(value.startswith("https://as-") for value in values)
    assert {
        value for attributes in series for name, value in attributes if name == "http.request.method"
    } <= {
        "GET",
        "POST",
        "_OTHER",
    }
    assert len(series) < 20


# -- the audit hook --------------------------------------------------------------------------------


def refusing_client() -> Client:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return []

    es = es256("es-1")
    return Client(
        BearerMiddleware(
            app,
            verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW)),
            roles=ROLES,
            membership=membership,
            routes={"/orgs/<org>/projects": SCOPES},
        )
    )


def test_a_hook_that_never_returns_neither_blocks_nor_fails_a_request() -> None:
    """The hook blocks on an event until the test sets it: every request is answered meanwhile
    (a request only appends to the queue), the queue holds ``audit_queue`` events, the rest are
    dropped and counted; once released the hook gets the queued ones. No time is measured: the
    requests would never return if one waited on the hook."""
    release = threading.Event()
    delivered: list[Mapping[str, Any]] = []
    started = threading.Event()

    def hook(event: Mapping[str, Any]) -> None:
        started.set()
        release.wait()
        delivered.append(event)

    client = refusing_client()
    with recording(audit_hook=hook, audit_queue=3) as recorded:
        assert client.get("/orgs/acme/projects").status_code == 401
        assert started.wait(10)  # the worker holds the first event; three more fit in the queue
        statuses = [client.get("/orgs/acme/projects").status_code for _ in range(10)]
        assert statuses == [401] * 10
        assert recorded.points("resource_server.audit.dropped") == {key({}): 7}
        release.set()
        assert telemetry.flush(10)
        assert len(delivered) == 4
        assert len(recorded.events("decision")) == 11  # the logger got every one


def test_a_failing_hook_is_counted_never_the_requests_failure(caplog: pytest.LogCaptureFixture) -> None:
    def hook(event: Mapping[str, Any]) -> None:
        raise RuntimeError(f"the SIEM is down: {event['token_id']}")

    client = refusing_client()
    with recording(audit_hook=hook) as recorded, caplog.at_level(logging.ERROR, logger="resource_server"):
        assert [client.get("/orgs/acme/projects").status_code for _ in range(5)] == [401] * 5
        assert telemetry.flush(10)
        assert recorded.points("resource_server.audit.hook_errors") == {key({}): 5}
    # Logged once (a minute), naming the exception's class only: its message is the app's.
    lines = [r.getMessage() for r in caplog.records if r.name == "resource_server"]
    assert lines == ["the audit hook raised RuntimeError; events it fails on are counted, not retried"]


def test_allowed_requests_are_sampled_when_asked() -> None:
    es = es256("es-1")
    guard = Guard(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW)),
        roles=ROLES,
        membership=membership,
    )
    scope_map = ScopeMap(SCOPES)
    token = es.token(now=NOW)
    with recording(hook=True, audit_allowed=0.25) as recorded:
        for _ in range(8):
            guard.authorize(
                authorization=f"Bearer {token}",
                token_elsewhere=False,
                method="GET",
                org="acme",
                scope_map=scope_map,
            )
        assert telemetry.flush(10)
        allowed = recorded.events("decision")
        assert [event["outcome"] for event in allowed] == ["allowed", "allowed"]
        assert allowed[0]["status"] is None and allowed[0]["scopes"] == ["project:read"]
        assert recorded.hooked == allowed
    with pytest.raises(ValueError, match="audit_allowed"):
        telemetry.configure(audit_allowed=2)


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    telemetry.configure()


# -- the in-process tallies behind the counters ----------------------------------------------------


def test_a_tally_counts_exactly_across_threads_and_folds_what_exceeds_its_series() -> None:
    from resource_server.telemetry.metrics import MAX_SERIES, Tally

    tally = Tally("kind")

    def count() -> None:
        for _ in range(20_000):
            tally.add(("a",))

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.snapshot() == [(80_000, {"kind": "a"})]  # reading does not advance it
    assert tally.snapshot() == [(80_000, {"kind": "a"})]
    for n in range(MAX_SERIES + 10):
        tally.add((f"k{n}",))
    found = dict((frozenset(attributes.items()), value) for value, attributes in tally.snapshot())
    assert len(found) == MAX_SERIES + 1
    assert found[frozenset({("otel.metric.overflow", True)})] == 11
