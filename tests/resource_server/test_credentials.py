"""bearer_token: RFC 6750 §2.1 credentials from the Authorization field value, and nothing looser."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resource_server import InvalidToken, MalformedCredentials
from resource_server.credentials import bearer_token

JWT_LIKE = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
#: A hang guard, not a benchmark: the CPU time of this thread (``time.thread_time``, which load
#: elsewhere on the machine does not inflate) a refusal may take; these take microseconds.
HANG_GUARD_CPU_SECONDS = 2


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Digest username=x",
        "Token abc",
        "Bearerabc",
        "Bearer-x abc",
        "DPoP abc",
    ],
    ids=["None", "empty", "Basic", "Digest", "Token", "Bearerabc (another scheme)", "Bearer-x", "DPoP"],
)
def test_no_bearer_credentials_is_none(value: str | None) -> None:
    assert bearer_token(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("bEaReR abc", "abc"),
        ("Bearer   abc", "abc"),
        (f"Bearer {JWT_LIKE}", JWT_LIKE),
        ("Bearer a-b.c_d~e+f/g", "a-b.c_d~e+f/g"),
        ("Bearer abc=", "abc="),
        ("Bearer abc==", "abc=="),
        ("Bearer 0123456789", "0123456789"),
        ("Bearer abc ", "abc"),
        ("Bearer abc\t", "abc"),
        (" \tBearer abc", "abc"),
    ],
    ids=[
        "Bearer",
        "lower case scheme",
        "upper case scheme",
        "mixed case scheme",
        "several spaces",
        "a JWT",
        "every b64token punctuation",
        "one trailing =",
        "two trailing =",
        "digits",
        "trailing space (RFC 9110 5.5: not part of the value)",
        "trailing tab (RFC 9110 5.5)",
        "leading whitespace (RFC 9110 5.5)",
    ],
)
def test_bearer_credentials_yield_the_token(value: str, expected: str) -> None:
    assert bearer_token(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer a b",
        "Bearer a,Bearer b",
        "Bearer a, Bearer b",
        "Bearer\tabc",
        "Bearer \tabc",
        "Bearer abc\r\n",
        "Bearer abc\n",
        "Bearer a@b",
        'Bearer "abc"',
        "Bearer abc\u00e9",
        "Bearer abc\u00a0",
        "Bearer \u00a0abc",
        "Bearer ab=c",
        "Bearer =abc",
        "Bearer =",
        "Bearer a;b",
        "Bearer a\\b",
        "Bearer a:b",
        "Bearer a\x00b",
        "Bearer token=abc",
        'Bearer realm="api"',
        "Basic dXNlcjpwYXNz, Bearer abc",
        "Basic dXNlcjpwYXNz,bearer abc",
    ],
    ids=[
        "scheme only",
        "lower scheme only",
        "scheme and a space",
        "scheme and spaces",
        "two tokens",
        "folded duplicate header",
        "folded duplicate header with space",
        "tab separator",
        "space then tab",
        "trailing CRLF",
        "trailing LF",
        "at sign",
        "quoted",
        "non-ASCII letter",
        "trailing NBSP",
        "NBSP separator",
        "= in the middle",
        "= at the start",
        "only =",
        "semicolon",
        "backslash",
        "colon",
        "NUL",
        "auth-param form",
        "challenge-like",
        "Basic folded with Bearer",
        "Basic folded with bearer, no space",
    ],
)
def test_malformed_bearer_credentials_are_refused(value: str) -> None:
    with pytest.raises(MalformedCredentials) as caught:
        bearer_token(value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.description == str(caught.value)
    token_part = value[len("Bearer ") :].strip()
    if len(token_part) > 2:
        assert token_part not in caught.value.description


def test_a_token_at_the_size_limit_is_returned() -> None:
    token = "a" * 8192
    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token("Bearer " + "b" * 100, max_token_bytes=100) == "b" * 100


@pytest.mark.parametrize(
    ("limit", "separator"),
    [(8192, " "), (100, " "), (10, " "), (100, "   ")],
    ids=["default limit", "limit 100", "limit 10", "limit 100, several spaces"],
)
def test_a_token_one_byte_over_the_limit_is_an_invalid_token(limit: int, separator: str) -> None:
    """The docstring: "Raises InvalidToken for a token over max_token_bytes"."""
    with pytest.raises(InvalidToken, match="too large"):
        bearer_token(f"Bearer{separator}{'a' * (limit + 1)}", max_token_bytes=limit)


@pytest.mark.parametrize(
    "tail",
    ["", "@", " b", "\t", "=" * 10, ",Bearer b"],
    ids=["clean", "then a bad character", "then a second token", "then a tab", "then padding", "then folded"],
)
def test_an_oversized_bearer_value_is_refused_fast(tail: str) -> None:
    value = "Bearer " + "a" * (5 * 1024 * 1024) + tail
    started = time.thread_time()
    with pytest.raises(InvalidToken, match="too large") as caught:
        bearer_token(value)
    assert time.thread_time() - started < HANG_GUARD_CPU_SECONDS
    assert "aaaaaaaa" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "Basic " + "a" * (5 * 1024 * 1024),
        "a" * (5 * 1024 * 1024),
        "Bearer" + " " * (5 * 1024 * 1024) + "@",
        "Bearer " + "a" * 1000 + "@" * (5 * 1024 * 1024),
    ],
    ids=["oversized Basic", "one oversized word", "oversized run of spaces", "oversized bad characters"],
)
def test_other_oversized_values_never_hang(value: str) -> None:
    started = time.thread_time()
    try:
        result = bearer_token(value)
    except (InvalidToken, MalformedCredentials):
        result = None
    assert result is None
    assert time.thread_time() - started < HANG_GUARD_CPU_SECONDS


B64TOKEN = st.from_regex(r"[A-Za-z0-9._~+/-]+=*", fullmatch=True)


@given(
    token=B64TOKEN, spaces=st.integers(min_value=1, max_value=5), scheme=st.sampled_from(["Bearer", "bearer"])
)
def test_every_b64token_round_trips(token: str, spaces: int, scheme: str) -> None:
    if len(token) <= 8192:
        assert bearer_token(f"{scheme}{' ' * spaces}{token}") == token


@given(value=st.text(max_size=200))
def test_arbitrary_text_yields_none_a_token_or_a_defined_error(value: str) -> None:
    try:
        result = bearer_token(value)
    except (MalformedCredentials, InvalidToken):
        return
    if result is not None:
        value = value.strip(" \t")
        assert re.fullmatch(r"[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9._~+/-]+=*", value)
        assert value.endswith(" " + result)


# A leading space would join the separator, and trailing OWS (space or tab, RFC 9110 §5.5) is not
# part of the field value: neither can be part of a token, so neither is generated.
@given(token=st.text(min_size=1, max_size=50).filter(lambda t: t == t.lstrip(" ").rstrip(" \t")))
def test_a_bearer_value_is_returned_only_when_it_is_a_b64token(token: str) -> None:
    is_b64token = re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", token) is not None
    try:
        result = bearer_token(f"Bearer {token}")
    except MalformedCredentials:
        assert not is_b64token
    else:
        assert is_b64token
        assert result == token
