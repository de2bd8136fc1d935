"""RFC 6749 §3.3 scope strings, scope sets and the scope hierarchy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import InvalidScope, ScopeHierarchy, format_scope, parse_scope

SCOPE_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
scope_tokens = st.text(alphabet=SCOPE_CHARS, min_size=1, max_size=12)


def test_parses_single_space_separated_tokens() -> None:
    assert parse_scope("project:read team:write") == {"project:read", "team:write"}


def test_empty_string_is_the_empty_set() -> None:
    assert parse_scope("") == frozenset()


def test_duplicates_collapse() -> None:
    assert parse_scope("a b a") == {"a", "b"}


def test_every_allowed_character_is_a_token_character() -> None:
    assert parse_scope(SCOPE_CHARS) == {SCOPE_CHARS}


@pytest.mark.parametrize(
    "value",
    [
        " a",
        "a ",
        "a  b",
        " ",
        "a\tb",
        "a\u00a0b",  # NBSP: str.split() would split here
        "a\u2028b",
        "a\u3000b",
        "a\x1cb",
        "a\x85b",
        "a\u2003b",
        'a"b',
        "a\\b",
        "a\x00b",
        "a\x7fb",
        "a\nb",
        "a\rb",
        "caf\u00e9",
        "\u0430dmin",  # Cyrillic a
    ],
)
def test_rejects_anything_outside_the_grammar(value: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(value)


@pytest.mark.parametrize("value", [None, 1, b"a b", ["a"], {"a"}])
def test_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidScope, match="must be a string"):
        parse_scope(value)


def test_invalid_scope_is_a_value_error_with_a_useful_message() -> None:
    with pytest.raises(ValueError, match="U\\+00A0"):
        parse_scope("a\u00a0b")
    with pytest.raises(ValueError, match="two spaces"):
        parse_scope("a  b")


@given(st.frozensets(scope_tokens, max_size=8))
def test_format_then_parse_round_trips(scopes: frozenset[str]) -> None:
    assert parse_scope(format_scope(scopes)) == scopes


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_invalid_scope(value: str) -> None:
    try:
        result = parse_scope(value)
    except InvalidScope:
        return
    assert format_scope(result) == " ".join(sorted(set(value.split(" "))))


def test_format_sorts_and_joins_with_one_space() -> None:
    assert format_scope({"team:write", "project:read"}) == "project:read team:write"
    assert format_scope([]) == ""


@pytest.mark.parametrize("bad", [["a b"], ["a\u00a0"], [""], [1], "a b"])
def test_format_validates(bad: object) -> None:
    with pytest.raises(InvalidScope):
        format_scope(bad)  # type: ignore[arg-type]


def test_hierarchy_expands_transitively() -> None:
    hierarchy = ScopeHierarchy({"org:admin": ["org:write"], "org:write": ["org:read"]})
    assert hierarchy.expand({"org:admin"}) == {"org:admin", "org:write", "org:read"}
    assert hierarchy.expand({"org:write", "x"}) == {"org:write", "org:read", "x"}
    assert hierarchy.expand(set()) == frozenset()
    assert hierarchy.implied_by("org:admin") == {"org:write", "org:read"}
    assert hierarchy.implied_by("org:read") == frozenset()


def test_hierarchy_rejects_cycles_and_bad_scopes() -> None:
    with pytest.raises(ValueError, match="cycle"):
        ScopeHierarchy({"a": ["b"], "b": ["c"], "c": ["a"]})
    with pytest.raises(ValueError, match="cycle"):
        ScopeHierarchy({"a": ["a"]})
    with pytest.raises(ValueError, match="'a b'"):
        ScopeHierarchy({"a b": ["c"]})
    with pytest.raises(ValueError, match="implied by 'a'"):
        ScopeHierarchy({"a": "b c"})
    with pytest.raises(ValueError):
        ScopeHierarchy(["a"])  # type: ignore[arg-type]
