"""DPoP (RFC 9449) in the demo, over real loopback servers: the authorization server binds tokens
to the key a token request proves (JWTs and opaque ones), refuses a bad proof with 400
``invalid_dpop_proof``, and the API takes bound tokens with their proofs only, once each."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import EXPECTED_DPOP, Demo, demo_servers, dpop_snippet, dpop_story
from demo_api import create_api, from_environment
from demo_auth_server import (
    OPAQUE_CLIENT,
    OPAQUE_SECRET,
    PASSWORDS,
    ROLES,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    IssuedToken,
    Store,
    fetch_token_client_credentials,
    fetch_token_with_code,
)

from policy import parse_challenges
from resource_server.client import DPoPKey
from resource_server.state import RedisReplayCache
from tests.examples.test_demo_auth_server import RESOURCE, T0, running

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running_demo:  # every port chosen by the OS
        yield running_demo


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey.generate("ES256")


def claims_of(token: str) -> dict[str, Any]:
    """The payload, unverified: these tests look at what was issued, the API verifies it."""
    return jwt.decode(token, options={"verify_signature": False})


def service_token(demo: Demo, http: httpx.Client, key: DPoPKey | None, **kwargs: Any) -> dict[str, Any]:
    return fetch_token_client_credentials(
        demo.issuer,
        client_id=kwargs.get("client_id", SERVICE_CLIENT),
        client_secret=kwargs.get("client_secret", SERVICE_SECRET),
        scope="project:read",
        client=http,
        dpop_key=key,
    )


def token_request(demo: Demo, http: httpx.Client, *proofs: str) -> httpx.Response:
    """A client-credentials token request carrying ``proofs`` as its ``DPoP`` header lines."""
    return http.post(
        f"{demo.issuer}/token",
        data={"grant_type": "client_credentials", "scope": "project:read"},
        auth=(SERVICE_CLIENT, SERVICE_SECRET),
        headers=[("DPoP", proof) for proof in proofs],
    )


def with_proof(key: DPoPKey, token: str, url: str, method: str = "GET") -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": key.proof(method, url, access_token=token)}


def refusal(response: httpx.Response) -> tuple[int, str, str | None]:
    """(status, body error, the error of the challenge of the scheme the answer uses)."""
    (challenge,) = parse_challenges(response.headers["www-authenticate"])
    return response.status_code, response.json()["error"], challenge.get("error")


# -- the authorization server -------------------------------------------------------------------


def test_a_token_request_with_a_proof_gets_a_token_bound_to_its_key(
    demo: Demo, http: httpx.Client, key: DPoPKey
) -> None:
    granted = service_token(demo, http, key)
    assert granted["token_type"] == "DPoP"  # RFC 9449 §5
    assert claims_of(granted["access_token"])["cnf"] == {"jkt": key.jkt}
    user = fetch_token_with_code(
        demo.issuer,
        username="user-member",
        password=PASSWORDS["user-member"],
        org="acme",
        scope="project:read",
        client=http,
        dpop_key=key,
    )
    assert user["token_type"] == "DPoP" and claims_of(user["access_token"])["cnf"] == {"jkt": key.jkt}


def test_without_a_proof_the_token_is_a_bearer_token(demo: Demo, http: httpx.Client) -> None:
    granted = service_token(demo, http, None)
    assert granted["token_type"] == "Bearer"
    assert "cnf" not in claims_of(granted["access_token"])


def test_the_metadata_names_the_proof_algorithms(demo: Demo, http: httpx.Client) -> None:
    metadata = http.get(f"{demo.issuer}/.well-known/oauth-authorization-server").json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]


def test_an_invalid_proof_at_the_token_endpoint_is_400_invalid_dpop_proof(
    demo: Demo, http: httpx.Client, key: DPoPKey
) -> None:
    endpoint = f"{demo.issuer}/token"
    used = key.proof("POST", endpoint)
    assert token_request(demo, http, used).status_code == 200
    cases = {
        "replayed": [used],
        "for another URL": [key.proof("POST", f"{demo.resource}/orgs/acme/projects")],
        "for another method": [key.proof("GET", endpoint)],
        "not a JWS": ["not-a-proof"],
        "two proofs": [key.proof("POST", endpoint), key.proof("POST", endpoint)],
    }
    for case, proofs in cases.items():
        response = token_request(demo, http, *proofs)
        assert response.status_code == 400, case
        body = response.json()
        assert body["error"] == "invalid_dpop_proof", case
        assert set(body) == {"error", "error_description"} and "access_token" not in body, case
        assert response.headers["cache-control"] == "no-store", case


def test_an_invalid_proof_is_refused_before_the_grant_is_looked_at(
    demo: Demo, http: httpx.Client, key: DPoPKey
) -> None:
    """A wrong client secret with a bad proof: the proof is what the answer is about."""
    response = http.post(
        f"{demo.issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=(SERVICE_CLIENT, "wrong-secret"),
        headers={"DPoP": key.proof("POST", f"{demo.issuer}/elsewhere")},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"


def test_a_proof_that_cannot_be_checked_now_is_503_with_retry_after(
    tmp_path: Path, http: httpx.Client
) -> None:
    """The replay cache is a Redis no one serves (a socket path nothing listens on): the proof
    cannot be recorded, so it is neither good nor bad yet. 503 with ``Retry-After``, never a
    500, nor a 400 that would tell the client its proof is wrong; a token request without a
    proof does not touch the cache and still gets its bearer token."""
    unreachable = RedisReplayCache(f"unix://{tmp_path}/no-redis.sock")
    with running(str(tmp_path / "auth.sqlite3"), replay_cache=unreachable) as base:
        form = {"grant_type": "client_credentials", "scope": "project:read"}
        auth = (SERVICE_CLIENT, SERVICE_SECRET)
        key = DPoPKey.generate("ES256")
        response = http.post(
            f"{base}/token", data=form, auth=auth, headers={"DPoP": key.proof("POST", f"{base}/token")}
        )
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["cache-control"] == "no-store"
        assert response.json() == {
            "error": "temporarily_unavailable",
            "error_description": "the DPoP proof cannot be checked now; retry later",
        }
        assert http.post(f"{base}/token", data=form, auth=auth).json()["token_type"] == "Bearer"


def test_an_opaque_token_carries_its_binding_in_introspection(
    demo: Demo, http: httpx.Client, key: DPoPKey
) -> None:
    granted = service_token(demo, http, key, client_id=OPAQUE_CLIENT, client_secret=OPAQUE_SECRET)
    assert granted["token_type"] == "DPoP"
    token = granted["access_token"]
    url = f"{demo.resource}/orgs/acme/projects"
    accepted = http.get(url, headers=with_proof(key, token, url))
    assert accepted.status_code == 200 and accepted.json()["subject"] == OPAQUE_CLIENT
    as_bearer = http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert refusal(as_bearer) == (401, "invalid_token", "invalid_token")


def test_the_store_keeps_the_binding_and_upgrades_an_older_database(tmp_path: Path) -> None:
    db_path = str(tmp_path / "auth.sqlite3")
    with sqlite3.connect(db_path) as db:  # the tokens table as it was before DPoP
        db.execute(
            "CREATE TABLE tokens (token_hash BLOB PRIMARY KEY, client_id TEXT NOT NULL,"
            " subject TEXT NOT NULL, org TEXT NOT NULL, scope TEXT NOT NULL, audience TEXT NOT NULL,"
            " issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
        )
    db.close()
    store = Store(db_path)
    bound = IssuedToken("c", "s", "acme", "project:read", RESOURCE, 1000, 1600, False, "jkt-1")
    store.save_token("at_bound", bound)
    store.save_token("at_plain", IssuedToken("c", "s", "acme", "project:read", RESOURCE, 1000, 1600, False))
    assert store.find_token("at_bound", now=1001.0) == bound
    assert store.find_token("at_plain", now=1001.0).jkt is None  # type: ignore[union-attr]


def test_proofs_are_checked_with_the_servers_clock(tmp_path: Path, http: httpx.Client) -> None:
    now = [float(T0)]
    with running(str(tmp_path / "auth.sqlite3"), clock=lambda: now[0]) as base:
        key = DPoPKey.generate("ES256", clock=lambda: T0)
        form = {"grant_type": "client_credentials", "scope": "project:read"}
        auth = (SERVICE_CLIENT, SERVICE_SECRET)

        def ask() -> httpx.Response:
            return http.post(
                f"{base}/token", data=form, auth=auth, headers={"DPoP": key.proof("POST", f"{base}/token")}
            )

        assert ask().json()["token_type"] == "DPoP"
        now[0] = T0 + 301  # past the verifier's max_age of 300 s
        too_old = ask()
        assert too_old.status_code == 400
        assert too_old.json()["error_description"] == "the DPoP proof is too old"


# -- the API --------------------------------------------------------------------------------------


def test_the_api_takes_a_bound_token_with_its_proof_only(
    demo: Demo, http: httpx.Client, key: DPoPKey
) -> None:
    token = service_token(demo, http, key)["access_token"]
    url = f"{demo.resource}/orgs/acme/projects"
    headers = with_proof(key, token, url)
    assert http.get(url, headers=headers).status_code == 200
    assert refusal(http.get(url, headers=headers)) == (401, "invalid_dpop_proof", "invalid_dpop_proof")
    as_bearer = http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert refusal(as_bearer) == (401, "invalid_token", "invalid_token")
    assert "DPoP-bound" in as_bearer.json()["error_description"]
    no_proof = http.get(url, headers={"Authorization": f"DPoP {token}"})
    assert refusal(no_proof) == (401, "invalid_dpop_proof", "invalid_dpop_proof")
    other = with_proof(DPoPKey.generate("ES256"), token, url)
    assert refusal(http.get(url, headers={**other, "Authorization": f"DPoP {token}"}))[:2] == (
        401,
        "invalid_token",
    )
    plain = service_token(demo, http, None)["access_token"]
    assert http.get(url, headers={"Authorization": f"Bearer {plain}"}).status_code == 200  # next to DPoP


def test_the_api_metadata_advertises_dpop(demo: Demo, http: httpx.Client) -> None:
    metadata = http.get(f"{demo.resource}/.well-known/oauth-protected-resource").json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]
    assert metadata["dpop_bound_access_tokens_required"] is False


def test_two_api_processes_sharing_redis_accept_a_proof_once(
    demo: Demo, http: httpx.Client, key: DPoPKey, redis_url: str, tmp_path: Path
) -> None:
    """Two apps, as two workers would build them: one replay cache in Redis between them."""
    apps = [
        create_api(
            issuer=demo.issuer,
            jwks_uri=f"{demo.issuer}/.well-known/jwks.json",
            resource=demo.resource,
            roles=ROLES,
            memberships=demo.memberships,
            passwords=PASSWORDS,
            grants_url=f"sqlite:///{tmp_path}/grants-{n}.sqlite3",
            redis_url=redis_url,
        ).test_client()
        for n in range(2)
    ]
    token = service_token(demo, http, key)["access_token"]
    headers = with_proof(key, token, f"{demo.resource}/orgs/acme/projects")
    assert apps[0].get("/orgs/acme/projects", headers=headers).status_code == 200
    replayed = apps[1].get("/orgs/acme/projects", headers=headers)
    assert replayed.status_code == 401 and replayed.get_json()["error"] == "invalid_dpop_proof"


# -- the factory gunicorn loads ---------------------------------------------------------------------


def test_the_gunicorn_factory_reads_its_configuration_from_the_environment(
    demo: Demo, http: httpx.Client, key: DPoPKey, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DEMO_ISSUER", raising=False)
    monkeypatch.setenv("DEMO_RESOURCE", demo.resource)
    with pytest.raises(RuntimeError, match="DEMO_ISSUER"):
        from_environment()
    jwks = http.get(f"{demo.issuer}/.well-known/jwks.json").json()
    for name, value in {
        "DEMO_ISSUER": demo.issuer,
        "DEMO_JWKS": json.dumps(jwks),  # no fetch: the key set is given
        "DEMO_GRANTS_URL": f"sqlite:///{tmp_path}/grants.sqlite3",
        "DEMO_WORKER_HEADER": "1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("DEMO_REDIS_URL", "DEMO_GATEWAY_KEY", "DEMO_INTROSPECTION_ENDPOINT", "DEMO_TENANT_ISSUERS"):
        monkeypatch.delenv(name, raising=False)
    api = from_environment().test_client()
    token = service_token(demo, http, key)["access_token"]
    response = api.get(
        "/orgs/acme/projects", headers=with_proof(key, token, f"{demo.resource}/orgs/acme/projects")
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["X-Demo-Worker"] == str(os.getpid())


# -- the story -------------------------------------------------------------------------------------


def test_the_demo_tells_the_dpop_story(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert dpop_story(demo) == EXPECTED_DPOP == [200, 401, 401, 401, 403, 201]
    out = capsys.readouterr().out
    assert "(a DPoP token for the agent, granted 'project:read'" in out and ": the agent's key)" in out
    assert "this token is DPoP-bound: send it with the DPoP scheme and a proof" in out
    assert 'error="invalid_token", error_description="the token is bound to another key"' in out
    assert 'error="invalid_dpop_proof", error_description="the DPoP proof has been used before"' in out
    assert 'WWW-Authenticate: DPoP realm="api", error="insufficient_scope", scope="project:write"' in out
    assert "granted 'project:read project:write'" in out and "POST /orgs/acme/projects -> 201" in out


def test_the_snippet_serve_prints_runs_as_printed(demo: Demo) -> None:
    """``--serve`` prints it for people to paste: it gets a bound token, reads, and is refused the replay."""
    result = subprocess.run(
        [sys.executable, "-"],
        input=dpop_snippet(demo.issuer, demo.resource),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("DPoP token bound to ")
    assert lines[1].startswith("with its proof: 200 ")
    assert lines[2].startswith("the same proof again: 401 DPoP ") and 'error="invalid_dpop_proof"' in lines[2]
