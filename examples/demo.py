"""The demo: two authorization servers, a protected API, a gateway, an MCP server, and a client
that steps up by itself.

    python examples/demo.py            # start the five servers on loopback (free ports), run the
                                       # scripted client, stop
    python examples/demo.py --serve    # keep them running for curl: authorization server on 5000,
                                       # API on 5001, gateway on 5002, globex's authorization
                                       # server on 5003, MCP server on 5004 (--as-port,
                                       # --api-port, --gateway-port, --globex-port, --mcp-port
                                       # choose others)
    python examples/demo.py --redis-url redis://127.0.0.1:6379/0   # replay cache in Redis

The authorization server (Authlib, SQLite) issues RFC 9068 JWT access tokens signed with ES256,
bound to an organization by an ``org_id`` claim and capped by the user's role, and, to one service
account, opaque tokens. The API (Flask and this library) fetches the server's JWK Set over HTTP,
asks the server about opaque tokens (RFC 7662 introspection) and checks every request. A second
authorization server, globex's own, has its own users and keys; the API trusts its tokens for
globex only. The gateway signs users in and calls the API with a signed viewer context. An
agent with a key of its own gets tokens bound to it (DPoP, RFC 9449) and signs a proof for every
request: the token alone, or with another key's proof, or a replayed request, gets nothing.
The MCP server (the MCP SDK's, behind ``protect_mcp``) serves the same projects as tools; the
MCP SDK's own client registers itself with the authorization server, gets a read token, is
refused the write tool, and steps up by itself.

Agents acting for people: an agent exchanges a person's token and its own for a token that names
it as the actor (RFC 8693 token exchange, ``act``); the API answers with the actor, and caps the
agent below the person (an actor ceiling). Deleting a project, at the API or with the MCP
server's tool, needs a recent sign-in with a second factor (RFC 9470): refused with
``insufficient_user_authentication``, the person passes the second factor, and the retry succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo_api import Introspection, Projects, create_api
from demo_auth_server import (
    AGENT_CLIENT,
    AGENT_SECRET,
    API_CLIENT,
    API_SECRET,
    GLOBEX,
    GLOBEX_MEMBERSHIPS,
    GLOBEX_PASSWORDS,
    GLOBEX_SERVICE_CLIENT,
    GLOBEX_SERVICE_SECRET,
    MEMBERSHIPS,
    OPAQUE_CLIENT,
    OPAQUE_SECRET,
    PASSWORDS,
    ROLES,
    SECOND_FACTORS,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    create_auth_server,
    exchange_token,
    fetch_token_client_credentials,
    fetch_token_with_code,
)
from demo_gateway import create_gateway
from demo_mcp import create_mcp_app, loopback_socket, serving
from demo_mcp_client import (
    EXPECTED_AUTHORIZATIONS,
    EXPECTED_MCP,
    EXPECTED_MCP_STEP_UP,
    mcp_step_up_story,
    mcp_story,
)
from demo_telemetry import format_summary, observing, read_summary

from policy import parse_challenges
from resource_server.client import DPoPKey, StepUpAuth
from resource_server.viewer_context import ViewerContextSigner


class _Late:
    """A WSGI app filled in after its server has bound a port, so each app can know the other's URL."""

    app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@dataclass
class Demo:
    """The running servers' base URLs (``globex`` is globex's own authorization server, ``mcp``
    the MCP server, also its resource identifier), the membership table of the API and the
    MCP server (the script edits it to show a role change taking effect at once), and where the
    operators look: the API's Prometheus page ``metrics`` (the MCP server's metrics too: one
    process) and the audit trail, JSON lines in ``audit_log``; ``clock`` is the servers' time,
    which the scripted clients date their proofs and viewer contexts by."""

    issuer: str
    resource: str
    gateway: str
    memberships: dict[tuple[str, str], str]
    gateway_key: bytes
    globex: str
    mcp: str
    metrics: str
    audit_log: Path
    clock: Callable[[], float] = time.time


@contextmanager
def demo_servers(
    as_port: int = 0,
    api_port: int = 0,
    gateway_port: int = 0,
    globex_port: int = 0,
    redis_url: str | None = None,
    mcp_port: int = 0,
    clock: Callable[[], float] = time.time,
) -> Iterator[Demo]:
    """Run the two authorization servers, the API, the gateway and the MCP server on loopback;
    the API keeps its replay cache in Redis given ``redis_url``, else in memory (it is one
    process here). ``clock`` is the time of the authorization servers (codes, sign-ins, token
    dates), the API and the MCP server (token expiry, a sign-in's age, DPoP proofs). The
    library's metrics go to the API's ``/metrics``, its audit events to ``audit.jsonl`` in the
    demo's temporary directory (:mod:`demo_telemetry`)."""
    memberships = {**MEMBERSHIPS, **GLOBEX_MEMBERSHIPS}  # the API's own knowledge of both tenants
    projects = Projects()  # the API and the MCP server serve the same projects
    gateway_key = secrets.token_bytes(32)  # shared by the gateway (signs) and the API (verifies)
    apps = [_Late(), _Late(), _Late(), _Late()]
    servers = [
        make_server("127.0.0.1", port, app, threaded=True)
        for port, app in zip((as_port, api_port, gateway_port, globex_port), apps, strict=True)
    ]
    issuer, resource, gateway, globex = (f"http://127.0.0.1:{server.server_port}" for server in servers)
    mcp_socket = loopback_socket(mcp_port)
    mcp = f"http://127.0.0.1:{mcp_socket.getsockname()[1]}"  # its URL, and its resource identifier
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.closing(mcp_socket),
        observing(Path(tmp) / "audit.jsonl") as registry,
    ):
        apps[0].app = create_auth_server(
            issuer=issuer, db_path=f"{tmp}/auth.sqlite3", resource=resource, resources=[mcp], clock=clock
        )
        # Its own database, users and signing key: nothing is shared with acme's server.
        apps[3].app = create_auth_server(
            issuer=globex, db_path=f"{tmp}/globex.sqlite3", resource=resource, tenant=GLOBEX, clock=clock
        )
        apps[1].app = create_api(
            issuer=issuer,
            jwks_uri=f"{issuer}/.well-known/jwks.json",
            resource=resource,
            roles=ROLES,
            memberships=memberships,
            passwords=PASSWORDS,
            grants_url=f"sqlite:///{tmp}/grants.sqlite3",
            gateway_key=gateway_key,
            introspection=Introspection(f"{issuer}/introspect", API_CLIENT, API_SECRET),
            tenant_issuers={"globex": globex},
            redis_url=redis_url,
            projects=projects,
            metrics=registry,
            clock=clock,
        )
        apps[2].app = create_gateway(
            api=resource, audience=resource, context_key=gateway_key, passwords=PASSWORDS, clock=clock
        )
        mcp_app = create_mcp_app(
            issuer=issuer, resource=mcp, roles=ROLES, memberships=memberships, projects=projects, clock=clock
        )
        for server in servers:
            # A short poll interval: shutdown() waits for it, once per server, when the demo ends.
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            with serving(mcp_app, mcp_socket):
                yield Demo(
                    issuer,
                    resource,
                    gateway,
                    memberships,
                    gateway_key,
                    globex,
                    mcp,
                    f"{resource}/metrics",
                    Path(tmp) / "audit.jsonl",
                    clock,
                )
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()


#: What :func:`dpop_story` sees: the proof accepted; no proof, another key's proof and a replay
#: refused; then a step-up, refused and retried with a new bound token.
EXPECTED_DPOP = [200, 401, 401, 401, 403, 201]


def show(step: str, response: httpx.Response) -> None:
    print(f"\n== {step}")
    print(f"   {response.request.method} {response.request.url.path} -> {response.status_code}")
    if "www-authenticate" in response.headers:
        print(f"   WWW-Authenticate: {response.headers['www-authenticate']}")
    text = response.text.strip()
    if '"token"' in text:  # a capability token is long and says nothing to a reader
        body = response.json()
        text = json.dumps({**body, "token": body["token"][:16] + "..."})
    print(f"   {text}")


def bearer_call(
    http: httpx.Client,
    resource: str,
    seen: list[int],
    step: str,
    method: str,
    path: str,
    bearer: str,
    **kwargs: Any,
) -> httpx.Response:
    """Call the API with a bearer token, show the exchange and note its status."""
    response = http.request(method, resource + path, headers={"Authorization": f"Bearer {bearer}"}, **kwargs)
    show(step, response)
    seen.append(response.status_code)
    return response


def run_script(issuer: str, resource: str, memberships: dict[tuple[str, str], str]) -> list[int]:
    """The scripted client. Returns the status codes it saw, in order (the tests check them)."""
    seen: list[int] = []
    with httpx.Client(timeout=10) as http:

        def token(org: str, scope: str, username: str = "user-admin") -> str:
            granted = fetch_token_with_code(
                issuer, username=username, password=PASSWORDS[username], org=org, scope=scope, client=http
            )
            print(f"\n   (token for {username} in {org}: asked for {scope!r}, granted {granted['scope']!r})")
            return granted["access_token"]

        call = functools.partial(bearer_call, http, resource, seen)

        read = token("acme", "project:read")
        call("1. a read token reads", "GET", "/orgs/acme/projects", read)

        refused = call(
            "2. the same token cannot write", "POST", "/orgs/acme/projects", read, json={"name": "docs"}
        )
        challenge = next(
            c for c in parse_challenges(refused.headers["www-authenticate"]) if c.is_scheme("Bearer")
        )
        advertised = challenge.get("scope")
        print(f"\n   the client parses the challenge: error={challenge.get('error')!r}, scope={advertised!r}")

        write = token("acme", advertised)
        call(
            "3. stepped up to the advertised scope, the retry succeeds",
            "POST",
            "/orgs/acme/projects",
            write,
            json={"name": "docs"},
        )

        other_org = token("globex", "project:read")
        call("4. a token for org globex on org acme's URL", "GET", "/orgs/acme/projects", other_org)

        capped = token("acme", "project:read project:write", username="user-member")
        call(
            "5. a member asked for project:write; granted only what the role holds; no token can help, so no challenge",
            "POST",
            "/orgs/acme/projects",
            capped,
            json={"name": "x"},
        )

        memberships[("user-admin", "acme")] = "member"
        print("\n   (the organization demotes user-admin to member; the write token is unchanged)")
        call(
            "6. effective scopes are token ∩ role: a new token cannot help, so no challenge",
            "POST",
            "/orgs/acme/projects",
            write,
            json={"name": "y"},
        )
        memberships[("user-admin", "acme")] = "admin"
        print("\n   (user-admin is an admin of acme again)")
        delegated = token("acme", "project:read project:write")
        agent_story(http, resource, delegated, call, seen)
    return seen


def agent_story(
    http: httpx.Client, resource: str, delegated: str, call: Callable[..., httpx.Response], seen: list[int]
) -> None:
    """An agent works for user-admin. It holds the user's delegated token (which can write) but
    calls the API only with capability tokens, read-only unless the user approves more."""
    session_id = "agent-session-1"

    def mint() -> str:
        response = call(
            "   the agent mints a capability for its session",
            "POST",
            "/orgs/acme/agent-token",
            delegated,
            json={"sessionId": session_id},
        )
        return response.json()["token"]

    capability = mint()
    refused = call(
        "7. the agent's capability cannot write",
        "POST",
        "/orgs/acme/projects",
        capability,
        json={"name": "a"},
    )
    wanted = parse_challenges(refused.headers["www-authenticate"])[0].get("scope")
    print(f"\n   the agent asks its user to approve {wanted!r} for session {session_id!r}")
    call(
        "8. the agent cannot approve that itself",
        "POST",
        "/orgs/acme/agent-approvals",
        capability,
        json={"sessionId": session_id, "scopes": [wanted]},
    )
    login = http.post(
        f"{resource}/login", json={"username": "user-admin", "password": PASSWORDS["user-admin"]}
    )
    print(f"\n   (user-admin signs in to the API itself: {login.status_code}, a first-party session cookie)")
    approval = http.post(
        f"{resource}/orgs/acme/agent-approvals", json={"sessionId": session_id, "scopes": [wanted]}
    )
    show("9. the user approves it from the first-party session", approval)
    seen.append(approval.status_code)
    http.cookies.clear()  # the agent never holds the user's session
    call("10. re-minted, the capability can write", "POST", "/orgs/acme/projects", mint(), json={"name": "b"})


def gateway_story(demo: Demo) -> list[int]:
    """A user signs in to the gateway, which calls the API on their behalf with a signed viewer
    context and the allowed client headers; a context forged or replayed elsewhere gets nothing."""
    seen = []
    with httpx.Client(timeout=10) as browser:
        login = browser.post(
            f"{demo.gateway}/login",
            json={"username": "user-admin", "password": PASSWORDS["user-admin"]},
            headers={"X-Request-Id": "req-42", "Cookie-Hint": "dropped", "X-Forwarded-For": "1.2.3.4"},
        )
        print(
            f"\n   (user-admin signs in to the gateway; headers it will forward: {login.json()['forwarded_headers']})"
        )
        through = browser.get(f"{demo.gateway}/api/orgs/acme/projects")
        show("11. through the gateway: a viewer context, no user credentials, reaches the API", through)
        seen.append(through.status_code)
    context = ViewerContextSigner(
        keys={"gw-1": secrets.token_bytes(32)},
        signing_kid="gw-1",
        issuer="demo-gateway",
        audience=demo.resource,
        clock=demo.clock,
    ).headers(user_id="user-admin", method="GET", path="/orgs/acme/projects")
    forged = httpx.get(f"{demo.resource}/orgs/acme/projects", headers=context)
    show("12. a viewer context signed with another key is no credential at all", forged)
    seen.append(forged.status_code)
    return [*seen, _replayed_on_post(demo)]


def _replayed_on_post(demo: Demo) -> int:
    """A context is bound to its method, target and body: a real one, as the gateway signs it for
    a GET (think of it as captured in transit), is refused when replayed as a POST."""
    signer = ViewerContextSigner(
        keys={"gw-1": demo.gateway_key},
        signing_kid="gw-1",
        issuer="demo-gateway",
        audience=demo.resource,
        clock=demo.clock,
    )
    captured = signer.headers(user_id="user-admin", method="GET", path="/orgs/acme/projects")
    replay = httpx.post(f"{demo.resource}/orgs/acme/projects", headers=captured, json={"name": "z"})
    show("13. a genuine viewer context for a GET, replayed as a POST", replay)
    return replay.status_code


def tenant_story(demo: Demo) -> list[int]:
    """Two more kinds of token. An opaque one from acme's server, which means nothing to the API
    until that server, asked (RFC 7662 introspection), says what it is; and one from globex's own
    server, which the API trusts for globex and nothing else."""
    seen: list[int] = []
    with httpx.Client(timeout=10) as http:
        call = functools.partial(bearer_call, http, demo.resource, seen)
        opaque = fetch_token_client_credentials(
            demo.issuer,
            client_id=OPAQUE_CLIENT,
            client_secret=OPAQUE_SECRET,
            scope="project:read",
            client=http,
        )
        print(
            f"\n   (an opaque token for the service account {OPAQUE_CLIENT} in acme:"
            f" {opaque['access_token'][:10]}..., granted {opaque['scope']!r})"
        )
        call(
            "14. an opaque token, which the API checks by introspection at acme's server",
            "GET",
            "/orgs/acme/projects",
            opaque["access_token"],
        )
        made_up = "at_" + secrets.token_urlsafe(32)
        call(
            "15. an opaque token acme's server never issued: not active",
            "GET",
            "/orgs/acme/projects",
            made_up,
        )
        globex = fetch_token_with_code(
            demo.globex,
            username="user-globex",
            password=GLOBEX_PASSWORDS["user-globex"],
            org="globex",
            scope="project:read project:write",
            client=http,
        )
        print(f"\n   (token for user-globex from globex's own server, granted {globex['scope']!r})")
        call(
            "16. globex's server speaks for globex: its token writes on globex's URL",
            "POST",
            "/orgs/globex/projects",
            globex["access_token"],
            json={"name": "launch"},
        )
        call(
            "17. and for nothing else: the same token on acme's URL",
            "GET",
            "/orgs/acme/projects",
            globex["access_token"],
        )
    return seen


def dpop_story(demo: Demo) -> list[int]:
    """An agent with a key of its own (DPoP, RFC 9449). Its token requests carry a proof of the
    key, so its tokens are bound to it (``cnf.jkt``), and each call carries a fresh proof signed
    with it: the token alone is worth nothing, nor is a request copied whole."""
    seen: list[int] = []
    key = DPoPKey.generate("ES256", clock=demo.clock)  # proofs dated by the servers' clock
    url = f"{demo.resource}/orgs/acme/projects"
    with httpx.Client(timeout=10) as http:

        def token_for(scopes: frozenset[str] | None, *, dpop_key: DPoPKey) -> str:
            """The agent's token provider: user-admin's delegated token, bound to ``dpop_key``."""
            granted = fetch_token_with_code(
                demo.issuer,
                username="user-admin",
                password=PASSWORDS["user-admin"],
                org="acme",
                scope=" ".join(sorted(scopes or {"project:read"})),
                client=http,
                dpop_key=dpop_key,
            )
            cnf = jwt.decode(granted["access_token"], options={"verify_signature": False})["cnf"]
            bound = "the agent's key" if cnf["jkt"] == dpop_key.jkt else "another key"
            print(
                f"\n   (a {granted['token_type']} token for the agent, granted {granted['scope']!r},"
                f" cnf.jkt {cnf['jkt'][:10]}...: {bound})"
            )
            return granted["access_token"]

        def call(step: str, headers: dict[str, str]) -> None:
            response = http.get(url, headers=headers)
            show(step, response)
            seen.append(response.status_code)

        token = token_for(frozenset({"project:read"}), dpop_key=key)
        proof = key.proof("GET", url, access_token=token)
        call(
            "18. the bound token, with a proof signed by its key",
            {"Authorization": f"DPoP {token}", "DPoP": proof},
        )
        call("19. the same token as a bearer token, without a proof", {"Authorization": f"Bearer {token}"})
        stolen = DPoPKey.generate("ES256", clock=demo.clock).proof("GET", url, access_token=token)
        call(
            "20. the same token with a proof signed by another key",
            {"Authorization": f"DPoP {token}", "DPoP": stolen},
        )
        call(
            "21. the first request replayed, proof and all", {"Authorization": f"DPoP {token}", "DPoP": proof}
        )

        steps = iter(
            (
                "22. the agent writes with its read token: refused with a DPoP challenge",
                "23. stepped up to a new token bound to the same key, with a fresh proof, the retry succeeds",
            )
        )

        def shown(response: httpx.Response) -> None:
            response.read()
            show(next(steps), response)
            seen.append(response.status_code)

        # StepUpAuth signs a proof for every attempt and, on a DPoP insufficient_scope challenge,
        # asks token_for for a token bound to the same key that also covers the advertised scope.
        agent = StepUpAuth(token_for, scopes=["project:read"], dpop_key=key)
        with httpx.Client(timeout=10, auth=agent, event_hooks={"response": [shown]}) as client:
            client.post(url, json={"name": "bound"})
    return seen


#: What :func:`delegation_story` sees: the agent reads for the person, and is refused a write
#: the person could make.
EXPECTED_DELEGATION = [200, 403]
#: What :func:`step_up_story` sees: a project created, its deletion refused for a password
#: sign-in, then done after the second factor.
EXPECTED_STEP_UP = [201, 401, 200]


def delegation_story(demo: Demo, step: int = 27) -> list[int]:
    """An agent, ``agent-assistant``, acts for user-admin. It holds user-admin's token (which can
    write) and its own (client credentials), and exchanges them for one token that is user-admin's
    with the agent as its actor (RFC 8693). The API sees both: it names the actor, and caps it at
    the agent's ceiling, below what user-admin may do."""
    seen: list[int] = []
    with httpx.Client(timeout=10) as http:
        call = functools.partial(bearer_call, http, demo.resource, seen)
        person = fetch_token_with_code(
            demo.issuer,
            username="user-admin",
            password=PASSWORDS["user-admin"],
            org="acme",
            scope="project:read project:write",
            client=http,
        )
        own = fetch_token_client_credentials(
            demo.issuer, client_id=AGENT_CLIENT, client_secret=AGENT_SECRET, scope="project:read", client=http
        )
        delegated = exchange_token(
            demo.issuer,
            client_id=AGENT_CLIENT,
            client_secret=AGENT_SECRET,
            subject_token=person["access_token"],
            actor_token=own["access_token"],
            scope="project:read project:write",
            client=http,
        )
        claims = jwt.decode(delegated["access_token"], options={"verify_signature": False})
        print(
            f"\n   ({AGENT_CLIENT} exchanges user-admin's token and its own (RFC 8693): a token with"
            f" sub {claims['sub']!r}, act {json.dumps(claims['act'])}, granted {delegated['scope']!r},"
            f" issued_token_type {delegated['issued_token_type']})"
        )
        call(
            f"{step}. the agent reads for user-admin: the API names the actor",
            "GET",
            "/orgs/acme/projects",
            delegated["access_token"],
        )
        call(
            f"{step + 1}. the agent writes for user-admin, who may write: above the agent's ceiling"
            " (project:read), no token can help, so no challenge",
            "POST",
            "/orgs/acme/projects",
            delegated["access_token"],
            json={"name": "by-agent"},
        )
    return seen


def second_factor_provider(
    http: httpx.Client, issuer: str, username: str, *, resource: str | None = None
) -> Callable[..., str]:
    """A token provider for the library's step-up clients: ``username`` signs in with a password,
    and, when a server asks for a stronger or more recent sign-in (``acr_values``, ``max_age``,
    RFC 9470), again with the second factor."""

    def token_for(
        scopes: frozenset[str] | None,
        *,
        acr_values: tuple[str, ...] | None = None,
        max_age: int | None = None,
    ) -> str:
        stepping_up = acr_values is not None or max_age is not None
        granted = fetch_token_with_code(
            issuer,
            username=username,
            password=PASSWORDS[username],
            org="acme",
            scope=" ".join(sorted(scopes or {"project:read"})),
            client=http,
            otp=SECOND_FACTORS[username] if stepping_up else None,
            acr_values=acr_values,
            max_age=max_age,
            resource=resource,
        )
        claims = jwt.decode(granted["access_token"], options={"verify_signature": False})
        how = "password and second factor" if stepping_up else "password"
        print(
            f"\n   ({username} signs in ({how}): granted {granted['scope']!r},"
            f" acr {claims.get('acr')!r}, auth_time {claims.get('auth_time')})"
        )
        return str(granted["access_token"])

    return token_for


def step_up_story(demo: Demo, step: int = 29) -> list[int]:
    """user-admin creates a project and deletes it, with the library's step-up client. Deleting needs a sign-in
    with the second factor in the last 300 s (RFC 9470); user-admin signed in with a password, so
    the API answers 401 insufficient_user_authentication; the client asks its token provider for
    such a sign-in, user-admin passes the second factor, and the client sends the request again."""
    seen: list[int] = []
    steps = iter(
        (
            f"{step}. user-admin creates a project, signed in with a password",
            f"{step + 1}. and deletes it: a password sign-in is not enough",
            f"{step + 2}. signed in again with the second factor, the retry deletes it",
        )
    )

    def shown(response: httpx.Response) -> None:
        response.read()
        show(next(steps), response)
        seen.append(response.status_code)

    with httpx.Client(timeout=10) as http:
        token_for = second_factor_provider(http, demo.issuer, "user-admin")
        auth = StepUpAuth(token_for, scopes=["project:read", "project:write"])
        with httpx.Client(timeout=10, auth=auth, event_hooks={"response": [shown]}) as client:
            created = client.post(f"{demo.resource}/orgs/acme/projects", json={"name": "short-lived"})
            client.delete(f"{demo.resource}/orgs/acme/projects/{created.json()['id']}")
    return seen


def dpop_snippet(issuer: str, resource: str) -> str:
    """Python that gets a token bound to a new key and reads with it (curl cannot sign proofs)."""
    return f"""import httpx
from resource_server.client import DPoPKey

key = DPoPKey.generate("ES256")
token = httpx.post(
    "{issuer}/token",
    data={{"grant_type": "client_credentials", "scope": "project:read"}},
    auth=("{SERVICE_CLIENT}", "{SERVICE_SECRET}"),
    headers={{"DPoP": key.proof("POST", "{issuer}/token")}},
).json()
print(token["token_type"], "token bound to", key.jkt)
url = "{resource}/orgs/acme/projects"
proof = key.proof("GET", url, access_token=token["access_token"])  # one per request
headers = {{"Authorization": "DPoP " + token["access_token"], "DPoP": proof}}
for attempt in ("with its proof:", "the same proof again:"):
    answer = httpx.get(url, headers=headers)
    print(attempt, answer.status_code, answer.headers.get("WWW-Authenticate", answer.text.strip()))
"""


def mcp_summary(statuses: list[int], authorizations: list[str]) -> str:
    """The demo's last line: what the MCP SDK's client saw, and how often it authorized."""
    return (
        f"MCP through the SDK's own client: {statuses}, {len(authorizations)} authorizations"
        f" (expected {EXPECTED_MCP}, {EXPECTED_AUTHORIZATIONS})"
    )


def mcp_instructions(demo: Demo) -> str:
    """How to try the MCP server by hand (``--serve``)."""
    endpoint = f"{demo.mcp}/orgs/acme/mcp/"
    accept = "-H 'Accept: application/json, text/event-stream' -H 'Content-Type: application/json'"
    call = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_projects", "arguments": {}}}'
    return "\n".join(
        [
            f"\nThe MCP server (the MCP SDK's, streamable HTTP): {endpoint}"
            f"  (metadata: {demo.mcp}/.well-known/oauth-protected-resource)",
            f"  curl -i -X POST {accept} -d '{call}' {endpoint}"
            "   # 401 + challenge with resource_metadata: where the metadata is",
            "A token for it names it as the resource (RFC 8707):",
            f"  MCPTOKEN=$(curl -s -u {SERVICE_CLIENT}:{SERVICE_SECRET} -d grant_type=client_credentials"
            f" -d scope=project:read -d resource={demo.mcp} {demo.issuer}/token"
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f"  curl -s -X POST -H \"Authorization: Bearer $MCPTOKEN\" {accept} -d '{call}' {endpoint}   # 200",
            "Or the MCP SDK's own client, which registers itself, signs user-admin in and steps up:",
            f"  {sys.executable} examples/demo_mcp_client.py {endpoint}",
        ]
    )


def serve(
    as_port: int,
    api_port: int,
    gateway_port: int,
    globex_port: int,
    redis_url: str | None = None,
    mcp_port: int = 5004,
) -> None:
    """Run the servers until Ctrl-C, printing commands to try. Each request command ends with
    what it gets: ``# STATUS``, then ``, no challenge`` or ``+ challenge error="..."`` (or
    ``with`` a parameter it carries), then why (tests/examples/test_demo_serve.py checks them)."""
    with demo_servers(as_port, api_port, gateway_port, globex_port, redis_url, mcp_port) as demo:
        issuer, resource = demo.issuer, demo.resource
        print(f"authorization server: {issuer}  (metadata: {issuer}/.well-known/oauth-authorization-server)")
        print(
            f"protected API:        {resource}  (metadata: {resource}/.well-known/oauth-protected-resource)"
        )
        print("\nGet a token (client credentials, a service account in org acme), then call the API:")
        print(
            f"  TOKEN=$(curl -s -u {SERVICE_CLIENT}:{SERVICE_SECRET} -d grant_type=client_credentials"
            f" -d scope=project:read {issuer}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        print(f'  curl -i -H "Authorization: Bearer $TOKEN" {resource}/orgs/acme/projects   # 200')
        print(
            f'  curl -i -X POST -H "Authorization: Bearer $TOKEN" {resource}/orgs/acme/projects'
            "   # 403, no challenge: the service account's role (member) cannot write, so no token would help"
        )
        print(f"\nThrough the gateway ({demo.gateway}): sign in, then call the API as that user:")
        print(
            f"  curl -s -c jar -H 'X-Request-Id: r-1' -H 'Content-Type: application/json'"
            f' -d \'{{"username": "user-admin", "password": "{PASSWORDS["user-admin"]}"}}\' {demo.gateway}/login'
            "   # 200"
        )
        print(f"  curl -s -b jar {demo.gateway}/api/orgs/acme/projects   # 200")
        print(f"\nAn opaque token ({OPAQUE_CLIENT}), which the API checks at {issuer}/introspect:")
        print(
            f"  OPAQUE=$(curl -s -u {OPAQUE_CLIENT}:{OPAQUE_SECRET} -d grant_type=client_credentials"
            f" {issuer}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        print(f'  curl -i -H "Authorization: Bearer $OPAQUE" {resource}/me   # 200')
        print(f"\nglobex's own authorization server ({demo.globex}), trusted for org globex only:")
        print(
            f"  GLOBEX=$(curl -s -u {GLOBEX_SERVICE_CLIENT}:{GLOBEX_SERVICE_SECRET} -d grant_type=client_credentials"
            f" {demo.globex}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
        )
        print(f'  curl -i -H "Authorization: Bearer $GLOBEX" {resource}/orgs/globex/projects   # 200')
        print(
            f'  curl -i -H "Authorization: Bearer $GLOBEX" {resource}/orgs/acme/projects'
            '   # 401 + challenge error="invalid_token": globex\'s server does not speak for acme'
        )
        print("\nDPoP-bound tokens (RFC 9449): curl cannot sign a proof per request, so in Python:")
        # Unindented: Python code, and the heredoc's closing EOF, must start in the first column.
        print(f"{sys.executable} - <<'EOF'")
        print(dpop_snippet(issuer, resource) + "EOF")
        print('  # prints: DPoP token bound to ...; 200; then 401 DPoP ... error="invalid_dpop_proof"')
        print(mcp_instructions(demo))
        print("\nWhat the operators see: the library's metrics, in Prometheus format, and its audit trail:")
        print(f"  curl -s {demo.metrics}   # 200")
        print(f"  tail -f {demo.audit_log}   (one JSON object a line, every decision and security event)")
        print("\nCtrl-C stops the servers.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


#: What :func:`run_script` and :func:`gateway_story` see, and :func:`tenant_story`.
EXPECTED = [200, 403, 201, 401, 403, 403, 200, 403, 403, 201, 200, 201, 200, 401, 401]
EXPECTED_TENANTS = [200, 401, 201, 401]


@dataclass(frozen=True)
class Told:
    """What the stories saw, as the closing lines print it, and whether it was what each expects."""

    lines: list[str]
    ok: bool


def tell_story(demo: Demo) -> Told:
    """Every story, in order, against the running servers."""
    statuses = run_script(demo.issuer, demo.resource, demo.memberships)
    statuses += gateway_story(demo)
    tenants = tenant_story(demo)
    bound = dpop_story(demo)
    mcp = mcp_story(f"{demo.mcp}/orgs/acme/mcp/")
    delegation = delegation_story(demo)
    step_up = step_up_story(demo)
    with httpx.Client(timeout=10) as http:
        mcp_step_up = mcp_step_up_story(
            f"{demo.mcp}/orgs/acme/mcp/",
            second_factor_provider(http, demo.issuer, "user-admin", resource=demo.mcp),
        )
    lines = [
        f"statuses: {statuses} (expected {EXPECTED})",
        f"opaque tokens and the second tenant: {tenants} (expected {EXPECTED_TENANTS})",
        f"DPoP-bound tokens: {bound} (expected {EXPECTED_DPOP})",
        mcp_summary(mcp.statuses, mcp.authorizations),
        f"an agent acting for a person: {delegation} (expected {EXPECTED_DELEGATION})",
        f"step-up authentication: {step_up} (expected {EXPECTED_STEP_UP})",
        f"step-up authentication on an MCP tool: {mcp_step_up} (expected {EXPECTED_MCP_STEP_UP})",
    ]
    told = [
        (statuses, EXPECTED),
        (tenants, EXPECTED_TENANTS),
        (bound, EXPECTED_DPOP),
        (mcp.statuses, EXPECTED_MCP),
        (len(mcp.authorizations), EXPECTED_AUTHORIZATIONS),
        (delegation, EXPECTED_DELEGATION),
        (step_up, EXPECTED_STEP_UP),
        (mcp_step_up, EXPECTED_MCP_STEP_UP),
    ]
    return Told(lines, all(seen == wanted for seen, wanted in told))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help="keep the servers running for manual use")
    parser.add_argument(
        "--as-port", type=int, default=5000, help="with --serve: the authorization server's port"
    )
    parser.add_argument("--api-port", type=int, default=5001, help="with --serve: the API's port")
    parser.add_argument("--gateway-port", type=int, default=5002, help="with --serve: the gateway's port")
    parser.add_argument(
        "--globex-port", type=int, default=5003, help="with --serve: globex's authorization server's port"
    )
    parser.add_argument("--mcp-port", type=int, default=5004, help="with --serve: the MCP server's port")
    parser.add_argument(
        "--redis-url", help="keep the API's replay cache (DPoP proofs, viewer contexts) in Redis"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.as_port, args.api_port, args.gateway_port, args.globex_port, args.redis_url, args.mcp_port)
        return
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # keep the story readable
    with demo_servers(redis_url=args.redis_url) as demo:
        print(
            f"authorization server on {demo.issuer}, API on {demo.resource}, gateway on {demo.gateway},"
            f" globex's authorization server on {demo.globex}, MCP server on {demo.mcp}"
        )
        told = tell_story(demo)
        with httpx.Client(timeout=10) as http:
            summary = read_summary(demo.metrics, demo.audit_log, http)
    print("\n" + "\n".join(told.lines))
    print(format_summary(summary, demo.metrics))
    # The two sources count the same refusals; a difference would be a bug worth a failure.
    agree = sum(summary.refusals.values()) == summary.refused_decisions
    sys.exit(0 if told.ok and agree else 1)


if __name__ == "__main__":
    main()
