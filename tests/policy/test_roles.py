"""Roles: named scope sets, validated at construction."""

from __future__ import annotations

import pytest

from policy import Roles, ScopeHierarchy

ROLES = {
    "member": ["project:read"],
    "admin": ["project:read", "project:write"],
    "manager": "project:read project:write member:write",
    "owner": ["project:read", "project:write", "project:admin", "member:write"],
}


def test_scopes_for_each_role() -> None:
    roles = Roles(ROLES)
    assert roles.scopes_for("member") == {"project:read"}
    assert roles.scopes_for("manager") == {"project:read", "project:write", "member:write"}
    assert isinstance(roles.scopes_for("owner"), frozenset)


def test_unknown_role_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Roles(ROLES).scopes_for("superuser")
    with pytest.raises(KeyError):
        Roles(ROLES).scopes_for(None)  # type: ignore[arg-type]


def test_keeps_declaration_order() -> None:
    assert list(Roles(ROLES)) == ["member", "admin", "manager", "owner"]
    assert len(Roles(ROLES)) == 4
    assert "admin" in Roles(ROLES)


def test_roles_granting_and_all_scopes() -> None:
    roles = Roles(ROLES)
    assert roles.roles_granting({"project:write"}) == ("admin", "manager", "owner")
    assert roles.roles_granting({"project:admin"}) == ("owner",)
    assert roles.roles_granting({"nothing:here"}) == ()
    assert roles.all_scopes == {"project:read", "project:write", "project:admin", "member:write"}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"member": ["project read"]}, "role 'member'"),
        ({"member": ["proj\u00a0read"]}, "role 'member'"),
        ({"member": "a  b"}, "role 'member'"),
        ({"member": [1]}, "role 'member'"),
        ({"member": None}, "role 'member'"),
        ({"": ["a"]}, "role name"),
        ({" admin": ["a"]}, "role name"),
        ({1: ["a"]}, "role name"),
    ],
)
def test_bad_configuration_fails_at_construction(mapping: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Roles(mapping)


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError):
        Roles([("member", ["a"])])  # type: ignore[arg-type]


def test_hierarchy_is_applied_once_at_construction() -> None:
    hierarchy = ScopeHierarchy({"org:admin": ["org:write"], "org:write": ["org:read"]})
    roles = Roles({"admin": ["org:admin"], "member": ["org:read"]}, hierarchy=hierarchy)
    assert roles.scopes_for("admin") == {"org:admin", "org:write", "org:read"}
    assert roles.scopes_for("member") == {"org:read"}
    assert roles.hierarchy is hierarchy


def test_equality_and_repr() -> None:
    assert Roles(ROLES) == Roles(dict(ROLES))
    assert Roles({"a": ["x"]}) != Roles({"a": ["y"]})
    assert "member" in repr(Roles(ROLES))
