"""The ``Host`` header (RFC 9110 §7.2) and the request URL a DPoP proof is checked against (RFC
9449 §4.3): one strict parser for WSGI and ASGI, and a URL built from its parsed parts, which no
Host can give another path, query or fragment."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import Roles, ScopeMap
from resource_server import JWTVerifier
from resource_server.asgi_http import bad_host
from resource_server.asgi_http import request_url as asgi_request_url
from resource_server.credentials import Authority, MalformedHost, check_host, parse_host, request_url
from resource_server.dpop import DPoPVerifier, dpop_request, normalize_htu
from resource_server.guard import Denial, Guard
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, Signer, dpop_key, jwks

VALID = {
    "api.test": Authority("api.test", None),
    "API.Test": Authority("api.test", None),
    "api.test:8080": Authority("api.test", 8080),
    "api.test:0080": Authority("api.test", 80),
    "api.test:": Authority("api.test", None),  # RFC 3986 §3.2.3: an empty port is no port
    "api.test:0": Authority("api.test", 0),
    "api.test:65535": Authority("api.test", 65535),
    "api.test.": Authority("api.test.", None),
    "my_service~1-a": Authority("my_service~1-a", None),
    "127.0.0.1:5000": Authority("127.0.0.1", 5000),
    "999.1.1.1": Authority("999.1.1.1", None),  # not an IPv4address: a reg-name (RFC 3986 §3.2.2)
    "[::1]": Authority("[::1]", None),
    "[::1]:8443": Authority("[::1]", 8443),
    "[::1]:": Authority("[::1]", None),
    "[2001:DB8::1]": Authority("[2001:db8::1]", None),
    "[::ffff:192.0.2.1]:80": Authority("[::ffff:192.0.2.1]", 80),
    " api.test\t": Authority("api.test", None),  # RFC 9110 §5.5: whitespace around is not the value
    "a" * 255: Authority("a" * 255, None),
}

INVALID = [
    "",
    " ",
    "api.test/orgs/acme/projects?",
    "api.test/orgs/acme/projects#",
    "api.test/",
    "api.test?",
    "api.test#",
    "api.test\\x",
    "user@api.test",
    "api.test:443@evil.test",
    "api.test evil.test",
    "api.test\tevil.test",
    "api.test\r\nX-Injected: 1",
    "api.test\x00",
    "api.test\x7f",
    "é.test",
    "xn--e.test\u200b",
    "api.test,evil.test",
    "api.test, evil.test",
    "api.test;x",
    "api!.test",
    "api$.test",
    "%61pi.test",
    "api.test:99999",
    "api.test:65536",
    "api.test:123456",
    "api.test:8a",
    "api.test:-1",
    "api.test:+80",
    "api.test:\uff18\uff10",  # fullwidth digits
    "api.test:80:80",
    ":80",
    "[::1",
    "::1",
    "[::1]x",
    "[1.2.3.4]",
    "[::g]",
    "[fe80::1%25eth0]",
    "[v1.x]",
    "[]",
    "a" * 256,
    "a" * 1_000_000,
]


@pytest.mark.parametrize("value", list(VALID))
def test_a_valid_host_is_parsed(value: str) -> None:
    assert parse_host(value) == VALID[value]
    check_host(value)


@pytest.mark.parametrize("value", INVALID)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(MalformedHost) as refused:
        parse_host(value)
    assert value.strip() == "" or value.strip() not in refused.value.description  # never echoed
    with pytest.raises(MalformedHost):
        check_host(value)


@pytest.mark.parametrize("value", [None, 80, b"api.test", ["api.test"]])
def test_a_host_that_is_no_string_is_refused(value: Any) -> None:
    with pytest.raises(MalformedHost):
        parse_host(value)


def test_an_absent_host_is_the_servers_to_judge() -> None:
    check_host(None)


# Hosts built from the characters that matter: every delimiter a URL has, and the legitimate ones.
HOSTISH = st.text(alphabet="aZ.0:9-_~/?#@[]%,; \t\r\nfé", max_size=30)


@given(value=HOSTISH | st.text(max_size=40))
def test_no_host_moves_the_url(value: str) -> None:
    """Whatever the Host, the URL keeps the request's scheme and path: none of it can become a
    path, a query or a fragment, or hide the host behind userinfo."""
    try:
        authority = parse_host(value)
    except MalformedHost:
        return
    for scheme in ("http", "https"):
        url = authority.url(scheme, "/orgs/acme/projects/42")
        parts = urlsplit(url)
        assert (parts.scheme, parts.path, parts.query, parts.fragment) == (
            scheme,
            "/orgs/acme/projects/42",
            "",
            "",
        )
        assert f"{parts.hostname}" == authority.host.strip("[]") and "@" not in parts.netloc
        if authority.port not in (None, 80 if scheme == "http" else 443):
            assert parts.port == authority.port
        assert urlsplit(normalize_htu(url)).path == "/orgs/acme/projects/42"


# -- request_url: WSGI -----------------------------------------------------------------------------


def environ(**values: Any) -> dict[str, Any]:
    base = {"wsgi.url_scheme": "http", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "PATH_INFO": "/p"}
    return {**base, **values}


@pytest.mark.parametrize(
    ("values", "url"),
    [
        ({"HTTP_HOST": "API.test:80"}, "http://api.test/p"),
        ({"HTTP_HOST": "api.test:443", "wsgi.url_scheme": "HTTPS"}, "https://api.test/p"),
        ({"HTTP_HOST": "api.test:8443", "wsgi.url_scheme": "https"}, "https://api.test:8443/p"),
        ({"HTTP_HOST": "[::1]:8000"}, "http://[::1]:8000/p"),
        ({"HTTP_HOST": "api.test", "RAW_URI": "/a%2Fb?x=1#f"}, "http://api.test/a%2Fb"),
        ({}, "http://127.0.0.1:8000/p"),  # HTTP/1.0: no Host, the server's address
        ({"SERVER_NAME": "::1", "SERVER_PORT": "80"}, "http://[::1]/p"),
        ({"SERVER_NAME": "API.test", "SERVER_PORT": "8080"}, "http://api.test:8080/p"),
    ],
)
def test_the_wsgi_url_is_built_from_parsed_parts(values: dict[str, Any], url: str) -> None:
    assert request_url(environ(**values)) == url


@pytest.mark.parametrize(
    "values",
    [
        {"HTTP_HOST": "api.test/orgs/acme/projects?"},
        {"HTTP_HOST": "api.test/orgs/acme/projects#"},
        {"HTTP_HOST": ""},  # present and empty: RFC 9110 §4.2.1, an http URI has a host
        {"SERVER_NAME": "", "SERVER_PORT": "80"},
        {"SERVER_NAME": "api.test/x?", "SERVER_PORT": "80"},
        {"SERVER_NAME": "api.test:80", "SERVER_PORT": "80"},
        {"SERVER_NAME": "api.test", "SERVER_PORT": "x"},
        {"SERVER_NAME": "api.test", "SERVER_PORT": "70000"},
        {"SERVER_NAME": None, "SERVER_PORT": None},
        {"HTTP_HOST": "api.test", "wsgi.url_scheme": "http://api.test/orgs/acme/projects?"},
        {"HTTP_HOST": "api.test", "wsgi.url_scheme": "ftp"},
        {"HTTP_HOST": "api.test", "wsgi.url_scheme": None},
    ],
)
def test_a_wsgi_url_that_cannot_be_named_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(MalformedHost):
        request_url(environ(**values))


def test_a_configured_resource_names_the_scheme_and_authority() -> None:
    assert request_url(environ(HTTP_HOST="elsewhere.test"), "https://api.test/base") == "https://api.test/p"


# -- request_url: ASGI -----------------------------------------------------------------------------


def scope(host: str | None = None, **values: Any) -> dict[str, Any]:
    headers = [] if host is None else [(b"host", host.encode("latin-1"))]
    return {
        "type": "http",
        "scheme": "http",
        "path": "/p",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        **values,
    }


@pytest.mark.parametrize(
    ("host", "values", "url"),
    [
        ("API.test:80", {}, "http://api.test/p"),
        ("api.test:443", {"scheme": "https"}, "https://api.test/p"),
        ("[::1]:9000", {}, "http://[::1]:9000/p"),
        ("api.test", {"raw_path": b"/a%2Fb#f"}, "http://api.test/a%2Fb"),
        (None, {}, "http://127.0.0.1:8000/p"),
        (None, {"server": ("::1", 443), "scheme": "https"}, "https://[::1]/p"),
    ],
)
def test_the_asgi_url_is_built_from_parsed_parts(host: str | None, values: dict[str, Any], url: str) -> None:
    assert asgi_request_url(scope(host, **values)) == url


@pytest.mark.parametrize(
    ("host", "values"),
    [
        ("api.test/orgs/acme/projects?", {}),
        ("api.test/orgs/acme/projects#", {}),
        ("", {}),
        (None, {"server": ("/run/api.sock", None)}),  # a Unix socket names no host
        (None, {"server": None}),
        ("api.test", {"scheme": "http://api.test/orgs/acme/projects?"}),
    ],
)
def test_an_asgi_url_that_cannot_be_named_is_refused(host: str | None, values: dict[str, Any]) -> None:
    with pytest.raises(MalformedHost):
        asgi_request_url(scope(host, **values))


def test_bad_host_is_the_400_of_the_status_table() -> None:
    assert bad_host(scope("api.test")) is None
    assert bad_host(scope(None)) is None
    two = scope("api.test")
    two["headers"].append((b"host", b"evil.test"))  # RFC 9112 §3.2: two Host lines are a 400
    for hostile in (scope("api.test/x?"), two):
        denial = bad_host(hostile)
        assert denial is not None
        assert (denial.status, denial.error, denial.www_authenticate) == (400, "invalid_request", None)


# -- the guard -------------------------------------------------------------------------------------


def test_the_guard_refuses_a_url_it_cannot_name_before_reading_the_proof(es: Signer) -> None:
    """An adapter's URL callable that cannot name the URL (here: no Host and no server name) is
    a 400 before the proof is verified: the same proof is accepted afterwards."""
    clock = FakeClock(NOW)
    guard = Guard(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=Roles({"admin": ["project:read"]}),
        membership=lambda subject, org: "admin",
        dpop=DPoPVerifier(clock=clock),
    )
    key = dpop_key()
    token = es.token(cnf={"jkt": key.jkt})
    authorization = f"DPoP {token}"
    proof = key.proof("GET", "http://api.test/p", access_token=token)
    scope_map = ScopeMap({"GET": "project:read"})

    def authorize(values: dict[str, Any]) -> Any:
        where = environ(**values)
        dpop = dpop_request(authorization, proof, "GET", lambda: request_url(where))
        return guard.authorize(
            authorization=authorization,
            token_elsewhere=False,
            method="GET",
            scope_map=scope_map,
            org="acme",
            dpop=dpop,
        )

    refused = authorize({"SERVER_NAME": ""})
    assert isinstance(refused, Denial)
    assert (refused.status, refused.error, refused.www_authenticate) == (400, "invalid_request", None)
    assert not isinstance(authorize({"HTTP_HOST": "api.test"}), Denial)  # the jti was not spent


def test_remembered_hosts_stay_bounded_and_never_include_a_refused_one() -> None:
    """A valid Host is remembered with its Authority (the next request costs a lookup); the
    table is cleared when full, and a value that was refused is refused again every time."""
    from resource_server import credentials

    for n in range(credentials._KNOWN_HOSTS * 2 + 7):
        assert parse_host(f"host-{n}.test:{n}") == Authority(f"host-{n}.test", n)
        assert len(credentials._AUTHORITIES) <= credentials._KNOWN_HOSTS
    assert parse_host("API.Test") is parse_host("API.Test")  # found again, the same answer
    for hostile in ("api.test/evil", "api.test:99999", "user@api.test", " "):
        for _ in range(2):
            with pytest.raises(MalformedHost):
                check_host(hostile)
        assert hostile not in credentials._AUTHORITIES


def test_a_configured_resource_is_split_once_whatever_the_path() -> None:
    environ = {"PATH_INFO": "/a", "SCRIPT_NAME": "", "HTTP_HOST": "ignored.test"}
    first = request_url(environ, "https://api.example:8443/base?x#y")
    second = request_url({**environ, "PATH_INFO": "/b"}, "https://api.example:8443/base?x#y")
    assert (first, second) == ("https://api.example:8443/a", "https://api.example:8443/b")


@pytest.mark.parametrize("spelling", ["api.test\r\n", "api.test\x0b", "\x1capi.test", "api.test\x85"])
def test_a_remembered_host_answers_for_its_own_spelling_only(spelling: str) -> None:
    """The table is keyed on the value as sent: a Host found there once does not make the same
    name with characters RFC 9110 §5.5 does not strip (controls, other whitespace) valid."""
    check_host("api.test")
    check_host(" api.test\t")  # optional whitespace, stripped: valid, and remembered as sent
    with pytest.raises(MalformedHost):
        check_host(spelling)
