"""Text no one expects, at the demo's doors, over real HTTP: a password that is not ASCII, or is a
lone surrogate (JSON's ``"\\ud800"``), at the API's and the gateway's logins; Basic client
credentials that are not base64 of UTF-8 at the authorization server; a forwarded header holding
obs-text at the gateway. Each is a 4xx, or goes through, never a 500 (``hmac.compare_digest``
raises ``TypeError`` on a non-ASCII ``str``; Authlib does not catch a ``UnicodeDecodeError``;
httpx encodes a ``str`` header value as ASCII)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import Demo, demo_servers
from demo_auth_server import PASSWORDS, SERVICE_CLIENT, SERVICE_SECRET


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running_demo:  # every port chosen by the OS
        yield running_demo


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def login_body(password: str, username: str = "user-admin") -> bytes:
    """The JSON a client sends; ``json.dumps`` writes a lone surrogate as its ``\\ud800`` escape."""
    return json.dumps({"username": username, "password": password}).encode()


WRONG_PASSWORDS = {
    "accented": "pässword",
    "CJK": "密码",
    "lone surrogate": "\ud800",
    "the right one, then a surrogate": PASSWORDS["user-admin"] + "\udfff",
    "NUL": "\x00",
}


@pytest.mark.parametrize("name", WRONG_PASSWORDS)
@pytest.mark.parametrize("door", ["resource", "gateway"])
def test_a_login_with_a_password_of_any_text_is_401(
    demo: Demo, http: httpx.Client, door: str, name: str
) -> None:
    response = http.post(
        f"{getattr(demo, door)}/login",
        content=login_body(WRONG_PASSWORDS[name]),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("door", ["resource", "gateway"])
def test_a_user_with_a_non_ascii_name_is_401_and_the_right_password_still_signs_in(
    demo: Demo, http: httpx.Client, door: str
) -> None:
    base = getattr(demo, door)
    headers = {"Content-Type": "application/json"}
    wrong = http.post(f"{base}/login", content=login_body("x", username="usér"), headers=headers)
    assert wrong.status_code == 401
    right = http.post(f"{base}/login", content=login_body(PASSWORDS["user-admin"]), headers=headers)
    assert right.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [b"svc:\xe9", b"\xff:\xfe", SERVICE_CLIENT.encode() + b":" + SERVICE_SECRET.encode("utf-16")],
    ids=["latin-1 secret", "not text", "UTF-16 secret"],
)
@pytest.mark.parametrize("endpoint", ["token", "introspect"])
def test_basic_credentials_that_are_not_utf8_are_invalid_client(
    demo: Demo, http: httpx.Client, endpoint: str, credentials: bytes
) -> None:
    """RFC 7617 §2.1: Basic credentials are UTF-8; RFC 6749 §5.2: a client that cannot
    authenticate is 401 ``invalid_client``."""
    response = http.post(
        f"{demo.issuer}/{endpoint}",
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_basic_credentials_that_are_not_even_ascii_are_invalid_client(demo: Demo, http: httpx.Client) -> None:
    response = http.post(
        f"{demo.issuer}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": b"Basic \xe9t\xe9"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_the_gateway_forwards_obs_text_as_the_octets_it_received(demo: Demo, http: httpx.Client) -> None:
    """RFC 9110 §5.5: obs-text is opaque data; the API sees the bytes the client sent."""
    login = http.post(
        f"{demo.gateway}/login",
        content=login_body(PASSWORDS["user-admin"]),
        headers={"Content-Type": "application/json", "X-Request-Id": b"r\xc3\xa9q-\xff"},
    )
    assert login.status_code == 200, login.text
    assert "X-Request-Id" in login.json()["forwarded_headers"]
    through = http.get(f"{demo.gateway}/api/orgs/acme/projects", headers={"Content-Type": b"text/pl\xe4in"})
    assert through.status_code == 200, through.text
    assert through.json()["via"]["X-Request-Id"] == b"r\xc3\xa9q-\xff".decode("latin-1")
