"""PassthroughPolicy: configuration refused up front, and only clean allowed headers captured."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from resource_server.passthrough import MAX_VALUE_BYTES, PassthroughPolicy


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "authorization",
        "Proxy-Authorization",
        "Cookie",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Connection",
        "Forwarded",
        "X-Forwarded-For",
        "x-forwarded-host",
        "X-Real-IP",
        "X-Viewer-Context",
    ],
)
def test_dangerous_names_are_refused_naming_the_entry(name: str) -> None:
    with pytest.raises(ValueError, match=r"allow\[1\]"):
        PassthroughPolicy(["X-Request-Id", name])
    with pytest.raises(ValueError, match="static"):
        PassthroughPolicy([], static={name: "x"})


@pytest.mark.parametrize("name", ["", "X Org", "X-Org:", "X-Ørg", "X-Org\r\nEvil", 5])
def test_invalid_names_are_refused(name: object) -> None:
    with pytest.raises(ValueError, match=r"allow\[0\]"):
        PassthroughPolicy([name])  # type: ignore[list-item]


def test_duplicates_and_overlaps_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        PassthroughPolicy(["X-Org-Id", "x-org-id"])
    with pytest.raises(ValueError, match="also in allow"):
        PassthroughPolicy(["X-Org-Id"], static={"x-org-id": "acme"})
    with pytest.raises(ValueError, match="control"):
        PassthroughPolicy([], static={"X-Gateway": "a\r\nX-Evil: 1"})
    with pytest.raises(TypeError):
        PassthroughPolicy("X-Org-Id")  # a string is not a list of names


def test_capture_copies_only_allowed_headers_and_adds_static() -> None:
    policy = PassthroughPolicy(["X-Request-Id", "X-Org-Id"], static={"X-Gateway": "edge-1"})
    incoming = {
        "x-request-id": "r-1",
        "X-Org-Id": "acme",
        "Authorization": "Bearer secret",
        "Cookie": "session=1",
        "X-Forwarded-For": "10.0.0.1",
        "X-Other": "no",
    }
    assert policy.capture(incoming) == {"X-Request-Id": "r-1", "X-Org-Id": "acme", "X-Gateway": "edge-1"}


def test_connection_nominated_headers_are_dropped() -> None:
    policy = PassthroughPolicy(["X-Request-Id", "X-Org-Id"])
    captured = policy.capture(
        [("Connection", "close, X-Org-Id"), ("X-Org-Id", "acme"), ("X-Request-Id", "r")]
    )
    assert captured == {"X-Request-Id": "r"}
    assert policy.capture(Headers([("connection", "x-request-id"), ("X-Request-Id", "r")])) == {}


@pytest.mark.parametrize(
    "value", ["a\r\nX-Evil: 1", "a\nb", "a\x00b", "a\x7fb", "a\x1bb", "x" * (MAX_VALUE_BYTES + 1)]
)
def test_dirty_or_oversized_values_are_dropped(value: str) -> None:
    policy = PassthroughPolicy(["X-Org-Id"])
    assert policy.capture({"X-Org-Id": value}) == {}


def test_a_repeated_field_cannot_override_the_first() -> None:
    policy = PassthroughPolicy(["X-Org-Id"])
    assert policy.capture([("X-Org-Id", "acme"), ("x-org-id", "globex")]) == {"X-Org-Id": "acme"}


def test_capture_is_bounded() -> None:
    policy = PassthroughPolicy(["X-Org-Id"])
    flood = [(f"X-Junk-{i}", "x") for i in range(100_000)] + [("X-Org-Id", "acme")]
    assert policy.capture(flood) == {}  # only the first 256 fields are looked at


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=50)), max_size=40))
def test_captured_values_never_hold_control_characters(pairs: list[tuple[str, str]]) -> None:
    policy = PassthroughPolicy(["X-Org-Id", "X-Request-Id"])
    for name, value in policy.capture([*pairs, ("X-Org-Id", "a\r\nb")]).items():
        assert name in ("X-Org-Id", "X-Request-Id")
        assert not any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value)
