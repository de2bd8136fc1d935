"""Agents acting for people, and step-up authentication, in the demo over real loopback servers:
the authorization server's token-exchange grant (RFC 8693) and its record of how the person
signed in (acr, auth_time), the API's actor ceiling and its ``Requirement`` on deletion (RFC
9470), the MCP server's step-up tool, and the printed story. Every server runs on one fake clock:
no assertion depends on the wall clock."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import (
    EXPECTED_DELEGATION,
    EXPECTED_STEP_UP,
    Demo,
    delegation_story,
    demo_servers,
    second_factor_provider,
    step_up_story,
)
from demo_auth_server import (
    ACCESS_TOKEN_TYPE,
    AGENT_CLIENT,
    AGENT_SECRET,
    JWT_TOKEN_TYPE,
    PASSWORDS,
    SECOND_FACTORS,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    TOKEN_EXCHANGE,
    fetch_token_client_credentials,
    fetch_token_with_code,
)
from demo_mcp_client import EXPECTED_MCP_STEP_UP, mcp_step_up_story

from policy import parse_challenges
from resource_server.client import DPoPKey
from tests.examples.test_demo_auth_server import T0
from tests.support import FakeClock

CLOCK = FakeClock(T0)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers(clock=CLOCK) as running:  # every port chosen by the OS, one fake clock
        yield running


@pytest.fixture(autouse=True)
def at_t0() -> None:
    CLOCK.now = float(T0)  # each test starts at the same instant, whatever ran before it


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def printed_steps(out: str) -> dict[str, str]:
    """The printed story, as step number → the lines under its ``== N.`` heading."""
    blocks = re.split(r"^== (\d+)\. ", out, flags=re.MULTILINE)
    return {number: text for number, text in zip(blocks[1::2], blocks[2::2], strict=True)}


def person_token(
    demo: Demo, http: httpx.Client, scope: str = "project:read project:write", **options: str
) -> str:
    token = fetch_token_with_code(
        demo.issuer,
        username="user-admin",
        password=PASSWORDS["user-admin"],
        org="acme",
        scope=scope,
        client=http,
        **options,  # type: ignore[arg-type]
    )
    return str(token["access_token"])


def agent_token(
    demo: Demo, http: httpx.Client, client_id: str = AGENT_CLIENT, secret: str = AGENT_SECRET
) -> str:
    own = fetch_token_client_credentials(
        demo.issuer, client_id=client_id, client_secret=secret, scope="project:read", client=http
    )
    return str(own["access_token"])


def exchange(
    demo: Demo,
    http: httpx.Client,
    form: dict[str, str | list[str]],
    auth: tuple[str, str] = (AGENT_CLIENT, AGENT_SECRET),
) -> httpx.Response:
    return http.post(f"{demo.issuer}/token", data={"grant_type": TOKEN_EXCHANGE, **form}, auth=auth)


def exchange_form(subject: str, actor: str, **extra: str) -> dict[str, str | list[str]]:
    return {
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": actor,
        "actor_token_type": ACCESS_TOKEN_TYPE,
        **extra,
    }


def claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


# -- the printed story ----------------------------------------------------------------------------


def test_the_demo_tells_the_delegation_story(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert delegation_story(demo) == EXPECTED_DELEGATION == [200, 403]
    out = capsys.readouterr().out
    assert 'act {"sub": "agent-assistant", "client_id": "agent-assistant"}' in out
    assert "issued_token_type urn:ietf:params:oauth:token-type:access_token" in out
    steps = printed_steps(out)
    assert "GET /orgs/acme/projects -> 200" in steps["27"]
    assert '"actor":"agent-assistant"' in steps["27"] and '"subject":"user-admin"' in steps["27"]
    # The person may write; the agent's ceiling is read: refused, and no challenge (no token helps).
    assert "POST /orgs/acme/projects -> 403" in steps["28"]
    assert "WWW-Authenticate" not in steps["28"] and '"error": "forbidden"' in steps["28"]


def test_the_demo_tells_the_step_up_story(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert step_up_story(demo) == EXPECTED_STEP_UP == [201, 401, 200]
    out = capsys.readouterr().out
    steps = printed_steps(out)
    assert "POST /orgs/acme/projects -> 201" in steps["29"]
    assert f"acr 'pwd', auth_time {T0}" in out.split("== 29.")[0]
    refused = steps["30"]
    assert re.search(r"DELETE /orgs/acme/projects/\d+ -> 401", refused)
    header = refused.split("WWW-Authenticate: ")[1].splitlines()[0]
    (challenge,) = parse_challenges(header)
    assert challenge.get("error") == "insufficient_user_authentication"
    assert (challenge.get("acr_values"), challenge.get("max_age")) == ("mfa", "300")
    assert (
        f"(user-admin signs in (password and second factor): granted 'project:read project:write', acr 'mfa', auth_time {T0})"
        in refused
    )
    assert re.search(r"DELETE /orgs/acme/projects/\d+ -> 200", steps["31"])
    assert '"acr":"mfa"' in steps["31"] and '"by":"user-admin"' in steps["31"]


def test_the_demo_tells_the_step_up_story_on_an_mcp_tool(
    demo: Demo, http: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = second_factor_provider(http, demo.issuer, "user-admin", resource=demo.mcp)
    assert mcp_step_up_story(f"{demo.mcp}/orgs/acme/mcp/", provider) == EXPECTED_MCP_STEP_UP
    steps = printed_steps(capsys.readouterr().out)
    assert "initialize -> 200" in steps["32"] and "tools/call create_project -> 200" in steps["32"]
    _, _, retried = steps["33"].partition("tools/call delete_project -> 401")
    assert retried, steps["33"]
    (challenge,) = parse_challenges(retried.split("WWW-Authenticate: ")[1].splitlines()[0])
    assert challenge.get("error") == "insufficient_user_authentication"
    assert (challenge.get("acr_values"), challenge.get("max_age")) == ("mfa", "300")
    assert "acr 'mfa'" in retried and "tools/call delete_project -> 200" in retried
    assert '"acr": "mfa"' in retried


# -- step-up at the API: the sign-in's age on the servers' clock ----------------------------------


def test_a_second_factor_sign_in_deletes_until_max_age_passes(demo: Demo, http: httpx.Client) -> None:
    token = person_token(demo, http, otp=SECOND_FACTORS["user-admin"], acr_values="mfa")  # type: ignore[arg-type]
    assert (claims(token)["acr"], claims(token)["auth_time"]) == ("mfa", T0)
    headers = {"Authorization": f"Bearer {token}"}
    projects = f"{demo.resource}/orgs/acme/projects"
    first = http.post(projects, json={"name": "one"}, headers=headers).json()["id"]
    second = http.post(projects, json={"name": "two"}, headers=headers).json()["id"]
    CLOCK.advance(300)  # RFC 9470 §3: max_age="300" allows a sign-in 300 s old
    assert http.delete(f"{projects}/{first}", headers=headers).status_code == 200
    CLOCK.advance(1)
    late = http.delete(f"{projects}/{second}", headers=headers)
    assert late.status_code == 401
    (challenge,) = parse_challenges(late.headers["www-authenticate"])
    assert (challenge.get("error"), challenge.get("max_age")) == ("insufficient_user_authentication", "300")


def test_a_capability_token_names_its_agent_session_as_the_actor(demo: Demo, http: httpx.Client) -> None:
    """A capability's actor is its agent session (under the ``session:*`` ceiling): the listing
    names it, and a deletion asks first for the scope the read-only capability lacks."""
    minted = http.post(
        f"{demo.resource}/orgs/acme/agent-token",
        json={"sessionId": "agents-test"},
        headers={"Authorization": f"Bearer {person_token(demo, http)}"},
    )
    capability = {"Authorization": f"Bearer {minted.json()['token']}"}
    assert (
        http.get(f"{demo.resource}/orgs/acme/projects", headers=capability).json()["actor"]
        == "session:agents-test"
    )
    refused = http.delete(f"{demo.resource}/orgs/acme/projects/1", headers=capability)
    (challenge,) = parse_challenges(refused.headers["www-authenticate"])
    assert (refused.status_code, challenge.get("error"), challenge.get("scope")) == (
        403,
        "insufficient_scope",
        "project:write",
    )


def test_a_capability_carries_no_sign_in_so_a_step_up_route_refuses_it_without_a_challenge(
    demo: Demo, http: httpx.Client
) -> None:
    """Approved to write, an agent session's capability holds the scope a deletion needs but no
    acr or auth_time (a capability is not a sign-in): 403 without a challenge, since nothing the
    agent can do makes it pass; only the person's own token can."""
    session = "agents-delete"
    login = http.post(
        f"{demo.resource}/login", json={"username": "user-admin", "password": PASSWORDS["user-admin"]}
    )
    assert login.status_code == 200
    approved = http.post(
        f"{demo.resource}/orgs/acme/agent-approvals", json={"sessionId": session, "scopes": ["project:write"]}
    )
    assert approved.status_code == 201, approved.text
    http.cookies.clear()
    minted = http.post(
        f"{demo.resource}/orgs/acme/agent-token",
        json={"sessionId": session},
        headers={"Authorization": f"Bearer {person_token(demo, http, otp=SECOND_FACTORS['user-admin'])}"},  # type: ignore[arg-type]
    )
    capability = {"Authorization": f"Bearer {minted.json()['token']}"}
    assert "project:write" in minted.json()["scopes"]
    refused = http.delete(f"{demo.resource}/orgs/acme/projects/1", headers=capability)
    assert (refused.status_code, refused.headers.get("www-authenticate")) == (403, None)


# -- the authorization endpoint records the sign-in -----------------------------------------------


def test_a_password_sign_in_is_pwd_and_a_wrong_or_missing_second_factor_gets_no_code(
    demo: Demo, http: httpx.Client
) -> None:
    assert (claims(person_token(demo, http))["acr"], claims(person_token(demo, http))["auth_time"]) == (
        "pwd",
        T0,
    )
    for options, message in (
        ({"otp": "000000"}, "wrong second factor"),
        ({"otp": "é" * 5}, "wrong second factor"),
        ({"acr_values": ("mfa",)}, "asks for the second factor"),
        ({"acr_values": ("mfa",), "max_age": 2**31}, "max_age must be a number of seconds"),
    ):
        with pytest.raises(RuntimeError, match=message):
            person_token(demo, http, **options)  # type: ignore[arg-type]


# -- the token-exchange grant (RFC 8693 §2) -------------------------------------------------------


def test_token_exchange_issues_a_delegated_token(demo: Demo, http: httpx.Client) -> None:
    person = person_token(demo, http, scope="project:read")
    answer = exchange(
        demo, http, exchange_form(person, agent_token(demo, http), scope="project:read project:write")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert body["scope"] == "project:read"  # within the subject token's scope (RFC 6749 §3.3)
    token = claims(body["access_token"])
    assert (token["sub"], token["org_id"], token["acr"], token["auth_time"]) == (
        "user-admin",
        "acme",
        "pwd",
        T0,
    )
    assert token["act"] == {"sub": AGENT_CLIENT, "client_id": AGENT_CLIENT}
    # Exchanged again, the delegated token's own act is nested: the prior actor (RFC 8693 §4.1).
    again = exchange(
        demo,
        http,
        exchange_form(body["access_token"], agent_token(demo, http), subject_token_type=JWT_TOKEN_TYPE),
    )
    assert claims(again.json()["access_token"])["act"] == {
        "sub": AGENT_CLIENT,
        "client_id": AGENT_CLIENT,
        "act": {"sub": AGENT_CLIENT, "client_id": AGENT_CLIENT},
    }


def test_token_exchange_refuses_bad_requests_with_rfc_6749_errors(demo: Demo, http: httpx.Client) -> None:
    person, own = person_token(demo, http), agent_token(demo, http)
    other_agent = agent_token(demo, http, SERVICE_CLIENT, SERVICE_SECRET)
    bound = fetch_token_with_code(
        demo.issuer,
        username="user-admin",
        password=PASSWORDS["user-admin"],
        org="acme",
        scope="project:read",
        client=http,
        dpop_key=DPoPKey.generate("ES256", clock=CLOCK),
    )["access_token"]
    cases: list[tuple[dict[str, str | list[str]], str]] = [
        (
            {
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "actor_token": own,
                "actor_token_type": ACCESS_TOKEN_TYPE,
            },
            "invalid_request",
        ),
        ({**exchange_form(person, own), "subject_token": [person, person]}, "invalid_request"),
        (
            exchange_form(person, own, subject_token_type="urn:ietf:params:oauth:token-type:id_token"),
            "invalid_request",
        ),
        ({k: v for k, v in exchange_form(person, own).items() if k != "actor_token_type"}, "invalid_request"),
        (
            {k: v for k, v in exchange_form(person, own).items() if not k.startswith("actor")},
            "invalid_request",
        ),
        (
            exchange_form(person, own, requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
            "invalid_request",
        ),
        (exchange_form("not-a-token", own), "invalid_grant"),
        (exchange_form("é" * 10_000, own), "invalid_grant"),
        (exchange_form(person + "x", own), "invalid_grant"),
        (exchange_form(person, other_agent), "invalid_grant"),  # another client's own token
        (exchange_form(person, person), "invalid_grant"),  # the person is not the agent
        (exchange_form(bound, own), "invalid_grant"),  # bound to a key the agent does not prove
        (exchange_form(person, own, scope="org:admin"), "invalid_scope"),
    ]
    for form, error in cases:
        refused = exchange(demo, http, form)
        assert (refused.status_code, refused.json()["error"]) == (400, error), (form.keys(), refused.text)
        assert refused.headers["cache-control"] == "no-store"
    # A client not registered for the grant, and one that does not authenticate.
    refused = exchange(demo, http, exchange_form(person, other_agent), auth=(SERVICE_CLIENT, SERVICE_SECRET))
    assert (refused.status_code, refused.json()["error"]) == (400, "unauthorized_client")
    refused = exchange(demo, http, exchange_form(person, own), auth=(AGENT_CLIENT, "wrong-secret"))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


def test_token_exchange_refuses_expired_tokens_on_the_servers_clock(demo: Demo, http: httpx.Client) -> None:
    person, own = person_token(demo, http), agent_token(demo, http)
    CLOCK.advance(600 + 31)  # past exp and the verifier's 30 s leeway
    refused = exchange(demo, http, exchange_form(person, own))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert "expired" in json.dumps(refused.json())
