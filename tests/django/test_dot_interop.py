"""Interop with a peer nobody here wrote: django-oauth-toolkit as the authorization server.

DOT runs in a process of its own (``tests/django/dot_server.py``: its own settings and SQLite),
on a loopback port, and issues opaque tokens at its token endpoint; the test project's DRF API,
protected by this library with an ``IntrospectionVerifier`` pointed at DOT's RFC 7662 endpoint,
accepts them, scopes and member roles deciding as for any token, refuses one DOT revoked once
its answer's ``cache_ttl`` has run out (the clock is injected, never slept on), and its 403s
carry the ``insufficient_scope`` challenge that DOT's own DRF permission classes do not send
(DRF #8263, DOT #453)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings

from resource_server.django import ResourceServer
from resource_server.tokens.introspection import IntrospectionVerifier
from tests.django.dot_server import (
    API_CLIENT,
    API_SECRET,
    RESOURCE,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    USER_CLIENT,
)
from tests.django.helpers import assert_refused
from tests.django.project import server
from tests.support import FakeClock

ROOT = Path(__file__).resolve().parents[2]
CACHE_TTL = 30
#: The API's own knowledge: who holds which role in which org (DOT knows nothing of orgs).
MEMBERS = {(SERVICE_CLIENT, "acme"): "admin", ("user-1", "acme"): "member", (USER_CLIENT, "acme"): "admin"}


@dataclass(frozen=True)
class Dot:
    url: str
    user_token: str

    def token(self, scope: str, resource: str | None = RESOURCE) -> str:
        """A client-credentials token from DOT's token endpoint (RFC 6749 §4.4), for
        ``resource`` (RFC 8707, DOT's ``aud``)."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if resource is not None:
            form["resource"] = resource
        answer = httpx.post(f"{self.url}/o/token/", data=form, auth=(SERVICE_CLIENT, SERVICE_SECRET))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def revoke(self, token: str) -> None:
        """RFC 7009 at DOT's revocation endpoint, by the client the token was issued to."""
        answer = httpx.post(
            f"{self.url}/o/revoke_token/",
            data={"token": token, "token_type_hint": "access_token"},
            auth=(SERVICE_CLIENT, SERVICE_SECRET),
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def dot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dot]:
    directory = tmp_path_factory.mktemp("dot")
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.django.dot_server", str(directory)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            # Its own settings: not the test project's, which this process's environment names.
            env={
                **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                "PYTHONPATH": str(ROOT),
            },
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once it serves; empty if it died
            assert line, (directory / "server.log").read_text()
            started = json.loads(line)
            yield Dot(started["url"], started["user_token"])
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def api(dot: Dot, clock: FakeClock, endpoint: str = "/o/introspect/", **options: Any) -> ResourceServer:
    """The test project's resource server, with DOT's introspection as its verifier."""
    verifier = IntrospectionVerifier(
        endpoint=dot.url + endpoint,
        client_id=API_CLIENT,
        client_secret=API_SECRET,
        audience=RESOURCE,  # DOT puts the RFC 8707 resource a token was issued for in aud
        cache_ttl=CACHE_TTL,
        clock=clock,
        **options,
    )
    return server.build(
        verifier=verifier,
        membership=lambda subject, org: MEMBERS.get((subject, org)),
        user_for=None,  # request.user: a TokenUser (DOT's service accounts are no Django users here)
        capabilities=None,
    )


def now() -> FakeClock:
    """DOT dates its tokens by the real clock; the API's clock starts there and is advanced."""
    return FakeClock(time.time())


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_dots_tokens_are_accepted_and_its_scopes_decide_with_the_members_role(dot: Dot) -> None:
    reader, writer = dot.token("project:read"), dot.token("project:read project:write")
    with override_settings(RESOURCE_SERVER=api(dot, now())):
        read = Client().get("/orgs/acme/projects", **bearer(reader))
        assert read.status_code == 200, read.content
        seen = read.json()
        assert (seen["subject"], seen["org"], seen["scopes"]) == (SERVICE_CLIENT, "acme", ["project:read"])
        refused = Client().post("/orgs/acme/projects", {}, content_type="application/json", **bearer(reader))
        assert_refused(refused, 403, "insufficient_scope", scope="project:write")
        written = Client().post("/orgs/acme/projects", {}, content_type="application/json", **bearer(writer))
        assert written.status_code == 201, written.content
        # DOT's tokens name no org: the URL's org is asked about, and a non-member gets nothing.
        assert_refused(Client().get("/orgs/globex/projects", **bearer(writer)), 403, "forbidden", scheme=None)


def test_dots_own_drf_permission_sends_no_challenge_to_step_up_from(dot: Dot) -> None:
    """The same under-scoped write, refused by DOT's own classes: a 403 without
    ``WWW-Authenticate``, so a client cannot tell which scope to ask for."""
    reader = dot.token("project:read", resource=None)  # DOT's own view checks the resource itself
    path = f"{dot.url}/dot/orgs/acme/projects"
    assert httpx.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    refused = httpx.post(path, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403 and "WWW-Authenticate" not in refused.headers


def test_a_revoked_token_is_refused_once_its_answer_expires(dot: Dot) -> None:
    token, clock = dot.token("project:read"), now()
    with override_settings(RESOURCE_SERVER=api(dot, clock)):
        assert Client().get("/orgs/acme/projects", **bearer(token)).status_code == 200
        dot.revoke(token)
        # The answer DOT gave is reused for at most cache_ttl seconds: the bound documented for
        # how long a revoked token keeps working here.
        clock.advance(CACHE_TTL - 1)
        assert Client().get("/orgs/acme/projects", **bearer(token)).status_code == 200
        clock.advance(1)
        refused = Client().get("/orgs/acme/projects", **bearer(token))
        assert_refused(refused, 401, "invalid_token", error="invalid_token")


def test_a_token_for_another_resource_is_refused(dot: Dot) -> None:
    other = dot.token("project:read", resource="https://other.test")
    with override_settings(RESOURCE_SERVER=api(dot, now())):
        assert_refused(Client().get("/orgs/acme/projects", **bearer(other)), 401, "invalid_token")


def test_an_introspection_endpoint_that_cannot_answer_is_a_503(dot: Dot) -> None:
    token = dot.token("project:read")
    with override_settings(RESOURCE_SERVER=api(dot, now(), endpoint="/o/no-such-endpoint/")):
        refused = Client().get("/orgs/acme/projects", **bearer(token))
    assert_refused(refused, 503, "temporarily_unavailable", scheme=None)
    assert refused.headers["Retry-After"].isdigit()


def test_a_users_token_names_her_only_as_username_unless_the_answer_has_sub(dot: Dot) -> None:
    """DOT's answer names the user as ``username``, not ``sub``: by default the verifier's
    subject is then the client (RFC 9068 §2.2's rule for tokens without one), and
    ``membership`` is asked about the client. From a server that adds ``sub``, the user is."""
    with override_settings(RESOURCE_SERVER=api(dot, now())):
        stock = Client().get("/orgs/acme/projects", **bearer(dot.user_token))
    assert stock.status_code == 200 and stock.json()["subject"] == USER_CLIENT
    with override_settings(RESOURCE_SERVER=api(dot, now(), endpoint="/o/introspect-sub/")):
        as_user = Client().get("/orgs/acme/projects", **bearer(dot.user_token))
        assert as_user.status_code == 200 and as_user.json()["subject"] == "user-1"
        # her role in acme is member: the write the client's own role would allow is not hers
        refused = Client().post(
            "/orgs/acme/projects", {}, content_type="application/json", **bearer(dot.user_token)
        )
        assert_refused(refused, 403, "forbidden", scheme=None)


def test_subject_claim_username_reads_the_user_from_dots_own_answer(dot: Dot) -> None:
    """``subject_claim="username"`` (docs/django.md), with DOT's stock ``IntrospectTokenView``:
    a user's token is hers, and a client-credentials token (no ``username``) its client's."""
    service = dot.token("project:read project:write")
    with override_settings(RESOURCE_SERVER=api(dot, now(), subject_claim="username")):
        as_user = Client().get("/orgs/acme/projects", **bearer(dot.user_token))
        assert as_user.status_code == 200 and as_user.json()["subject"] == "user-1"
        # her role in acme is member: the write the client's own role would allow is not hers
        refused = Client().post(
            "/orgs/acme/projects", {}, content_type="application/json", **bearer(dot.user_token)
        )
        assert_refused(refused, 403, "forbidden", scheme=None)
        as_service = Client().post(
            "/orgs/acme/projects", {}, content_type="application/json", **bearer(service)
        )
        assert as_service.status_code == 201 and as_service.json()["subject"] == SERVICE_CLIENT
