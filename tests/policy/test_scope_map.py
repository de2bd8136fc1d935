"""ScopeMap: per-method alternatives, validated and compiled at construction."""

from __future__ import annotations

import pytest

from policy import ScopeMap

EXAMPLE = {
    "GET": ["project:read", "project:write"],
    "POST": [["project:write", "team:write"], "project:admin"],
}


def test_alternatives_are_any_of_all_of_sets() -> None:
    scope_map = ScopeMap(EXAMPLE)
    assert scope_map.alternatives("GET") == (frozenset({"project:read"}), frozenset({"project:write"}))
    assert scope_map.alternatives("POST") == (
        frozenset({"project:write", "team:write"}),
        frozenset({"project:admin"}),
    )


def test_method_names_ignore_case_and_are_stored_upper_case() -> None:
    scope_map = ScopeMap({"get": ["a"], "Post": ["b"]})
    assert scope_map.methods == ("GET", "POST", "HEAD")
    assert scope_map.alternatives("get") == scope_map.alternatives("GET")
    assert "post" in scope_map
    assert scope_map.to_dict() == {"GET": [["a"]], "POST": [["b"]]}


def test_head_falls_back_to_get_unless_given() -> None:
    assert ScopeMap({"GET": ["a"]}).alternatives("HEAD") == (frozenset({"a"}),)
    assert ScopeMap({"GET": ["a"], "HEAD": ["b"]}).alternatives("HEAD") == (frozenset({"b"}),)
    assert ScopeMap({"POST": ["a"]}).alternatives("HEAD") is None


def test_unmapped_method() -> None:
    scope_map = ScopeMap(EXAMPLE)
    assert scope_map.alternatives("DELETE") is None
    assert scope_map.rule(None) is None  # type: ignore[arg-type]
    assert "DELETE" not in scope_map


def test_a_bare_string_is_one_alternative() -> None:
    assert ScopeMap({"GET": "project:read"}).alternatives("GET") == (frozenset({"project:read"}),)


def test_duplicate_alternatives_collapse_in_order() -> None:
    scope_map = ScopeMap({"GET": ["a", ["b", "c"], "a", ("c", "b")]})
    assert scope_map.alternatives("GET") == (frozenset({"a"}), frozenset({"b", "c"}))


def test_scopes_lists_everything_mentioned() -> None:
    assert ScopeMap(EXAMPLE).scopes == {"project:read", "project:write", "team:write", "project:admin"}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"FETCH": ["a"]}, "'FETCH'"),
        ({"GET ": ["a"]}, "'GET '"),
        ({1: ["a"]}, "1"),
        ({"GET": []}, "ScopeMap\\['GET'\\] has no alternatives"),
        ({"GET": [[]]}, "ScopeMap\\['GET'\\]\\[0\\] is an empty alternative"),
        ({"GET": ["a", ()]}, "ScopeMap\\['GET'\\]\\[1\\] is an empty alternative"),
        ({"GET": ["a b"]}, "ScopeMap\\['GET'\\]\\[0\\].*has a space"),
        ({"GET": [["a", "b\u00a0c"]]}, "ScopeMap\\['GET'\\]\\[0\\]"),
        ({"POST": ["ok", ["x", 'y"']]}, "ScopeMap\\['POST'\\]\\[1\\]"),
        ({"GET": [["a", 3]]}, "ScopeMap\\['GET'\\]\\[0\\]"),
        ({"GET": [None]}, "ScopeMap\\['GET'\\]\\[0\\]"),
        ({"GET": None}, "ScopeMap\\['GET'\\]"),
        ({"GET": {"a": 1}}, "ScopeMap\\['GET'\\]"),
        ({"GET": ["a"], "get": ["b"]}, "given twice"),
        ({}, "at least one method"),
    ],
)
def test_bad_maps_fail_at_construction_naming_the_entry(mapping: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScopeMap(mapping)


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError):
        ScopeMap([("GET", ["a"])])  # type: ignore[arg-type]


def test_equality_copy_and_repr() -> None:
    assert ScopeMap(EXAMPLE) == ScopeMap({"post": EXAMPLE["POST"], "get": EXAMPLE["GET"]})
    assert hash(ScopeMap(EXAMPLE)) == hash(ScopeMap(EXAMPLE))
    assert ScopeMap(ScopeMap(EXAMPLE)) == ScopeMap(EXAMPLE)
    assert ScopeMap({"GET": ["a"]}) != ScopeMap({"GET": ["b"]})
    assert "project:admin" in repr(ScopeMap(EXAMPLE))
    assert ScopeMap(EXAMPLE).rule("POST").description == "project:write and team:write, or project:admin"
