"""Exact limits an attacker probes: the length of a raw ECDSA signature (RFC 7518 §3.4), the 4 KiB
cap on a DPoP proof (RFC 9449), and the size cap of :class:`TrustedIssuers` itself. Each is shown
with a credential that is correct in every other way (really signed, fresh, for this request), so
the refusal can only come from the limit under test, seen where a caller sees it: an exception
from the verifier, a ``401`` from the WSGI middleware."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client

from policy import Roles, parse_challenges
from resource_server import JWTVerifier, TrustedIssuers
from resource_server.dpop import DPoPVerifier, InvalidDPoPProof
from resource_server.tokens import InvalidToken
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, FakeClock, ProofSigner, Signer, b64url, dpop_key, es256, jwks

RESOURCE = "https://api.test"
URL = f"{RESOURCE}/orgs/acme/projects"
ROLES = Roles({"member": ["project:read"]})
#: RFC 9449 leaves the size open; this library refuses proofs over 4 KiB (resource_server.dpop).
PROOF_CAP = 4096


def membership(subject: str, org: str | None) -> str | None:
    return "member" if (subject, org) == ("user-1", "acme") else None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"reached": true}']


def client(signer: Signer, *, dpop: bool = False) -> Client:
    clock = FakeClock()
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=clock)
    middleware = BearerMiddleware(
        app,
        verifier=verifier,
        roles=ROLES,
        membership=membership,
        routes={"/orgs/<org>/projects": {"GET": "project:read"}},
        dpop=DPoPVerifier(clock=clock) if dpop else None,
        resource=RESOURCE,
    )
    return Client(middleware)


def refusal(response: Any, error: str) -> str:
    """The ``error_description`` of a 401 with ``error``, in the body and the challenge."""
    assert response.status_code == 401, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error
    challenges = parse_challenges(response.headers["WWW-Authenticate"])
    assert any(c.get("error") == error for c in challenges)
    return str(body["error_description"])


# -- a raw ECDSA signature has exactly one length (RFC 7518 §3.4) ----------------------------------


def zero_before_s(jws: str) -> str:
    """The same JWS with a zero byte inserted between R and S: read as two big-endian integers
    split in the middle of the 65 bytes, R and S would still come out as the signed values
    (``int.from_bytes`` ignores a leading zero), so the signature would verify. RFC 7518 §3.4
    fixes R || S at 64 bytes for P-256: one JWS, one encoding."""
    head, _, signature = jws.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert len(raw) == 64
    stretched = raw[:32] + bytes(1) + raw[32:]
    return f"{head}.{b64url(stretched)}"


def test_an_access_token_with_a_zero_byte_before_s_is_refused() -> None:
    signer = es256("malleable-1")
    token = signer.token()
    assert JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=FakeClock()).verify(token)
    stretched = zero_before_s(token)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=FakeClock())
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(stretched)
    api = client(signer)
    assert api.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    response = api.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {stretched}"})
    assert "signature" in refusal(response, "invalid_token")


def test_a_dpop_proof_with_a_zero_byte_before_s_is_refused() -> None:
    key = dpop_key("ES256")
    verifier = DPoPVerifier(clock=FakeClock())
    proof = key.proof("GET", URL, access_token="tok")
    with pytest.raises(InvalidDPoPProof, match="signature"):
        verifier.verify(zero_before_s(proof), method="GET", url=URL, access_token="tok")
    # Refused as a forgery, so its jti was never recorded: the proof as signed is still good.
    assert verifier.verify(proof, method="GET", url=URL, access_token="tok").jkt == key.jkt

    signer = es256("malleable-2")
    api = client(signer, dpop=True)
    token = signer.token(cnf={"jkt": key.jkt})
    stretched = zero_before_s(key.proof("GET", URL, access_token=token))
    response = api.get("/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": stretched})
    assert "signature" in refusal(response, "invalid_dpop_proof")


# -- a DPoP proof is at most 4 KiB, however well signed --------------------------------------------


def padded(key: ProofSigner, *, over: bool, access_token: str) -> str:
    """A real, correctly signed proof for ``URL`` padded (with an extra claim, which RFC 9449
    §4.2 allows) to the longest length within the cap, or the shortest beyond it."""
    base = len(key.proof("GET", URL, access_token=access_token, pad=""))
    guess = (PROOF_CAP - base) * 3 // 4
    lengths = {
        n: len(key.proof("GET", URL, access_token=access_token, pad="x" * n))
        for n in range(guess - 8, guess + 8)
    }
    if over:
        n = min(n for n, length in lengths.items() if length > PROOF_CAP)
    else:
        n = max(n for n, length in lengths.items() if length <= PROOF_CAP)
    proof = key.proof("GET", URL, access_token=access_token, pad="x" * n)
    assert (len(proof) > PROOF_CAP) is over and abs(len(proof) - PROOF_CAP) <= 4
    return proof


def test_a_signed_proof_past_4_kib_is_refused_and_one_within_is_accepted() -> None:
    key = dpop_key("ES256")
    verifier = DPoPVerifier(clock=FakeClock())
    within = padded(key, over=False, access_token="tok")
    assert verifier.verify(within, method="GET", url=URL, access_token="tok").jkt == key.jkt
    beyond = padded(key, over=True, access_token="tok")
    with pytest.raises(InvalidDPoPProof, match="too large"):
        verifier.verify(beyond, method="GET", url=URL, access_token="tok")

    signer = es256("padded-1")
    api = client(signer, dpop=True)
    token = signer.token(cnf={"jkt": key.jkt})

    def get(proof: str) -> Any:
        return api.get("/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": proof})

    assert get(padded(key, over=False, access_token=token)).status_code == 200
    assert "too large" in refusal(get(padded(key, over=True, access_token=token)), "invalid_dpop_proof")


# -- TrustedIssuers refuses an oversized JWS before reading any of it -------------------------------


def jws_shaped(payload: dict[str, Any] | bytes, size: int) -> str:
    """A compact JWS of about ``size`` characters whose payload is ``payload`` (padded with a
    claim) or raw bytes; its signature is a placeholder: the size is checked before any key."""
    header = b64url(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "k"}).encode())
    if isinstance(payload, dict):
        payload = json.dumps({**payload, "pad": "x" * size}).encode()
    return f"{header}.{b64url(payload)}.{b64url(bytes(64))}"


@pytest.mark.parametrize(
    "payload",
    [{"iss": "https://stranger.test"}, b"not json at all " * 700, {"iss": ISSUER}],
    ids=["unknown issuer", "payload not JSON", "trusted issuer"],
)
def test_trusted_issuers_refuses_an_oversized_jws_as_too_large(payload: Any) -> None:
    """Called directly, as :class:`~resource_server.mcp.McpTokenVerifier` and any application
    code call a verifier (the guards cap the header first). A JWS-shaped token over the cap is
    "too large" whatever its payload says: its payload is neither decoded nor routed."""
    trusted = TrustedIssuers(
        [JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es256("t-1")), clock=FakeClock())]
    )
    token = jws_shaped(payload, trusted.max_token_bytes)
    assert len(token) > trusted.max_token_bytes
    with pytest.raises(InvalidToken) as caught:
        trusted.verify(token)
    assert caught.value.description == "the token is too large"
