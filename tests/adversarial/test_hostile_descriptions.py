"""A custom verifier's refusal, whatever its text: the ``InvalidToken`` description (non-ASCII,
controls, quotes, a lone surrogate, very long, not even a string) is answered ``401`` with a
``WWW-Authenticate`` challenge that parses and carries only what RFC 6750 §3 allows in an
``error_description``, never a 500, in every adapter: Flask over real HTTP, the WSGI and the
ASGI middleware. The JSON body keeps a string description as it was given. And a custom
``VerificationUnavailable``'s ``retry_after``, whatever it is, becomes a ``Retry-After`` of whole
seconds."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

from policy import Roles, parse_challenges
from resource_server import InvalidToken, VerificationUnavailable, VerifiedToken, asgi, wsgi
from resource_server.dpop import DPoPVerifier
from resource_server.flask import ResourceServer
from tests.support import serve_wsgi

ROLES = Roles({"member": ["project:read"]})
ROUTES = {"/orgs/{org}/projects": {"GET": "project:read"}}
# RFC 6750 §3: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
DESCRIPTION_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")

DESCRIPTIONS: dict[str, Any] = {
    "accented": "le jeton a expiré",
    "CJK": "令牌已过期",
    "CR LF and a header": "bad\r\nX-Evil: 1",
    "quote and backslash": 'the "kid" \\ is wrong',
    "NUL and a tab": "a\x00b\tc",
    "lone surrogate": "bad \ud800 token",
    "bidi override": "token \u202eexpired",
    "very long": "é" * 20_000,
    "empty": "",
}


class Refusing:
    """A custom verifier (the TokenVerifier protocol, as an application writes one) whose
    every answer is ``InvalidToken(description)``."""

    max_token_bytes = 4096
    clock = staticmethod(time.time)

    def __init__(self, description: Any) -> None:
        self.description = description

    def verify(self, token: str) -> VerifiedToken:
        raise InvalidToken(self.description)


def flask_app(description: Any, **options: Any) -> Flask:
    app = Flask(__name__)
    rs = ResourceServer(
        app, verifier=Refusing(description), roles=ROLES, membership=lambda s, o: "member", **options
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return "never"

    return app


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never"]


def check_refusal(status: int, headers: list[tuple[str, str]], body: bytes, description: Any) -> None:
    assert status == 401, body
    values = [value for name, value in headers if name.lower() == "www-authenticate"]
    assert len(values) == 1, headers
    challenges = parse_challenges(values[0])
    assert challenges[0].get("error") == "invalid_token"
    for challenge in challenges:
        shown = challenge.get("error_description")
        assert shown is None or DESCRIPTION_CHARS.fullmatch(shown), shown
        assert shown is None or len(shown) <= 256
    sent = json.loads(body)
    assert sent["error"] == "invalid_token"
    if isinstance(description, str):
        assert sent["error_description"] == description  # the body may keep the text
    else:
        assert sent["error_description"] == "the token is not valid"  # never str() of an object


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_flask_over_http(name: str) -> None:
    description = DESCRIPTIONS[name]
    with serve_wsgi(flask_app(description)) as base:
        response = httpx.get(f"{base}/orgs/acme/projects", headers={"Authorization": "Bearer t"}, timeout=10)
    check_refusal(response.status_code, list(response.headers.multi_items()), response.content, description)


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_flask_with_dpop(name: str) -> None:
    """The same text in a DPoP challenge (RFC 9449 §7.1), for a DPoP request."""
    description = DESCRIPTIONS[name]
    app = flask_app(description, dpop=DPoPVerifier())
    response = app.test_client().get("/orgs/acme/projects", headers={"Authorization": "DPoP t", "DPoP": "p"})
    check_refusal(response.status_code, list(response.headers.items()), response.get_data(), description)
    assert parse_challenges(response.headers["WWW-Authenticate"])[0].is_scheme("DPoP")


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_wsgi_middleware(name: str) -> None:
    description = DESCRIPTIONS[name]
    middleware = wsgi.BearerMiddleware(
        plain,
        verifier=Refusing(description),
        roles=ROLES,
        membership=lambda s, o: "member",
        routes={"/orgs/<org>/projects": {"GET": "project:read"}},
    )
    response = Client(middleware).get("/orgs/acme/projects", headers={"Authorization": "Bearer t"})
    check_refusal(response.status_code, list(response.headers.items()), response.get_data(), description)


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_asgi_middleware(name: str) -> None:
    description = DESCRIPTIONS[name]
    app = asgi.BearerMiddleware(
        Starlette(routes=[Route("/orgs/{org}/projects", lambda request: PlainTextResponse("never"))]),
        verifier=Refusing(description),
        roles=ROLES,
        membership=lambda s, o: "member",
        routes=ROUTES,
    )
    with TestClient(app) as client:
        response = client.get("/orgs/acme/projects", headers={"Authorization": "Bearer t"})
    check_refusal(response.status_code, list(response.headers.multi_items()), response.content, description)


def test_a_description_that_is_not_a_string_is_not_sent() -> None:
    """``InvalidToken(exc)``: the object's text could hold anything, the token too."""
    leaky = ValueError("could not decode Bearer secret-token-text")
    with serve_wsgi(flask_app(leaky)) as base:
        response = httpx.get(f"{base}/orgs/acme/projects", headers={"Authorization": "Bearer t"}, timeout=10)
    check_refusal(response.status_code, list(response.headers.multi_items()), response.content, leaky)
    assert "secret-token-text" not in response.text + response.headers["WWW-Authenticate"]


def test_the_library_descriptions_are_sent_unchanged() -> None:
    """Plain ASCII text stays as it was: only what RFC 6750 §3 forbids is replaced."""
    for description, shown in [("the token has expired", None), ('the "kid" is wrong', "the ?kid? is wrong")]:
        client = flask_app(description).test_client()
        response = client.get("/orgs/acme/projects", headers={"Authorization": "Bearer t"})
        (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
        assert challenge.get("error_description") == (shown or description)


class Unavailable:
    """A custom verifier whose every answer is ``VerificationUnavailable`` with this
    ``retry_after`` and description."""

    max_token_bytes = 4096
    clock = staticmethod(time.time)

    def __init__(self, retry_after: Any, description: Any) -> None:
        self.retry_after = retry_after
        self.description = description

    def verify(self, token: str) -> VerifiedToken:
        raise VerificationUnavailable(self.description, retry_after=self.retry_after)


RETRY_AFTERS: dict[str, tuple[Any, str]] = {
    "30": (30, "30"),
    "0": (0, "1"),
    "negative": (-5, "1"),
    "a float": (2.9, "2"),
    "a numeric string": ("7", "7"),
    "a googol": (10**100, "86400"),
    "NaN": (float("nan"), "5"),
    "infinity": (float("inf"), "5"),
    "a word": ("soon", "5"),
    "None": (None, "5"),
    "a list": ([1], "5"),
}


@pytest.mark.parametrize("name", RETRY_AFTERS)
def test_a_custom_retry_after_is_sent_as_whole_seconds(name: str) -> None:
    """RFC 9110 §10.2.3: delay-seconds. A custom verifier's value that is no finite number is
    5 seconds, never a 500; the delay is at least 1 second and at most a day."""
    retry_after, sent = RETRY_AFTERS[name]
    middleware = wsgi.BearerMiddleware(
        plain,
        verifier=Unavailable(retry_after, description=["not", "a", "string"]),
        roles=ROLES,
        membership=lambda s, o: "member",
        routes={"/orgs/<org>/projects": {"GET": "project:read"}},
    )
    response = Client(middleware).get("/orgs/acme/projects", headers={"Authorization": "Bearer t"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == sent
    assert response.get_json()["error"] == "temporarily_unavailable"
