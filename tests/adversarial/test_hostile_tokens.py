"""Hostile access tokens: each one must end in InvalidToken, with a description that leaks nothing.

Every malformed token is really signed with a real private key (its signing input hand-built where
PyJWT would refuse to produce it), so the only defect in it is the one under test.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resource_server import InvalidToken, JWTVerifier, VerifiedToken
from tests.support import (
    AUDIENCE,
    DROP,
    ISSUER,
    FakeClock,
    JWKSServer,
    Signer,
    b64url,
    eddsa,
    es256,
    jwks,
    rs256,
)

NOW = 1_900_000_000
MB5 = 5 * 1024 * 1024
#: A hang guard, not a benchmark: the CPU time of this thread (``time.thread_time``, which load
#: elsewhere on the machine does not inflate) a refusal may take; these take milliseconds.
HANG_GUARD_CPU_SECONDS = 2
#: Placed in hostile claim and header values; a refusal must never echo it.
MARK = "MARK-c4f1e2"


@dataclass(frozen=True)
class Keys:
    es: Signer
    rs: Signer
    ed: Signer
    attacker_es: Signer
    attacker_rs: Signer
    attacker_cert: str  # base64 DER of a self-signed certificate for attacker_es (for x5c)


@pytest.fixture(scope="module")
def keys() -> Keys:
    attacker_es = es256("attacker")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "as.test")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(attacker_es.private_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .sign(attacker_es.private_key, hashes.SHA256())
    )
    return Keys(
        es=es256("es-1"),
        rs=rs256("rs-1"),
        ed=eddsa("ed-1"),
        attacker_es=attacker_es,
        attacker_rs=rs256("attacker-rs"),
        attacker_cert=base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode(),
    )


def new_verifier(keys: Keys, **options: Any) -> JWTVerifier:
    return JWTVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks=jwks(keys.es, keys.rs, keys.ed),
        clock=FakeClock(NOW),
        **options,
    )


@pytest.fixture(scope="module")
def verifier(keys: Keys) -> JWTVerifier:
    return new_verifier(keys)


@pytest.fixture(scope="module")
def roomy(keys: Keys) -> JWTVerifier:
    """A large size limit, so that parsing (not the size check) meets the hostile content."""
    return new_verifier(keys, max_token_bytes=4 * 1024 * 1024)


def refuse(verifier: JWTVerifier, token: Any, fragment: str = "") -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    description = caught.value.description
    assert description == str(caught.value)
    assert fragment in description
    assert MARK not in description
    if isinstance(token, str):
        assert token not in description or len(token) < 12
        for segment in token.split("."):
            assert len(segment) < 12 or segment not in description
    assert len(description) < 200
    return caught.value


# -- building blocks -------------------------------------------------------------------------------


def header_of(signer: Signer, **members: Any) -> dict[str, Any]:
    header = {"alg": signer.algorithm, "typ": "at+jwt", "kid": signer.kid, **members}
    return {k: v for k, v in header.items() if v is not DROP}


def payload_of(signer: Signer, **claims: Any) -> dict[str, Any]:
    return signer.claims(NOW, **claims)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def signature(signer: Signer, signing_input: str) -> str:
    raw = jwt.get_algorithm_by_name(signer.algorithm).sign(signing_input.encode(), signer.private_key)
    return b64url(raw)


def signed_segments(signer: Signer, header_segment: str, payload_segment: str) -> str:
    """A token from raw segments, signed over exactly those segments."""
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{signature(signer, signing_input)}"


def signed_text(signer: Signer, header: str | bytes, payload: str | bytes) -> str:
    """A token from raw JSON text (duplicate members, odd numbers and bad UTF-8 survive)."""
    as_bytes = [part.encode() if isinstance(part, str) else part for part in (header, payload)]
    return signer.sign(*as_bytes)


def sign_as(alg: str, signer: Signer, header: dict[str, Any]) -> str:
    """Sign with ``signer``'s private key under another algorithm of the same key type."""
    signing_input = f"{b64url(dumps(header))}.{b64url(dumps(payload_of(signer)))}"
    raw = jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), signer.private_key)
    return f"{signing_input}.{b64url(raw)}"


def good(keys: Keys) -> str:
    return keys.es.token(now=NOW)


def unsigned(alg: str, keys: Keys, signature_segment: str = "") -> str:
    header = b64url(dumps({"alg": alg, "typ": "at+jwt", "kid": keys.es.kid}))
    return f"{header}.{b64url(dumps(payload_of(keys.es, sub='admin')))}.{signature_segment}"


def with_duplicate(json_text: str, member: str) -> str:
    return json_text[:-1] + f", {member}}}"


def std_b64_segment(char: str, base: dict[str, Any]) -> tuple[str, bytes]:
    """A JSON object whose *standard* base64 form contains ``char`` ("+" or "/").

    "?" (0x3F) and ">" (0x3E) as the last byte of a 3-byte group encode as "/" and "+". Padding of
    0, 1 and 2 characters *before* the pattern moves it through every offset, so one of the three
    always holds ``char``, whatever the length of ``base`` (its jti, say)."""
    for pad in range(3):
        raw = dumps({**base, "x": "a" * pad + "?>~" * 2})
        segment = base64.b64encode(raw).decode().rstrip("=")
        if char in segment:
            return segment, raw
    raise AssertionError(f"no segment with {char!r}")


def padded_segment(base: dict[str, Any]) -> str:
    for n in range(3):
        raw = dumps({**base, "x": "a" * n})
        if len(raw) % 3:
            return base64.urlsafe_b64encode(raw).decode()
    raise AssertionError("unreachable")


def impossible_length(segment: str) -> str:
    """Extend a segment to a length no base64url string can have (≡ 1 mod 4)."""
    return segment + "A" * ((1 - len(segment)) % 4 or 4)


# -- the hostile token table -----------------------------------------------------------------------

Build = Callable[[Keys], str]


def case_table() -> dict[str, tuple[Build, str]]:
    es_payload = lambda k: json.dumps(payload_of(k.es))  # noqa: E731
    es_header = lambda k: json.dumps(header_of(k.es))  # noqa: E731
    cases: dict[str, tuple[Build, str]] = {
        # alg
        "alg none, empty signature": (lambda k: unsigned("none", k), "compact"),
        "alg None, empty signature": (lambda k: unsigned("None", k), "compact"),
        "alg NONE, empty signature": (lambda k: unsigned("NONE", k), "compact"),
        "alg none with a signature": (lambda k: unsigned("none", k, "c2ln"), "algorithm"),
        "alg None with a signature": (lambda k: unsigned("None", k, "c2ln"), "algorithm"),
        "alg NONE with a signature": (lambda k: unsigned("NONE", k, "c2ln"), "algorithm"),
        "alg nOnE with a signature": (lambda k: unsigned("nOnE", k, "c2ln"), "algorithm"),
        "alg missing": (lambda k: k.es.token(now=NOW, headers={"alg": DROP}), "algorithm"),
        "alg null": (lambda k: k.es.token(now=NOW, headers={"alg": None}), "algorithm"),
        "alg a list": (lambda k: k.es.token(now=NOW, headers={"alg": ["ES256"]}), "algorithm"),
        "alg lower case es256": (lambda k: k.es.token(now=NOW, headers={"alg": "es256"}), "algorithm"),
        "alg RS256 in the header, kid of the ES256 key": (
            lambda k: k.es.token(now=NOW, headers={"alg": "RS256"}),
            "algorithm",
        ),
        "alg ES256 in the header, kid of the RS256 key": (
            lambda k: k.rs.token(now=NOW, headers={"alg": "ES256"}),
            "algorithm",
        ),
        "alg EdDSA in the header, kid of the ES256 key": (
            lambda k: k.es.token(now=NOW, headers={"alg": "EdDSA"}),
            "algorithm",
        ),
        "alg ES384 in the header, kid of the ES256 key": (
            lambda k: k.es.token(now=NOW, headers={"alg": "ES384"}),
            "algorithm",
        ),
        "alg PS256, a real PSS signature by the RS256 key": (
            lambda k: sign_as("PS256", k.rs, {"alg": "PS256", "typ": "at+jwt", "kid": k.rs.kid}),
            "algorithm",
        ),
        "alg RS256 by an attacker RSA key, kid of the ES256 key": (
            lambda k: Signer(k.es.kid, "RS256", k.attacker_rs.private_key).token(now=NOW),
            "algorithm",
        ),
        # duplicate members
        "header: alg twice": (
            lambda k: signed_text(k.es, with_duplicate(es_header(k), '"alg": "ES256"'), es_payload(k)),
            "duplicate",
        ),
        "header: alg none then ES256": (
            lambda k: signed_text(
                k.es, '{"alg": "none", "typ": "at+jwt", "kid": "es-1", "alg": "ES256"}', es_payload(k)
            ),
            "duplicate",
        ),
        "header: kid twice": (
            lambda k: signed_text(k.es, with_duplicate(es_header(k), '"kid": "rs-1"'), es_payload(k)),
            "duplicate",
        ),
        "header: typ twice": (
            lambda k: signed_text(k.es, with_duplicate(es_header(k), '"typ": "JWT"'), es_payload(k)),
            "duplicate",
        ),
        "payload: sub twice": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), '"sub": "admin"')),
            "duplicate",
        ),
        "payload: scope twice": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), '"scope": "org:admin"')),
            "duplicate",
        ),
        "payload: exp twice": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), f'"exp": {NOW + 10**6}')),
            "duplicate",
        ),
        "payload: iss twice": (
            lambda k: signed_text(
                k.es, es_header(k), with_duplicate(es_payload(k), '"iss": "https://x.test"')
            ),
            "duplicate",
        ),
        "payload: org_id twice": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), '"org_id": "globex"')),
            "duplicate",
        ),
        "payload: sub twice, once escaped": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), '"\\u0073ub": "admin"')),
            "duplicate",
        ),
        "payload: duplicate inside a nested object": (
            lambda k: signed_text(
                k.es, es_header(k), with_duplicate(es_payload(k), '"cnf": {"a": 1, "a": 2}')
            ),
            "duplicate",
        ),
        # crit
        "crit naming exp": (lambda k: k.es.token(now=NOW, headers={"crit": ["exp"], "exp": NOW}), "critical"),
        "crit b64 false": (
            lambda k: k.es.token(now=NOW, headers={"crit": ["b64"], "b64": False}),
            "critical",
        ),
        "crit empty list": (lambda k: k.es.token(now=NOW, headers={"crit": []}), "critical"),
        "crit null": (lambda k: k.es.token(now=NOW, headers={"crit": None}), "critical"),
        # keys named or carried by the token itself
        "embedded jwk, attacker kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"jwk": k.attacker_es.jwk}),
            "unknown key",
        ),
        "embedded jwk, real kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"jwk": k.attacker_es.jwk, "kid": k.es.kid}),
            "signature",
        ),
        "embedded jwk, no kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"jwk": k.attacker_es.jwk, "kid": DROP}),
            "unknown key",
        ),
        "jku to an attacker set, attacker kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"jku": "https://evil.test/jwks.json"}),
            "unknown key",
        ),
        "jku to an attacker set, real kid": (
            lambda k: k.attacker_es.token(
                now=NOW, headers={"jku": "https://evil.test/jwks.json", "kid": k.es.kid}
            ),
            "signature",
        ),
        "x5u to an attacker certificate": (
            lambda k: k.attacker_es.token(
                now=NOW, headers={"x5u": "https://evil.test/cert.pem", "kid": k.es.kid}
            ),
            "signature",
        ),
        "x5c with an attacker certificate, real kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"x5c": [k.attacker_cert], "kid": k.es.kid}),
            "signature",
        ),
        "x5c with an attacker certificate, no kid": (
            lambda k: k.attacker_es.token(now=NOW, headers={"x5c": [k.attacker_cert], "kid": DROP}),
            "unknown key",
        ),
        # kid
        "kid unknown": (lambda k: k.es.token(now=NOW, headers={"kid": f"{MARK}-unknown"}), "unknown key"),
        "kid path traversal": (
            lambda k: k.es.token(now=NOW, headers={"kid": "../../etc/passwd"}),
            "unknown key",
        ),
        "kid a URL": (
            lambda k: k.es.token(now=NOW, headers={"kid": "https://evil.test/key.json"}),
            "unknown key",
        ),
        "kid empty": (lambda k: k.es.token(now=NOW, headers={"kid": ""}), "unknown key"),
        "kid with a NUL": (lambda k: k.es.token(now=NOW, headers={"kid": "es-1\x00"}), "unknown key"),
        "kid SQL-looking": (lambda k: k.es.token(now=NOW, headers={"kid": "' OR '1'='1"}), "unknown key"),
        "kid null, several keys": (lambda k: k.es.token(now=NOW, headers={"kid": None}), "unknown key"),
        "kid a number": (lambda k: k.es.token(now=NOW, headers={"kid": 1}), "kid"),
        "kid a list": (lambda k: k.es.token(now=NOW, headers={"kid": ["es-1"]}), "kid"),
        "kid an object": (lambda k: k.es.token(now=NOW, headers={"kid": {"kid": "es-1"}}), "kid"),
        "kid true": (lambda k: k.es.token(now=NOW, headers={"kid": True}), "kid"),
        # signatures
        "signature by another key under the same kid": (
            lambda k: Signer(k.es.kid, "ES256", k.attacker_es.private_key).token(now=NOW),
            "signature",
        ),
        "signature by another RSA key under the same kid": (
            lambda k: Signer(k.rs.kid, "RS256", k.attacker_rs.private_key).token(now=NOW),
            "signature",
        ),
        "signature of another token": (
            lambda k: good(k).rsplit(".", 1)[0] + "." + k.es.token(now=NOW, sub="other").rsplit(".", 1)[1],
            "signature",
        ),
        "signature all zero (r = s = 0)": (
            lambda k: good(k).rsplit(".", 1)[0] + "." + b64url(bytes(64)),
            "signature",
        ),
        "signature cut by 4 characters": (lambda k: good(k)[:-4], "signature"),
        "signature cut to 2 characters": (lambda k: good(k).rsplit(".", 1)[0] + "." + "AA", "signature"),
        "signature missing": (lambda k: good(k).rsplit(".", 1)[0] + ".", "compact"),
        "payload cut by 4 characters": (  # parsed before the key is looked up: its JSON fails first
            lambda k: ".".join(_cut(good(k).split("."), 1, 4)),
            "JSON",
        ),
        "token cut in half": (lambda k: good(k)[: len(good(k)) // 2], ""),
        "header of one token, payload of another": (
            lambda k: ".".join([k.rs.token(now=NOW).split(".")[0], *good(k).split(".")[1:]]),
            "signature",
        ),
        # JSON shape and content
        "header an array": (lambda k: signed_text(k.es, '["ES256", "at+jwt"]', es_payload(k)), "JSON object"),
        "header a string": (lambda k: signed_text(k.es, '"ES256"', es_payload(k)), "JSON object"),
        "header null": (lambda k: signed_text(k.es, "null", es_payload(k)), "JSON object"),
        "header a number": (lambda k: signed_text(k.es, "256", es_payload(k)), "JSON object"),
        "header not JSON": (lambda k: signed_text(k.es, "{alg: ES256}", es_payload(k)), "JSON"),
        "header invalid UTF-8": (
            lambda k: signed_text(
                k.es, b'{"alg": "ES256", "typ": "at+jwt", "kid": "es-1\xff"}', es_payload(k)
            ),
            "JSON",
        ),
        "payload an array": (lambda k: signed_text(k.es, es_header(k), '[{"sub": "admin"}]'), "JSON object"),
        "payload a string": (lambda k: signed_text(k.es, es_header(k), '"admin"'), "JSON object"),
        "payload null": (lambda k: signed_text(k.es, es_header(k), "null"), "JSON object"),
        "payload true": (lambda k: signed_text(k.es, es_header(k), "true"), "JSON object"),
        "payload not JSON": (lambda k: signed_text(k.es, es_header(k), "sub=admin"), "JSON"),
        "payload with trailing data": (
            lambda k: signed_text(k.es, es_header(k), es_payload(k) + " {}"),
            "JSON",
        ),
        "payload with a byte-order mark": (
            lambda k: signed_text(k.es, es_header(k), b"\xef\xbb\xbf" + es_payload(k).encode()),
            "JSON",
        ),
        "payload invalid UTF-8": (
            lambda k: signed_text(
                k.es, es_header(k), es_payload(k).replace("user-1", "user-\xff").encode("latin-1")
            ),
            "JSON",
        ),
        "payload overlong UTF-8": (
            lambda k: signed_text(k.es, es_header(k), es_payload(k).encode()[:-1] + b', "x": "\xc0\xaf"}'),
            "JSON",
        ),
        "payload UTF-8 encoded surrogate": (
            lambda k: signed_text(
                k.es, es_header(k), es_payload(k).encode()[:-1] + b', "x": "\xed\xa0\x80"}'
            ),
            "JSON",
        ),
        "payload UTF-16": (lambda k: signed_text(k.es, es_header(k), es_payload(k).encode("utf-16")), "JSON"),
        "payload NaN": (
            lambda k: signed_text(k.es, es_header(k), with_duplicate(es_payload(k), '"x": NaN')),
            "number",
        ),
        "payload Infinity exp": (
            lambda k: signed_text(k.es, es_header(k), json.dumps({**payload_of(k.es), "exp": float("inf")})),
            "number",
        ),
        "payload -Infinity nbf": (
            lambda k: signed_text(k.es, es_header(k), json.dumps({**payload_of(k.es), "nbf": float("-inf")})),
            "number",
        ),
        "payload exp 1e400 (a float overflowing to inf)": (
            lambda k: signed_text(
                k.es, es_header(k), es_payload(k).replace(f'"exp": {NOW + 600}', '"exp": 1e400')
            ),
            "non-standard JSON number",  # refused by the parser: JSON has no infinity
        ),
        # huge integers (under the 4300-digit parsing limit) must fail as claims, not crash
        "exp a 400-digit integer, no iat": (
            lambda k: k.es.token(now=NOW, iat=DROP, exp=10**400),
            "lifetime",
        ),
        "exp a 400-digit integer, with iat": (lambda k: k.es.token(now=NOW, exp=10**400), "lifetime"),
        "iat a negative 400-digit integer": (lambda k: k.es.token(now=NOW, iat=-(10**400)), "lifetime"),
        "nbf a 400-digit integer": (lambda k: k.es.token(now=NOW, nbf=10**400), "not valid yet"),
        "exp a negative 400-digit integer": (lambda k: k.es.token(now=NOW, exp=-(10**400)), "expired"),
        # confirmation (cnf, RFC 7800 §3.1): a binding this server cannot check refuses the token
        "cnf x5t#S256 (RFC 8705 certificate-bound)": (
            lambda k: k.es.token(now=NOW, cnf={"x5t#S256": f"{MARK}-bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89"}),
            "x5t#S256",
        ),
        "cnf jwk (RFC 7800)": (lambda k: k.es.token(now=NOW, cnf={"jwk": k.attacker_es.jwk}), "cnf jwk"),
        "cnf jkt beside an unknown member": (
            lambda k: k.es.token(
                now=NOW, cnf={"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", MARK: 1}
            ),
            "does not know",
        ),
        "cnf a string": (lambda k: k.es.token(now=NOW, cnf=MARK), "cnf claim"),
        "cnf null": (lambda k: k.es.token(now=NOW, cnf=None), "cnf claim"),
        "cnf empty": (lambda k: k.es.token(now=NOW, cnf={}), "cnf claim"),
        "cnf.jkt empty": (lambda k: k.es.token(now=NOW, cnf={"jkt": ""}), "cnf.jkt"),
        "cnf.jkt an integer": (lambda k: k.es.token(now=NOW, cnf={"jkt": 123}), "cnf.jkt"),
        "cnf.jkt a list": (lambda k: k.es.token(now=NOW, cnf={"jkt": [MARK]}), "cnf.jkt"),
        "cnf.jkt a thousand characters": (lambda k: k.es.token(now=NOW, cnf={"jkt": "A" * 1000}), "cnf.jkt"),
        # serialization (RFC 7515 §7.1 compact form only)
        "empty string": (lambda k: "", "compact"),
        "two segments": (lambda k: good(k).rsplit(".", 1)[0], "compact"),
        "four segments": (lambda k: good(k) + ".c2ln", "compact"),
        "five segments (JWE-like)": (
            lambda k: ".".join(
                [b64url(dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": k.rs.kid}))]
                + [b64url(bytes(range(n, n + 16))) for n in (1, 2, 3, 4)]
            ),
            "compact",
        ),
        "empty header segment": (lambda k: "." + good(k).split(".", 1)[1], "compact"),
        "empty payload segment": (
            lambda k: signed_segments(k.es, b64url(dumps(header_of(k.es))), ""),
            "compact",
        ),
        "padding on the signature": (lambda k: good(k) + "==", "compact"),
        "padding on the header, signed over the padded form": (
            lambda k: signed_segments(k.es, padded_segment(header_of(k.es)), b64url(dumps(payload_of(k.es)))),
            "compact",
        ),
        "'+' in the header (standard base64), signed": (
            lambda k: signed_segments(
                k.es, std_b64_segment("+", header_of(k.es))[0], b64url(dumps(payload_of(k.es)))
            ),
            "compact",
        ),
        "'/' in the payload (standard base64), signed": (
            lambda k: signed_segments(
                k.es, b64url(dumps(header_of(k.es))), std_b64_segment("/", payload_of(k.es))[0]
            ),
            "compact",
        ),
        "header length 1 mod 4, signed": (
            lambda k: signed_segments(
                k.es, impossible_length(b64url(dumps(header_of(k.es)))), b64url(dumps(payload_of(k.es)))
            ),
            "base64url",
        ),
        "payload length 1 mod 4, signed": (
            lambda k: signed_segments(
                k.es, b64url(dumps(header_of(k.es))), impossible_length(b64url(dumps(payload_of(k.es))))
            ),
            "base64url",
        ),
        "signature length 1 mod 4": (
            lambda k: good(k).rsplit(".", 1)[0] + "." + impossible_length(good(k).rsplit(".", 1)[1]),
            "base64url",
        ),
        "leading space": (lambda k: " " + good(k), "compact"),
        "trailing newline": (lambda k: good(k) + "\n", "compact"),
        "trailing CRLF": (lambda k: good(k) + "\r\n", "compact"),
        "space inside": (lambda k: good(k).replace(".", ". ", 1), "compact"),
        "tab inside": (lambda k: good(k).replace(".", "\t.", 1), "compact"),
        "NUL at the end": (lambda k: good(k) + "\x00", "compact"),
        "non-ASCII letter inside": (lambda k: "é" + good(k)[1:], "compact"),
        "fullwidth letter inside": (lambda k: "\uff45" + good(k)[1:], "compact"),
        "Arabic-Indic digit inside": (lambda k: good(k)[:-1] + "\u0663", "compact"),
        "lone surrogate inside": (lambda k: good(k)[:-1] + "\ud800", "compact"),
        "Bearer prefix left on": (lambda k: "Bearer " + good(k), "compact"),
        "JWS JSON serialization": (
            lambda k: json.dumps(
                dict(zip(("protected", "payload", "signature"), good(k).split("."), strict=True))
            ),
            "compact",
        ),
        "over max_token_bytes, really signed": (
            lambda k: k.es.token(now=NOW, headers={"x": "a" * 9000}),
            "too large",
        ),
    }
    return cases


def _cut(segments: list[str], index: int, count: int) -> list[str]:
    segments = list(segments)
    segments[index] = segments[index][:-count]
    return segments


HOSTILE = case_table()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_token_is_refused(
    case: str, keys: Keys, verifier: JWTVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    build, fragment = HOSTILE[case]
    token = build(keys)
    with caplog.at_level(logging.DEBUG):
        refuse(verifier, token, fragment)
    assert all(token not in record.getMessage() for record in caplog.records if len(token) > 12)


def test_the_table_tokens_are_otherwise_sound(keys: Keys, verifier: JWTVerifier) -> None:
    """The building blocks make acceptable tokens when no defect is added, so each refusal above is
    due to the one defect under test."""
    assert verifier.verify(good(keys)).subject == "user-1"
    assert verifier.verify(
        signed_text(keys.es, json.dumps(header_of(keys.es)), json.dumps(payload_of(keys.es)))
    )
    assert verifier.verify(
        signed_segments(keys.es, b64url(dumps(header_of(keys.es))), b64url(dumps(payload_of(keys.es))))
    )
    assert verifier.verify(keys.es.token(now=NOW, headers={"x": "a" * 100}))
    for signer in (keys.rs, keys.ed):
        assert verifier.verify(signer.token(now=NOW)).subject == "user-1"


@pytest.mark.parametrize("char", ["+", "/"])
@pytest.mark.parametrize("part", ["header", "payload"])
def test_std_b64_segment_finds_its_character_for_any_base(char: str, part: str, keys: Keys) -> None:
    """The "'+' / '/' in a segment" cases above get their character whatever the base object's
    length mod 3, e.g. for a jti of any number of digits (it once came from the uptime)."""
    residues = set()
    for digits in range(10, 17):
        for filler in ("", "b", "bb"):
            jti = f"jti-{filler}{10 ** (digits - 1)}"
            base = header_of(keys.es, jti=jti) if part == "header" else payload_of(keys.es, jti=jti)
            residues.add(len(dumps({**base, "x": ""})) % 3)
            segment, raw = std_b64_segment(char, base)
            assert char in segment
            assert base64.b64decode(segment + "=" * (-len(segment) % 4)) == raw
            assert json.loads(raw).items() >= base.items()
    assert residues == {0, 1, 2}


@pytest.mark.parametrize(
    "case",
    [
        "payload: duplicate inside a nested object",
        "exp a 400-digit integer, no iat",
        "nbf a 400-digit integer",
    ],
)
def test_hostile_claims_are_refused_with_a_roomy_size_limit_too(
    case: str, keys: Keys, roomy: JWTVerifier
) -> None:
    build, fragment = HOSTILE[case]
    refuse(roomy, build(keys), fragment)


# -- the classic algorithm confusion: HMAC keyed with the public key -------------------------------


def public_material(signer: Signer, form: str) -> bytes:
    public = signer.private_key.public_key()
    if form == "SPKI PEM":
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if form == "SPKI DER":
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if form == "PKCS1 PEM":
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    if form == "OpenSSH":
        return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    if form == "JWK JSON":
        return dumps(signer.jwk)
    raise AssertionError(form)


@pytest.mark.parametrize("hmac_alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize(
    ("target", "form"),
    [
        ("rs", "SPKI PEM"),
        ("rs", "PKCS1 PEM"),
        ("rs", "SPKI DER"),
        ("rs", "OpenSSH"),
        ("rs", "JWK JSON"),
        ("es", "SPKI PEM"),
        ("es", "JWK JSON"),
        ("ed", "SPKI PEM"),
        ("ed", "JWK JSON"),
    ],
)
@pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no kid, lone key"])
def test_hmac_keyed_with_the_public_key_is_refused(
    hmac_alg: str, target: str, form: str, with_kid: bool, keys: Keys
) -> None:
    signer: Signer = getattr(keys, target)
    header = {"alg": hmac_alg, "typ": "at+jwt", **({"kid": signer.kid} if with_kid else {})}
    signing_input = f"{b64url(dumps(header))}.{b64url(dumps(payload_of(signer, sub='admin')))}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hmac_alg]
    mac = hmac.new(public_material(signer, form), signing_input.encode(), digest).digest()
    token = f"{signing_input}.{b64url(mac)}"
    lone = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(signer), clock=FakeClock(NOW))
    refuse(lone, token, "algorithm")
    if with_kid:
        refuse(new_verifier(keys), token, "algorithm")


# -- non-string input and size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [None, b"a.b.c", bytearray(b"a.b.c"), 123, 1.5, ["a", "b", "c"], {"token": "a.b.c"}, True],
    ids=["None", "bytes", "bytearray", "int", "float", "list", "dict", "bool"],
)
def test_a_non_string_token_is_refused(token: Any, verifier: JWTVerifier) -> None:
    refuse(verifier, token, "string")


def test_real_token_bytes_are_refused_too(keys: Keys, verifier: JWTVerifier) -> None:
    refuse(verifier, good(keys).encode(), "string")


@pytest.mark.parametrize(
    "shape",
    [
        "one 5 MB segment",
        "three large segments",
        "a real header, then 5 MB",
        "5 MB of dots",
        "5 MB of non-ASCII",
    ],
)
def test_a_5_mb_token_is_refused_fast(shape: str, keys: Keys, verifier: JWTVerifier) -> None:
    header = good(keys).split(".")[0]
    token = {
        "one 5 MB segment": "a" * MB5,
        "three large segments": ".".join(["a" * (MB5 // 3)] * 3),
        "a real header, then 5 MB": f"{header}.{'a' * MB5}.{'a' * 86}",
        "5 MB of dots": "." * MB5,
        "5 MB of non-ASCII": "é" * MB5,
    }[shape]
    started = time.thread_time()
    refuse(verifier, token, "too large")
    assert time.thread_time() - started < HANG_GUARD_CPU_SECONDS


def test_deep_nesting_and_huge_numbers_do_not_crash(keys: Keys, roomy: JWTVerifier) -> None:
    header = json.dumps(header_of(keys.es))
    payload = json.dumps(payload_of(keys.es))
    for hostile, fragment in [
        (
            signed_text(keys.es, header, payload[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
            "JSON",
        ),
        (signed_text(keys.es, header, '{"a":' * 50_000 + "1" + "}" * 50_000), "JSON"),
        (signed_text(keys.es, "[" * 100_000 + "]" * 100_000, payload), "JSON"),
        (
            signed_text(keys.es, header, payload.replace(f'"exp": {NOW + 600}', '"exp": ' + "9" * 5000)),
            "JSON",
        ),
        (
            signed_text(keys.es, header, payload.replace(f'"exp": {NOW + 600}', '"exp": ' + "9" * 100_000)),
            "JSON",
        ),
    ]:
        started = time.thread_time()
        refuse(roomy, hostile, fragment)
        assert time.thread_time() - started < HANG_GUARD_CPU_SECONDS


@pytest.mark.parametrize("depth", [2_000, 3_000])
def test_deep_nesting_within_the_default_size_limit(depth: int, keys: Keys, verifier: JWTVerifier) -> None:
    token = signed_text(keys.es, json.dumps(header_of(keys.es)), "[" * depth + "]" * depth)
    assert len(token) <= 8192  # the parser, not the size limit, meets the nesting
    refuse(verifier, token, "JSON")


def test_a_5000_digit_exp_within_the_default_size_limit(keys: Keys, verifier: JWTVerifier) -> None:
    payload = json.dumps(payload_of(keys.es)).replace(f'"exp": {NOW + 600}', '"exp": ' + "9" * 5000)
    token = signed_text(keys.es, json.dumps(header_of(keys.es)), payload)
    assert len(token) <= 8192
    refuse(verifier, token, "JSON")


# -- nothing in a token makes the verifier fetch anything but its configured jwks_uri -------------


@pytest.fixture
def attacker_server(keys: Keys) -> Iterator[JWKSServer]:
    with JWKSServer(jwks(keys.attacker_es)).running() as server:
        yield server


@pytest.fixture
def our_server(keys: Keys) -> Iterator[JWKSServer]:
    with JWKSServer(jwks(keys.es)).running() as server:
        yield server


def record_requests(server: JWKSServer) -> list[tuple[str, str]]:
    """Record (method, path) of every request the loopback server receives."""
    seen: list[tuple[str, str]] = []
    base = server._server.RequestHandlerClass

    class Recording(base):  # type: ignore[misc, valid-type]
        def parse_request(self) -> bool:
            parsed = super().parse_request()
            if parsed:
                seen.append((self.command, self.path))
            return parsed

    server._server.RequestHandlerClass = Recording
    return seen


@pytest.mark.parametrize(
    "members",
    [
        {"jku": "{url}"},
        {"x5u": "{url}"},
        {"jku": "{url}", "kid": "es-1"},
        {"jwk": "{jwk}", "jku": "{url}", "x5u": "{url}"},
    ],
    ids=["jku", "x5u", "jku with a real kid", "jwk+jku+x5u"],
)
@pytest.mark.parametrize("source", ["jwks", "jwks_uri"])
def test_header_urls_are_never_fetched(
    members: dict[str, str],
    source: str,
    keys: Keys,
    attacker_server: JWKSServer,
    our_server: JWKSServer,
) -> None:
    clock = FakeClock(NOW)
    if source == "jwks":
        target = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(keys.es), clock=clock)
    else:
        target = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=our_server.url, clock=clock)
    filled = {
        name: keys.attacker_es.jwk if value == "{jwk}" else value.replace("{url}", attacker_server.url)
        for name, value in members.items()
    }
    for step in range(3):
        clock.advance(31 * step)
        refuse(target, keys.attacker_es.token(now=NOW, headers=filled))
    assert attacker_server.requests == 0
    assert target.verify(keys.es.token(now=int(clock.now))).subject == "user-1"


def test_kids_never_reach_the_request_path(keys: Keys, our_server: JWKSServer) -> None:
    seen = record_requests(our_server)
    clock = FakeClock(NOW)
    target = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=our_server.url, clock=clock)
    hostile_kids = [
        "../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "https://evil.test/jwks.json",
        "//evil.test/jwks.json",
        "?kid=x",
        "#x",
        "a b",
        "\r\nHost: evil.test",
    ]
    for kid in hostile_kids:
        clock.advance(31)  # past the cooldown each time, so that every kid may cause a refresh
        refuse(target, keys.es.token(now=int(clock.now), headers={"kid": kid}), "unknown key")
    assert target.verify(keys.es.token(now=int(clock.now))).subject == "user-1"
    configured = urlsplit(our_server.url).path
    assert len(seen) >= 2  # refreshes did happen, so the paths below were really exercised
    assert seen == [("GET", configured)] * len(seen)


# -- the same, explored by Hypothesis --------------------------------------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_invalid_token(verifier: JWTVerifier, token: Any) -> None:
    try:
        verifier.verify(token)
    except InvalidToken as exc:
        assert isinstance(token, str) is False or len(token) < 12 or token not in exc.description
    else:
        raise AssertionError("a fuzzed token was accepted")


@FUZZ
@given(token=st.text(st.characters(exclude_categories=()), max_size=300))
def test_fuzz_any_text(token: str, verifier: JWTVerifier) -> None:
    only_invalid_token(verifier, token)


@FUZZ
@given(segments=st.lists(st.text(B64URL + "=+/. ", max_size=120), min_size=1, max_size=6))
def test_fuzz_segment_garbage(segments: list[str], verifier: JWTVerifier) -> None:
    only_invalid_token(verifier, ".".join(segments))


@FUZZ
@given(data=st.binary(max_size=200), where=st.sampled_from(["header", "payload"]))
def test_fuzz_really_signed_random_bytes(data: bytes, where: str, keys: Keys, verifier: JWTVerifier) -> None:
    header, payload = dumps(header_of(keys.es)), dumps(payload_of(keys.es))
    token = keys.es.sign(data, payload) if where == "header" else keys.es.sign(header, data)
    only_invalid_token(verifier, token)


@FUZZ
@given(raw=st.binary(max_size=600), signer_name=st.sampled_from(["es", "rs", "ed"]))
def test_fuzz_random_signatures(raw: bytes, signer_name: str, keys: Keys, verifier: JWTVerifier) -> None:
    signer: Signer = getattr(keys, signer_name)
    signing_input = signer.token(now=NOW).rsplit(".", 1)[0]
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(f"{signing_input}.{b64url(raw)}" if raw else f"{signing_input}.AA")


@FUZZ
@given(data=st.data())
def test_fuzz_single_character_mutations(data: st.DataObject, keys: Keys, verifier: JWTVerifier) -> None:
    """A one-character change either is refused or leaves every decoded byte the same (a
    non-canonical base64url spelling of the same signature, RFC 4648 §3.5)."""
    token = keys.ed.token(now=NOW)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(B64URL + ".=+/ é").filter(lambda c: c != token[position]))
    mutated = token[:position] + replacement + token[position + 1 :]
    try:
        result = verifier.verify(mutated)
    except InvalidToken:
        return
    assert isinstance(result, VerifiedToken)
    decode = lambda t: [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in t.split(".")]  # noqa: E731
    assert decode(mutated) == decode(token)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**450), max_value=10**450)
    | st.integers(min_value=NOW - 10**6, max_value=NOW + 10**6)
    | st.floats()
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
FINITE_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
CLAIM_NAMES = ["exp", "nbf", "iat", "iss", "aud", "sub", "scope", "org_id", "client_id", "cnf"]


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(CLAIM_NAMES), JSON_VALUES | st.just(DROP), max_size=4))
def test_fuzz_claim_values(overrides: dict[str, Any], keys: Keys, verifier: JWTVerifier) -> None:
    """Whatever JSON the claims hold, the answer is a well-typed VerifiedToken or InvalidToken."""
    payload = payload_of(keys.ed, **overrides)
    token = keys.ed.sign(dumps(header_of(keys.ed)), json.dumps(payload).encode())
    try:
        verified = verifier.verify(token)
    except InvalidToken as exc:
        assert token not in exc.description
        return
    assert type(verified.expires_at) is int
    assert verified.expires_at + verifier.leeway > NOW
    assert isinstance(verified.subject, str) and verified.subject
    assert verified.org is None or (isinstance(verified.org, str) and verified.org)
    assert verified.claims["iss"] == ISSUER
    assert all(isinstance(scope, str) and scope and " " not in scope for scope in verified.scopes)
    # A cnf survives only as a well-formed jkt (random JSON never is one): a bearer token otherwise.
    assert verified.jkt is None and "cnf" not in verified.claims


@FUZZ
@given(extra=st.dictionaries(st.text(max_size=6), FINITE_JSON_VALUES, max_size=4))
def test_fuzz_extra_header_members(extra: dict[str, Any], keys: Keys, verifier: JWTVerifier) -> None:
    header = {**extra, **header_of(keys.es)}
    token = keys.es.sign(dumps(header), dumps(payload_of(keys.es)))
    try:
        verified = verifier.verify(token)
    except InvalidToken as exc:
        assert "crit" in header, exc.description  # the only extra member that may refuse a good token
    else:
        assert "crit" not in header
        assert verified.subject == "user-1"
