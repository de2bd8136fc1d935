"""DPoP through the Flask extension and the WSGI middleware (RFC 9449 §7, §9, §12.2): real keys,
real apps, every challenge parsed back with ``policy.parse_challenges``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask, jsonify
from werkzeug.test import Client

from policy import Challenge, Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.dpop import DPoPNonces, DPoPVerifier
from resource_server.flask import ResourceServer, current_access
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, ProofSigner, Signer, dpop_key, jwks

RESOURCE = "https://api.test"
URL = f"{RESOURCE}/orgs/acme/projects"
ROLES = Roles({"admin": ["project:read", "project:write"], "member": ["project:read"]})
ALGS = "ES256 EdDSA PS256 RS256"


def membership(subject: str, org: str | None) -> str | None:
    return {"user-1": "admin", "user-2": "member"}.get(subject) if org == "acme" else None


@pytest.fixture(scope="module")
def key() -> ProofSigner:
    return dpop_key("ES256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def bound(es: Signer, key: ProofSigner, **claims: Any) -> str:
    return es.token(cnf={"jkt": key.jkt}, **claims)


def flask_app(es: Signer, clock: FakeClock, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = RESOURCE
    nonces = options.pop("nonces", None)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=membership,
        dpop=DPoPVerifier(clock=clock, nonces=nonces),
        **options,
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": "project:write"})
    def projects(org: str) -> Any:
        return jsonify(subject=current_access.subject, org=org)

    return app


def challenges(response: Any) -> dict[str, Challenge]:
    found = parse_challenges(response.headers.getlist("WWW-Authenticate"))
    return {c.scheme: c for c in found}


def dpop_headers(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def test_a_bound_token_with_its_proof_is_accepted(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    client = flask_app(es, clock).test_client()
    token = bound(es, key)
    for _ in range(3):  # the warm path checks a new proof every time
        response = client.get(
            "/orgs/acme/projects", headers=dpop_headers(token, key.proof("GET", URL, access_token=token))
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json() == {"subject": "user-1", "org": "acme"}


def test_each_refusal_has_its_status_and_challenge(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    client = flask_app(es, clock).test_client()
    token = bound(es, key)
    proof = key.proof("GET", URL, access_token=token)
    assert client.get("/orgs/acme/projects", headers=dpop_headers(token, proof)).status_code == 200

    def refused(headers: dict[str, str], error: str, path: str = "/orgs/acme/projects") -> Challenge:
        response = client.get(path, headers=headers)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.get_json()["error"] == error
        found = challenges(response)
        scheme = "DPoP" if "DPoP" in found else "Bearer"
        assert found[scheme].params.get("error") == error
        assert token not in response.get_data(as_text=True)
        return found[scheme]

    dpop = refused(dpop_headers(token, proof), "invalid_dpop_proof")  # the same proof again
    assert dpop.params["algs"] == ALGS
    refused({"Authorization": f"DPoP {token}"}, "invalid_dpop_proof")  # no DPoP header
    two = f"{key.proof('GET', URL, access_token=token)}, {key.proof('GET', URL, access_token=token)}"
    folded = refused(dpop_headers(token, two), "invalid_dpop_proof")  # two DPoP headers, folded
    assert "exactly one DPoP header" in folded.params["error_description"]
    refused(dpop_headers(token, key.proof("POST", URL, access_token=token)), "invalid_dpop_proof")
    refused(
        dpop_headers(token, key.proof("GET", "https://api.test/orgs/globex/projects", access_token=token)),
        "invalid_dpop_proof",
    )
    other = dpop_key("ES256")
    assert (
        refused(dpop_headers(token, other.proof("GET", URL, access_token=token)), "invalid_token").scheme
        == "DPoP"
    )
    # A bound token is not a bearer token (no downgrade), with or without a proof.
    assert refused({"Authorization": f"Bearer {token}"}, "invalid_token").scheme == "Bearer"
    # An unbound token under the DPoP scheme.
    plain = es.token()
    refused(dpop_headers(plain, key.proof("GET", URL, access_token=plain)), "invalid_token")


def test_without_credentials_both_challenges_are_offered(es: Signer, clock: FakeClock) -> None:
    response = flask_app(es, clock).test_client().get("/orgs/acme/projects")
    assert response.status_code == 401
    found = challenges(response)
    assert set(found) == {"Bearer", "DPoP"}
    assert found["DPoP"].params["algs"] == ALGS and "error" not in found["DPoP"].params


def test_dpop_required_refuses_bearer_tokens(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    client = flask_app(es, clock, dpop_required=True).test_client()
    response = client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {es.token()}"})
    assert response.status_code == 401
    assert set(challenges(response)) == {"DPoP"}
    assert challenges(response)["DPoP"].params["error"] == "invalid_token"
    assert set(challenges(client.get("/orgs/acme/projects"))) == {"DPoP"}
    token = bound(es, key)
    ok = client.get(
        "/orgs/acme/projects", headers=dpop_headers(token, key.proof("GET", URL, access_token=token))
    )
    assert ok.status_code == 200
    metadata = client.get("/.well-known/oauth-protected-resource").get_json()
    assert metadata["dpop_signing_alg_values_supported"] == ALGS.split()
    assert metadata["dpop_bound_access_tokens_required"] is True


def test_an_under_scoped_dpop_request_gets_a_dpop_step_up_challenge(
    es: Signer, key: ProofSigner, clock: FakeClock
) -> None:
    client = flask_app(es, clock).test_client()
    token = bound(es, key, scope="project:read")
    response = client.post(
        "/orgs/acme/projects", headers=dpop_headers(token, key.proof("POST", URL, access_token=token))
    )
    assert response.status_code == 403
    dpop = challenges(response)["DPoP"]
    assert dpop.params["error"] == "insufficient_scope" and dpop.params["scope"] == "project:write"
    assert dpop.params["algs"] == ALGS
    assert dpop.params["resource_metadata"] == f"{RESOURCE}/.well-known/oauth-protected-resource"


def test_nonces_are_demanded_then_refreshed(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    nonces = DPoPNonces(b"n" * 32, ttl=60)
    client = flask_app(es, clock, nonces=nonces).test_client()
    token = bound(es, key)
    first = client.get(
        "/orgs/acme/projects", headers=dpop_headers(token, key.proof("GET", URL, access_token=token))
    )
    assert first.status_code == 401 and first.get_json()["error"] == "use_dpop_nonce"
    assert challenges(first)["DPoP"].params["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    proof = key.proof("GET", URL, access_token=token, nonce=nonce)
    ok = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
    assert ok.status_code == 200 and "DPoP-Nonce" not in ok.headers
    clock.advance(60)  # the window turns: the old nonce still works and a fresh one comes back
    proof = key.proof("GET", URL, access_token=token, nonce=nonce, now=int(clock()))
    later = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
    assert later.status_code == 200 and later.headers["DPoP-Nonce"] == nonces.current(clock())


def test_the_request_url_is_used_without_a_configured_resource(
    es: Signer, key: ProofSigner, clock: FakeClock
) -> None:
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=membership,
        dpop=DPoPVerifier(clock=clock),
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return "ok"

    client = app.test_client()
    token = bound(es, key)
    own = key.proof("GET", "http://localhost/orgs/acme/projects", access_token=token)
    assert client.get("/orgs/acme/projects", headers=dpop_headers(token, own)).status_code == 200
    claimed = key.proof("GET", URL, access_token=token)  # the configured resource is not set here
    assert client.get("/orgs/acme/projects", headers=dpop_headers(token, claimed)).status_code == 401


def test_without_a_dpop_verifier_the_dpop_scheme_is_no_credentials(
    es: Signer, key: ProofSigner, clock: FakeClock
) -> None:
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=membership,
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return "ok"

    token = bound(es, key)
    response = app.test_client().get(
        "/orgs/acme/projects", headers=dpop_headers(token, key.proof(access_token=token))
    )
    assert response.status_code == 401 and set(challenges(response)) == {"Bearer"}
    assert "error" not in challenges(response)["Bearer"].params


# -- the WSGI middleware ---------------------------------------------------------------------------


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def middleware(es: Signer, clock: FakeClock, **options: Any) -> Client:
    nonces = options.pop("nonces", None)
    wrapped = BearerMiddleware(
        plain,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=membership,
        routes={"/orgs/<org>/projects": {"GET": "project:read", "POST": "project:write"}},
        dpop=DPoPVerifier(clock=clock, nonces=nonces),
        resource=RESOURCE,
        **options,
    )
    return Client(wrapped)


def test_the_middleware_checks_proofs_the_same_way(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    client = middleware(es, clock)
    token = bound(es, key)
    proof = key.proof("GET", URL, access_token=token)
    assert client.get("/orgs/acme/projects", headers=dpop_headers(token, proof)).status_code == 200
    replayed = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
    assert (
        replayed.status_code == 401 and challenges(replayed)["DPoP"].params["error"] == "invalid_dpop_proof"
    )
    assert client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert set(challenges(client.get("/orgs/acme/projects"))) == {"Bearer", "DPoP"}


def test_the_middleware_sends_fresh_nonces(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    nonces = DPoPNonces(b"m" * 32, ttl=60)
    client = middleware(es, clock, nonces=nonces)
    token = bound(es, key)
    first = client.get(
        "/orgs/acme/projects", headers=dpop_headers(token, key.proof("GET", URL, access_token=token))
    )
    assert first.status_code == 401 and first.headers["DPoP-Nonce"] == nonces.current(clock())
    nonce = first.headers["DPoP-Nonce"]
    clock.advance(60)
    proof = key.proof("GET", URL, access_token=token, nonce=nonce, now=int(clock()))
    later = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
    assert later.status_code == 200 and later.headers["DPoP-Nonce"] == nonces.current(clock())


def test_dpop_required_without_a_verifier_fails_at_start_up(es: Signer, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="dpop"):
        BearerMiddleware(
            plain,
            verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
            roles=ROLES,
            membership=membership,
            routes={"/orgs/<org>/projects": {"GET": "project:read"}},
            dpop_required=True,
        )


# -- an introspected token binds the same way (RFC 9449 §6.2) ---------------------------------------


def test_an_introspected_token_is_bound_by_its_cnf(key: ProofSigner, clock: FakeClock) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from resource_server import IntrospectionVerifier

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(
                {
                    "active": True,
                    "sub": "user-1",
                    "aud": AUDIENCE,
                    "scope": "project:read",
                    "org_id": "acme",
                    "token_type": "DPoP",
                    "exp": NOW + 300,
                    "cnf": {"jkt": key.jkt},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        app = Flask(__name__)
        app.config["RESOURCE_SERVER_RESOURCE"] = RESOURCE
        rs = ResourceServer(
            app,
            verifier=IntrospectionVerifier(
                endpoint=f"http://127.0.0.1:{server.server_port}/introspect",
                client_id="api",
                client_secret="s" * 32,
                audience=AUDIENCE,
                clock=clock,
            ),
            roles=ROLES,
            membership=membership,
            dpop=DPoPVerifier(clock=clock),
        )

        @app.get("/orgs/<org>/projects")
        @rs.require({"GET": "project:read"})
        def projects(org: str) -> str:
            return "ok"

        client = app.test_client()
        token = "opaque-bound-token"
        ok = client.get(
            "/orgs/acme/projects", headers=dpop_headers(token, key.proof("GET", URL, access_token=token))
        )
        assert ok.status_code == 200
        other = dpop_key("ES256").proof("GET", URL, access_token=token)
        assert client.get("/orgs/acme/projects", headers=dpop_headers(token, other)).status_code == 401
        as_bearer = client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"})
        assert as_bearer.status_code == 401 and as_bearer.get_json()["error"] == "invalid_token"
    finally:
        server.shutdown()
        server.server_close()


def replay_app(es: Signer, clock: FakeClock, cache_size: int, **options: Any) -> Any:
    """The Flask extension with a DPoP verifier over a memory replay cache of ``cache_size``."""
    from resource_server.state import MemoryReplayCache

    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = RESOURCE
    cache = MemoryReplayCache(max_entries=cache_size, clock=clock)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=membership,
        dpop=DPoPVerifier(clock=clock, replay_cache=cache, **options),
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return "ok"

    return app.test_client()


def fresh(client: Any, token: str, key: ProofSigner, clock: FakeClock) -> Any:
    """One request with a fresh proof (a new jti) by ``key``."""
    proof = key.proof("GET", URL, access_token=token, now=int(clock()))
    return client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))


def test_a_full_replay_cache_is_503_not_a_replay(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    """A proof the cache has no room to remember cannot be checked for replay: 503 with
    Retry-After (until the oldest entry expires), never 401 "used before", never accepted."""
    client = replay_app(es, clock, 1, max_proofs_per_key=5)
    token = bound(es, key)
    assert fresh(client, token, key, clock).status_code == 200
    second = fresh(client, token, key, clock)
    assert second.status_code == 503 and second.get_json()["error"] == "temporarily_unavailable"
    assert second.headers["Retry-After"] == "65"  # the first proof's iat + max_age + leeway
    clock.advance(65)
    assert fresh(client, token, key, clock).status_code == 200


def test_one_key_flooding_cannot_lock_another_out(es: Signer, key: ProofSigner, clock: FakeClock) -> None:
    """Issue 19 §6, scaled down: one client with one valid bound token sends fresh proofs until
    the cache would be full. It holds a tenth of the cache, and is refused (503) past that;
    every other client's proofs are still accepted, none called a replay, none forgotten."""
    client = replay_app(es, clock, 1000)
    token = bound(es, key)
    flood = Counter(fresh(client, token, key, clock).status_code for _ in range(1001))
    assert flood == {200: 100, 503: 901}  # its share: a tenth of the 1,000 entries
    others = [(k, bound(es, k)) for k in (dpop_key("ES256") for _ in range(3))]
    for other, other_token in others:
        answers = [fresh(client, other_token, other, clock) for _ in range(100)]
        assert [a.status_code for a in answers] == [200] * 100, "another key's proofs are all accepted"
    refused = fresh(client, token, key, clock)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "65"
    clock.advance(30)
    other = dpop_key("ES256")
    other_token = bound(es, other)
    live = other.proof("GET", URL, access_token=other_token, now=int(clock()))
    assert client.get("/orgs/acme/projects", headers=dpop_headers(other_token, live)).status_code == 200
    clock.advance(35)  # the flood's proofs expire: the key has its share again
    assert fresh(client, token, key, clock).status_code == 200
    # The live proof was not forgotten to make room: its replay is still refused.
    again = client.get("/orgs/acme/projects", headers=dpop_headers(other_token, live))
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_dpop_proof"


def test_proofs_by_keys_the_token_is_not_bound_to_are_never_recorded(
    es: Signer, key: ProofSigner, clock: FakeClock
) -> None:
    """One token cannot fill the cache either: a proof by another key is refused (invalid_token)
    before its jti is recorded, so a thousand keys take no room."""
    client = replay_app(es, clock, 10)
    token = bound(es, key)
    strangers = [dpop_key("ES256") for _ in range(20)]
    for stranger in strangers:
        response = fresh(client, token, stranger, clock)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert fresh(client, token, key, clock).status_code == 200


def test_capabilities_and_dpop_required_contradict_each_other(es: Signer, clock: FakeClock) -> None:
    """Capability tokens are bearer tokens: a guard that must refuse bearer tokens and accept
    them is refused at construction, naming both options, in every adapter that takes both."""
    from resource_server import fastapi as rs_fastapi
    from resource_server.capability import CapabilityIssuer
    from resource_server.guard import Guard

    capabilities = CapabilityIssuer(keys={"c1": "c" * 32}, issuer=RESOURCE, readonly_scopes=[]).verifier()
    options: dict[str, Any] = {
        "verifier": JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        "roles": ROLES,
        "membership": membership,
        "capabilities": capabilities,
        "dpop": DPoPVerifier(clock=clock),
        "dpop_required": True,
    }
    for build in (
        lambda: Guard(**options),
        lambda: ResourceServer(Flask(__name__), **options),
        lambda: rs_fastapi.ResourceServer(**options),
    ):
        with pytest.raises(ValueError, match="capabilities") as refused:
            build()
        assert "dpop_required" in str(refused.value)
    # Either one alone is fine.
    ResourceServer(Flask(__name__), **{**options, "dpop_required": False})
    ResourceServer(Flask(__name__), **{**options, "capabilities": None})


# -- a confirmation this server cannot check is refused, never read as "bearer" (RFC 7800 §3.1) ----

UNCHECKABLE = {
    "x5t#S256": ({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "x5t#S256"),
    "jwk": ({"jwk": {"kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ"}}, "cnf jwk"),
    "jkt empty": ({"jkt": ""}, "cnf.jkt"),
    "jkt 123": ({"jkt": 123}, "cnf.jkt"),
    "jkt a list": ({"jkt": ["NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"]}, "cnf.jkt"),
    "cnf a string": ("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "cnf claim"),
}


@pytest.mark.parametrize("adapter", ["flask", "wsgi"])
@pytest.mark.parametrize("case", list(UNCHECKABLE))
def test_a_token_with_a_cnf_this_server_cannot_enforce_is_401_as_bearer_and_as_dpop(
    case: str, adapter: str, es: Signer, key: ProofSigner, clock: FakeClock
) -> None:
    cnf, fragment = UNCHECKABLE[case]
    client = flask_app(es, clock).test_client() if adapter == "flask" else middleware(es, clock)
    token = es.token(cnf=cnf)
    as_bearer = client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.get_json()["error"] == "invalid_token"
    assert fragment in as_bearer.get_json()["error_description"]
    assert fragment in challenges(as_bearer)["Bearer"].params["error_description"]
    proof = key.proof("GET", URL, access_token=token)
    as_dpop = client.get("/orgs/acme/projects", headers=dpop_headers(token, proof))
    assert as_dpop.status_code == 401 and as_dpop.get_json()["error"] == "invalid_token"
    assert token not in as_bearer.get_data(as_text=True) + as_dpop.get_data(as_text=True)


def test_a_capability_token_is_not_affected_by_the_cnf_reading(clock: FakeClock) -> None:
    """Capability tokens (minted here, bearer by design) carry no cnf and stay bearer tokens."""
    from policy import assemble_access
    from resource_server.capability import CapabilityIssuer

    issuer = CapabilityIssuer(
        keys={"k1": "c" * 32}, issuer=RESOURCE, readonly_scopes={"project:read"}, clock=clock
    )
    access = assemble_access(
        subject="user-1", role_scopes=ROLES.scopes_for("admin"), token_scopes=None, request_org="acme"
    )
    verified = issuer.verifier().verify(issuer.mint(access, session_id="s-1"))
    assert verified.kind == "capability" and verified.jkt is None and "cnf" not in verified.claims


def test_an_introspected_bearer_token_with_cnf_jkt_is_bound(key: ProofSigner, clock: FakeClock) -> None:
    """cnf is a condition of use: an answer saying token_type "Bearer" but carrying cnf.jkt is a
    DPoP-bound token, usable only with a proof by that key (RFC 7800 §3.1, RFC 9449 §6.2)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from resource_server import IntrospectionVerifier

    answer = {
        "active": True,
        "sub": "user-1",
        "aud": AUDIENCE,
        "scope": "project:read",
        "org_id": "acme",
        "token_type": "Bearer",
        "exp": NOW + 300,
        "cnf": {"jkt": key.jkt},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        app = Flask(__name__)
        app.config["RESOURCE_SERVER_RESOURCE"] = RESOURCE
        rs = ResourceServer(
            app,
            verifier=IntrospectionVerifier(
                endpoint=f"http://127.0.0.1:{server.server_port}/introspect",
                client_id="api",
                client_secret="s" * 32,
                audience=AUDIENCE,
                clock=clock,
            ),
            roles=ROLES,
            membership=membership,
            dpop=DPoPVerifier(clock=clock),
        )

        @app.get("/orgs/<org>/projects")
        @rs.require({"GET": "project:read"})
        def projects(org: str) -> str:
            return "ok"

        client = app.test_client()
        token = "opaque-bearer-typed-but-bound"
        as_bearer = client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"})
        assert as_bearer.status_code == 401 and "DPoP-bound" in as_bearer.get_json()["error_description"]
        proof = key.proof("GET", URL, access_token=token)
        assert client.get("/orgs/acme/projects", headers=dpop_headers(token, proof)).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
