"""assemble_access: role ∩ token, first-party sessions, and the org-binding rule."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import Access, AccessError, OrgMismatch, ScopeHierarchy, assemble_access

scope_sets = st.frozensets(st.sampled_from(["a", "b", "c", "d", "e:read", "e:write"]))


@given(scope_sets, scope_sets)
def test_effective_scopes_are_role_intersect_token(role: frozenset[str], token: frozenset[str]) -> None:
    access = assemble_access(subject="u", role_scopes=role, token_scopes=token)
    assert access.scopes == role & token
    assert access.scopes <= role
    assert access.role_scopes == role and access.token_scopes == token


@given(scope_sets)
def test_session_uses_the_role_scopes(role: frozenset[str]) -> None:
    access = assemble_access(subject="u", role_scopes=role, token_scopes=None)
    assert access.scopes == role
    assert access.token_scopes is None
    assert access.is_session


def test_a_token_never_widens_the_role() -> None:
    access = assemble_access(subject="u", role_scopes={"project:read"}, token_scopes={"project:admin"})
    assert access.scopes == frozenset()
    assert not access.has_scope("project:admin")


def test_has_scope_and_fields() -> None:
    access = assemble_access(
        subject="user-1", role_scopes=["a", "b"], token_scopes=("b",), token_org="acme", request_org="acme"
    )
    assert access == Access("user-1", "acme", frozenset({"a", "b"}), frozenset({"b"}), frozenset({"b"}))
    assert access.has_scope("b") and not access.has_scope("a")
    assert not access.is_session


def test_access_is_frozen() -> None:
    access = assemble_access(subject="u", role_scopes={"a"}, token_scopes=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        access.scopes = frozenset({"admin"})  # type: ignore[misc]


def test_org_mismatch_is_refused() -> None:
    with pytest.raises(OrgMismatch) as caught:
        assemble_access(
            subject="u", role_scopes={"a"}, token_scopes={"a"}, token_org="acme", request_org="globex"
        )
    assert isinstance(caught.value, AccessError)
    assert caught.value.token_org == "acme" and caught.value.request_org == "globex"
    assert "acme" not in str(caught.value)  # the message is safe to send


def test_org_comparison_is_exact() -> None:
    for other in ("ACME", "acme ", "", "acme\x00"):
        with pytest.raises(OrgMismatch):
            assemble_access(
                subject="u", role_scopes={"a"}, token_scopes={"a"}, token_org="acme", request_org=other
            )


def test_session_credentials_bound_to_an_org_are_checked_too() -> None:
    with pytest.raises(OrgMismatch):
        assemble_access(
            subject="u", role_scopes={"a"}, token_scopes=None, token_org="acme", request_org="globex"
        )


@pytest.mark.parametrize(
    ("token_org", "request_org", "org"),
    [("acme", "acme", "acme"), (None, "acme", "acme"), ("acme", None, "acme"), (None, None, None)],
)
def test_org_binding_applies_only_when_both_are_set(token_org, request_org, org) -> None:
    access = assemble_access(
        subject="u", role_scopes={"a"}, token_scopes={"a"}, token_org=token_org, request_org=request_org
    )
    assert access.org == org


def test_scope_strings_are_refused_where_sets_are_expected() -> None:
    with pytest.raises(TypeError, match="parse_scope"):
        assemble_access(subject="u", role_scopes="a b", token_scopes=None)
    with pytest.raises(TypeError, match="parse_scope"):
        assemble_access(subject="u", role_scopes={"a"}, token_scopes="a b")


@pytest.mark.parametrize("subject", ["", None, 42])
def test_subject_must_be_a_non_empty_string(subject: object) -> None:
    with pytest.raises(TypeError):
        assemble_access(subject=subject, role_scopes={"a"}, token_scopes=None)  # type: ignore[arg-type]


def test_hierarchy_expands_both_sides() -> None:
    hierarchy = ScopeHierarchy({"org:admin": ["org:write"], "org:write": ["org:read"]})
    access = assemble_access(
        subject="u", role_scopes={"org:admin"}, token_scopes={"org:write"}, hierarchy=hierarchy
    )
    assert access.scopes == {"org:write", "org:read"}
