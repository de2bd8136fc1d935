"""The guard's cache of verified credentials, seen from outside through real Flask and WSGI apps:
it answers only for the exact header a token was verified in, never after the token's exp, and
never in place of what must be asked every request (the member's role, the URL's org, a second
token elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from resource_server.guard import Guard
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

SIGNER = es256("cache-1")
ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})


class Members:
    """The application's membership data, which changes while tokens stay cached."""

    def __init__(self) -> None:
        self.roles = {("user-1", "acme"): "admin", ("user-1", "globex"): "member"}
        self.asked = 0

    def __call__(self, subject: str, org: str | None) -> str | None:
        self.asked += 1
        return self.roles.get((subject, org))


def app_with(clock: FakeClock, members: Members, **options: Any) -> tuple[Flask, ResourceServer]:
    app = Flask(__name__)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock)
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=members, **options)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": "project:write"})
    def projects(org: str) -> dict[str, str]:
        return {"org": org}

    return app, rs


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def members() -> Members:
    return Members()


def guard_of(app: Flask) -> Guard:
    return app.extensions["resource_server"].guard


def test_a_cached_token_is_refused_from_its_exp_on(clock: FakeClock, members: Members) -> None:
    app, _ = app_with(clock, members)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {SIGNER.token(now=NOW, exp=NOW + 60)}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    clock.advance(59)
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200  # from the cache
    clock.advance(1)  # at exp: the verifier's leeway would still accept it; the cache never does
    assert len(guard_of(app)._credentials) == 1
    clock.advance(30)  # past exp + leeway: the verifier refuses it too
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 401
    assert len(guard_of(app)._credentials) == 0  # and its text is gone from memory


def test_a_role_change_applies_to_the_very_next_request(clock: FakeClock, members: Members) -> None:
    app, _ = app_with(clock, members)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {SIGNER.token(now=NOW, scope='project:read project:write')}"}
    assert client.post("/orgs/acme/projects", headers=headers).status_code == 200
    asked = members.asked
    members.roles[("user-1", "acme")] = "member"  # demoted; the token is unchanged and cached
    assert client.post("/orgs/acme/projects", headers=headers).status_code == 403
    del members.roles[("user-1", "acme")]  # removed from the org
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 403
    assert members.asked == asked + 2  # membership is asked on every request, cached or not


def test_org_binding_holds_for_a_cached_token(clock: FakeClock, members: Members) -> None:
    app, _ = app_with(clock, members)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {SIGNER.token(now=NOW, org_id='acme')}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    assert client.get("/orgs/globex/projects", headers=headers).status_code == 401
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ("Bearer\t{token}", 400),  # a tab: not RFC 6750 §2.1 credentials (1*SP)
        ("Bearer {token},Bearer {token}", 400),  # two values folded into one
        ("Basic {token}", 401),  # another scheme: no bearer credentials at all
        ("bearer {token}", 200),  # the scheme is case-insensitive: valid, verified on its own
        ("Bearer {token} ", 200),  # surrounding whitespace is not part of the value
    ],
)
def test_another_header_form_of_a_cached_token_is_judged_on_its_own(
    clock: FakeClock, members: Members, form: str, status: int
) -> None:
    """The cache is keyed on the exact Authorization value: a token verified as "Bearer x"
    answers for nothing else, so a malformed or different form of it gets its own answer."""
    app, _ = app_with(clock, members)
    client = app.test_client()
    raw = SIGNER.token(now=NOW)
    assert client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    response = client.get("/orgs/acme/projects", headers={"Authorization": form.format(token=raw)})
    assert response.status_code == status


def test_a_second_token_elsewhere_is_refused_even_when_the_header_is_cached(
    clock: FakeClock, members: Members
) -> None:
    app, _ = app_with(clock, members)
    client = app.test_client()
    raw = SIGNER.token(now=NOW)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    assert client.get(f"/orgs/acme/projects?access_token={raw}", headers=headers).status_code == 400
    form = client.post("/orgs/acme/projects", headers=headers, data={"access_token": raw})
    assert form.status_code == 400


def test_the_cache_is_bounded(clock: FakeClock, members: Members) -> None:
    app, _ = app_with(clock, members, cache_size=8)
    client = app.test_client()
    for number in range(20):
        token = SIGNER.token(now=NOW, jti=f"bounded-{number}")
        assert (
            client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    assert len(guard_of(app)._credentials) == 8


def test_capability_tokens_are_not_kept_in_the_guard_cache(clock: FakeClock, members: Members) -> None:
    from policy import assemble_access
    from resource_server.capability import CapabilityIssuer

    issuer = CapabilityIssuer(
        keys={"k1": "k" * 32}, issuer="https://api.test", readonly_scopes=["project:read"], clock=clock
    )
    app, _ = app_with(clock, members, capabilities=issuer.verifier())
    access = assemble_access(
        subject="user-1", role_scopes={"project:read"}, token_scopes=None, request_org="acme"
    )
    capability = issuer.mint_capability(access, session_id="s-1")
    client = app.test_client()
    assert (
        client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {capability.token}"}).status_code
        == 200
    )
    assert len(guard_of(app)._credentials) == 0


def test_the_middleware_shares_the_cache_rules(clock: FakeClock, members: Members) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = BearerMiddleware(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock),
        roles=ROLES,
        membership=members,
        routes={"/orgs/<org>/projects": {"GET": "project:read"}},
    )
    client = Client(wrapped)
    headers = {"Authorization": f"Bearer {SIGNER.token(now=NOW, exp=NOW + 60)}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    members.roles.clear()
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 403
    members.roles[("user-1", "acme")] = "admin"
    clock.advance(120)
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 401


def test_the_middleware_route_answers_stay_bounded(clock: FakeClock, members: Members) -> None:
    wrapped = BearerMiddleware(
        lambda environ, start_response: [],
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock),
        roles=ROLES,
        membership=members,
        routes={"/orgs/<org>/projects": {"GET": "project:read"}},
    )
    client = Client(wrapped)
    for number in range(5000):
        client.get(f"/orgs/org-{number}/projects")
    assert len(wrapped._matches) <= 4096
    assert client.get("/orgs/org-1/projects").status_code == 401  # still matched, still protected
    assert client.get("/nowhere").status_code == 403


def test_at_exp_the_cache_does_not_answer(clock: FakeClock, members: Members) -> None:
    """With no leeway the verifier refuses a token at its exp, so a cache that answered a moment
    longer would show as a 200 here."""
    app = Flask(__name__)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock, leeway=0)
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=members)

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return org

    client = app.test_client()
    headers = {"Authorization": f"Bearer {SIGNER.token(now=NOW, exp=NOW + 60)}"}
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    clock.advance(59.999)
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 200
    clock.advance(0.001)
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 401


def test_a_role_that_is_not_a_name_is_no_role_not_a_500(clock: FakeClock) -> None:
    """membership() returning a list (an app bug) is refused as no role, as before the cache."""
    app, _ = app_with(clock, lambda subject, org: ["member"])  # type: ignore[arg-type,return-value]
    response = app.test_client().get(
        "/orgs/acme/projects", headers={"Authorization": f"Bearer {SIGNER.token(now=NOW)}"}
    )
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


def test_only_the_canonical_spelling_is_kept(clock: FakeClock, members: Members) -> None:
    """One token in many spellings ("bearer", padded, extra spaces) cannot fill the cache or grow
    an entry past the token's size limit: those forms are judged each time, not kept."""
    app, _ = app_with(clock, members)
    client = app.test_client()
    raw = SIGNER.token(now=NOW)
    for spaces in range(1, 50):
        for scheme in ("bearer", "BEARER", "Bearer"):
            header = f"{scheme}{' ' * spaces}{raw}"
            assert client.get("/orgs/acme/projects", headers={"Authorization": header}).status_code == 200
    credentials = guard_of(app)._credentials
    assert len(credentials) == 1 and credentials.get(f"Bearer {raw}") is not None


def test_a_long_lived_token_cannot_hold_the_cache(clock: FakeClock, members: Members) -> None:
    """Eviction is first in, first out: a flood of day-long tokens is pushed out by the next
    tokens like any others, rather than outliving every short-lived user token."""
    app, _ = app_with(clock, members, cache_size=8)
    client = app.test_client()
    for number in range(8):
        long_lived = SIGNER.token(now=NOW, exp=NOW + 86400, jti=f"long-{number}")
        client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {long_lived}"})
    users = [SIGNER.token(now=NOW, exp=NOW + 300, jti=f"user-{number}") for number in range(8)]
    for token in users:
        assert (
            client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    credentials = guard_of(app)._credentials
    assert all(credentials.get(f"Bearer {token}") is not None for token in users)
