"""Hostile Authorization headers and tokens through a real Flask app: never a 500, never a hang."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from tests.support import AUDIENCE, ISSUER, es256, jwks

SIGNER = es256()


def make_client():
    app = Flask(__name__)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER))
    rs = ResourceServer(
        app, verifier=verifier, roles=Roles({"admin": ["project:read"]}), membership=lambda s, o: "admin"
    )
    app.add_url_rule("/orgs/<org>/p", "p", rs.require({"GET": "project:read"})(lambda org: "ok"))
    return app.test_client()


CLIENT = make_client()
# Header values as WSGI delivers them: latin-1 text without CR/LF/NUL.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=300
)
b64ish = st.text(st.sampled_from("ABCxyz0129-_.~+/=\"', \t"), min_size=0, max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(header_text, b64ish.map(lambda t: "Bearer " + t), header_text.map(lambda t: "Bearer " + t)))
def test_any_authorization_value_is_400_or_401(value: str) -> None:
    response = CLIENT.get("/orgs/acme/p", headers={"Authorization": value})
    assert response.status_code in (400, 401), value
    assert "Traceback" not in response.get_data(as_text=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.sampled_from("ABCabc0123-_"), min_size=1, max_size=80), min_size=1, max_size=6))
def test_random_segments_are_401(segments: list[str]) -> None:
    response = CLIENT.get("/orgs/acme/p", headers={"Authorization": "Bearer " + ".".join(segments)})
    assert response.status_code == 401


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_real_header_with_random_payload_and_signature(payload: bytes) -> None:
    import base64

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = SIGNER.token().split(".")[0]
    token = f"{head}.{b64(payload)}.{b64(payload[::-1])}" if payload else f"{head}.e30.e30"
    response = CLIENT.get("/orgs/acme/p", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize("prefix", ["Bearer ", "Basic ", "Bearer", ""])
def test_a_5_mb_header_is_refused_quickly(prefix: str) -> None:
    started = time.perf_counter()
    response = CLIENT.get("/orgs/acme/p", headers={"Authorization": prefix + "a" * (5 * 1024 * 1024)})
    assert response.status_code == 401
    assert time.perf_counter() - started < 2  # a hang guard, not a benchmark
