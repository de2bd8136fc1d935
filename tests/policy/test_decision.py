"""decide(): the allow rule, which challenge a denial carries, and when there is none."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import Decision, ScopeMap, assemble_access, decide, parse_challenges

PROJECT = ScopeMap(
    {
        "GET": ["project:read", "project:write"],
        "POST": [["project:write", "team:write"], "project:admin"],
        "DELETE": ["project:admin"],
    }
)


def access(role: set[str], token: set[str] | None):
    return assemble_access(subject="user-1", role_scopes=role, token_scopes=token)


def test_allowed_when_any_alternative_is_held() -> None:
    decision = decide(access({"project:write"}, {"project:write"}), PROJECT, "GET")
    assert decision == Decision(True, 200, None, (), None, decision.reason)
    assert "project:write" in decision.reason


def test_allowed_needs_every_scope_of_an_alternative() -> None:
    both = {"project:write", "team:write"}
    assert decide(access(both, both), PROJECT, "POST").allowed
    assert not decide(access(both, {"project:write"}), PROJECT, "POST").allowed


def test_method_is_case_insensitive_and_head_uses_get() -> None:
    reader = access({"project:read"}, {"project:read"})
    assert decide(reader, PROJECT, "get").allowed
    assert decide(reader, PROJECT, "HEAD").allowed
    assert decide(reader, PROJECT, "head").allowed


def test_token_short_gets_insufficient_scope_with_the_first_alternative_the_role_holds() -> None:
    # The role holds project:admin but not team:write, so the first alternative would not help.
    role = {"project:read", "project:write", "project:admin"}
    decision = decide(access(role, {"project:read"}), PROJECT, "POST", realm="api")
    assert decision.status == 403 and not decision.allowed
    assert decision.error == "insufficient_scope"
    assert decision.scope == ("project:admin",)
    assert (
        decision.www_authenticate == 'Bearer realm="api", error="insufficient_scope", scope="project:admin"'
    )


def test_challenge_advertises_one_whole_alternative_sorted() -> None:
    role = {"project:write", "team:write", "project:admin"}
    decision = decide(access(role, {"project:write"}), PROJECT, "POST")
    assert decision.scope == ("project:write", "team:write")
    assert decision.www_authenticate == 'Bearer error="insufficient_scope", scope="project:write team:write"'


def test_when_neither_token_nor_role_holds_an_alternative_there_is_no_futile_challenge() -> None:
    """A challenge would send the client to re-authorize its user for scopes the role can never
    pass through role ∩ token: no token can help, so there is none."""
    decision = decide(access({"project:read"}, {"project:read"}), PROJECT, "POST", realm="api")
    assert (decision.allowed, decision.status, decision.error) == (False, 403, None)
    assert decision.www_authenticate is None and decision.scope == ()
    assert "no token can help" in decision.reason


def test_token_would_do_but_role_does_not_gets_no_challenge() -> None:
    decision = decide(access({"project:read"}, {"project:admin"}), PROJECT, "DELETE", realm="api")
    assert (decision.allowed, decision.status, decision.error) == (False, 403, None)
    assert decision.www_authenticate is None and decision.scope == ()
    assert "role" in decision.reason and "project:admin" in decision.reason


def test_a_token_holding_an_alternative_the_role_lacks_still_gets_the_one_the_role_holds() -> None:
    """The token's team:read is useless (the role lacks it), but the role holds project:read, so
    a token with project:read would pass: that is the challenge."""
    scope_map = ScopeMap({"GET": ["team:read", "project:read"]})
    decision = decide(access({"project:read"}, {"team:read"}), scope_map, "GET")
    assert decision.error == "insufficient_scope" and decision.scope == ("project:read",)


def test_not_a_member_gets_no_challenge() -> None:
    decision = decide(access(set(), {"project:read"}), PROJECT, "GET")
    assert decision.status == 403 and decision.www_authenticate is None


def test_unmapped_method_gets_no_challenge() -> None:
    owner = {"project:read", "project:write", "project:admin", "team:write"}
    for method in ("PUT", "PATCH", "OPTIONS", "BREW", "", "x" * 10_000):
        decision = decide(access(owner, owner), PROJECT, method, realm="api")
        assert (decision.status, decision.error, decision.www_authenticate) == (403, None, None)
        assert len(decision.reason) < 200


def test_session_never_gets_a_challenge() -> None:
    decision = decide(access({"project:read"}, None), PROJECT, "DELETE", realm="api")
    assert decision.status == 403 and decision.www_authenticate is None and decision.error is None
    assert decide(access({"project:admin"}, None), PROJECT, "DELETE").allowed


def test_resource_metadata_is_added_to_the_challenge() -> None:
    decision = decide(
        access({"project:admin"}, {"project:read"}),
        PROJECT,
        "DELETE",
        realm="api",
        resource_metadata="https://api.example/.well-known/oauth-protected-resource",
    )
    (challenge,) = parse_challenges(decision.www_authenticate)
    assert challenge.get("resource_metadata") == "https://api.example/.well-known/oauth-protected-resource"
    assert challenge.get("scope") == "project:admin"


def test_a_plain_mapping_is_accepted() -> None:
    assert decide(access({"a"}, {"a"}), {"GET": ["a"]}, "GET").allowed


def test_decision_is_frozen_and_allowed_decisions_are_shared() -> None:
    reader = access({"project:read"}, {"project:read"})
    first, second = decide(reader, PROJECT, "GET"), decide(reader, PROJECT, "GET")
    assert first is second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.allowed = False  # type: ignore[misc]


ALL_SCOPES = ["project:read", "project:write", "project:admin", "team:write"]
scope_sets = st.frozensets(st.sampled_from(ALL_SCOPES))


@given(scope_sets, scope_sets | st.none(), st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
def test_the_rules_hold_for_every_combination(role, token, method) -> None:
    """The issue's rules, restated as a property over every role/token pair."""
    acc = assemble_access(subject="u", role_scopes=role, token_scopes=token)
    decision = decide(acc, PROJECT, method, realm="api")
    alternatives = PROJECT.alternatives(method) or ()
    allowed = any(alt <= acc.scopes for alt in alternatives)
    assert decision.allowed is allowed
    assert decision.status == (200 if allowed else 403)
    held_by_role = [alt for alt in alternatives if alt <= role]
    if allowed or token is None or not held_by_role:
        # Allowed, or no token could help (the role holds no alternative, a session, an unmapped
        # method): never a challenge. Otherwise a token holding a role's alternative would pass.
        assert decision.www_authenticate is None and decision.error is None and decision.scope == ()
        return
    expected = held_by_role[0]
    assert decision.scope == tuple(sorted(expected))
    (challenge,) = parse_challenges(decision.www_authenticate)
    assert challenge.is_scheme("bearer")
    assert dict(challenge.params) == {
        "realm": "api",
        "error": "insufficient_scope",
        "scope": " ".join(sorted(expected)),
    }
    # Stepping up to the advertised scopes succeeds: every challenge is one a client can act on.
    stepped = assemble_access(subject="u", role_scopes=role, token_scopes=token | expected)
    assert decide(stepped, PROJECT, method).allowed
