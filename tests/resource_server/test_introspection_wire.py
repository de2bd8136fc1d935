"""What an introspection request looks like on the wire (RFC 7662 §2.1): one write per request,
head and form together; the headers built once per credentials yet never carrying one request's
trace context into the next.

Against real loopback servers: the tests' introspection endpoint (test_introspection.py) and
one that keeps each request's headers (tests/otel.py). The writes are counted by http.client's own
debug output, which prints each one (``HTTPConnection.debuglevel``).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from resource_server.tokens import IntrospectionVerifier
from resource_server.tokens.introspection import BearerAuth
from tests.otel import HeaderServer, recording
from tests.resource_server.test_introspection import IntrospectionServer, issue, verifier_for
from tests.support import AUDIENCE, NOW, FakeClock


@pytest.fixture
def server() -> Iterator[IntrospectionServer]:
    with IntrospectionServer.serving() as running:
        yield running


def writes(out: str) -> list[str]:
    """The writes http.client's debug output shows (one ``send:`` line each)."""
    return [line for line in out.splitlines() if line.startswith("send:")]


def test_a_request_leaves_in_one_write_head_and_form_together(
    server: IntrospectionServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    verifier = verifier_for(server, FakeClock(NOW))
    tokens = [issue(server), issue(server)]
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    for token in tokens:
        assert verifier.verify(token).subject == "user-1"
    sent = writes(capsys.readouterr().out)
    # Two requests on one kept-alive connection, each one write: the head, then the form.
    assert (len(sent), server.calls, server.connections) == (2, 2, 1)
    for line in sent:
        assert line.startswith("send: b'POST /introspect HTTP/1.1\\r\\n")
        assert "\\r\\n\\r\\ntoken=" in line and line.endswith("&token_type_hint=access_token'")


def test_a_replaced_bearer_token_is_sent_in_the_request_after_the_refusal(
    server: IntrospectionServer,
) -> None:
    # The headers are built once per credentials: a token callable's new token must reach the
    # very next request, not one built for the refused token.
    server.auth = "bearer"
    server.bearer_tokens = {"second-token"}
    handed = iter(["first-token", "second-token"])
    verifier = verifier_for(
        server,
        FakeClock(NOW),
        client_id=None,
        client_secret=None,
        client_auth=BearerAuth(lambda: next(handed)),
    )
    assert verifier.verify(issue(server)).subject == "user-1"
    assert [authorization for authorization, _ in server.received] == [
        "Bearer first-token",
        "Bearer second-token",
    ]
    assert verifier.verify(issue(server)).subject == "user-1"
    assert server.received[-1][0] == "Bearer second-token"


def test_a_trace_context_is_sent_with_its_own_request_only() -> None:
    answer = {"active": True, "sub": "user-1", "aud": AUDIENCE}
    with HeaderServer(answer).running() as endpoint:
        verifier = IntrospectionVerifier(
            endpoint=f"{endpoint.base}/introspect",
            client_id="rs",
            client_secret="s" * 32,
            audience=AUDIENCE,
            clock=FakeClock(NOW),
        )
        with recording() as recorded:
            verifier.verify("opaque-token-1")
            verifier.verify("opaque-token-2")
            spans = [span for span in recorded.spans() if span.name == "resource_server.introspection"]
        verifier.verify("opaque-token-3")  # tracing is off again: no context to send
    traced = [headers.get("traceparent") for headers in endpoint.headers]
    assert traced[0] is not None and traced[1] is not None and traced[2] is None
    # Each request carries the context of its own span, not one left by an earlier request.
    assert [value.split("-")[2] for value in traced[:2]] == [
        f"{span.get_span_context().span_id:016x}" for span in spans
    ]
    assert all(headers["authorization"].startswith("Basic ") for headers in endpoint.headers)
