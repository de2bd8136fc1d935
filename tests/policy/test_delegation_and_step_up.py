"""Delegation (RFC 8693 actors and their ceilings) and step-up authentication (RFC 9470) in the
engine: what an actor may do, what a method asks of how the person authenticated, and which
answer a request that falls short gets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import (
    Actor,
    Actors,
    Requirement,
    ScopeMap,
    assemble_access,
    decide,
    parse_challenges,
)
from policy.access import Access

ADMIN = frozenset({"project:read", "project:write", "project:admin"})
NOW = 1_900_000_000

MAP = ScopeMap(
    {
        "GET": "project:read",
        "POST": "project:write",
        "DELETE": Requirement("project:admin", acr=["mfa", "hwk"], max_age=300),
        "PATCH": Requirement("project:write", actors=()),
        "PUT": [Requirement("project:write", actors=("agent:deploy",)), "project:admin"],
    }
)


def access(
    token: frozenset[str] | None = ADMIN,
    *,
    role: frozenset[str] = ADMIN,
    actor: str | None = None,
    actors: Actors | None = None,
    acr: str | None = "mfa",
    auth_time: int | None = NOW - 10,
) -> Access:
    chain = (Actor(actor),) if actor is not None else ()
    return assemble_access(
        subject="user-1",
        role_scopes=role,
        token_scopes=token,
        actors=actors,
        actor_chain=chain,
        acr=acr,
        auth_time=auth_time,
    )


# -- values ------------------------------------------------------------------------------------------


def test_an_actor_is_a_checked_identifier() -> None:
    assert Actor("agent:1", client_id="c", iss="https://as.test") == Actor("agent:1", "c", "https://as.test")
    for bad in ("", "a\x00b", "a\u202eb", 7, "x" * 1025):
        with pytest.raises(ValueError):
            Actor(bad)  # type: ignore[arg-type]  # wrong types are refused too
    with pytest.raises(ValueError):
        Actor("agent", client_id="")


def test_actors_are_validated_and_fail_closed() -> None:
    actors = Actors({"agent:a": "project:read project:write", "agent:b": ["project:read"]})
    assert actors.ceiling("agent:a") == {"project:read", "project:write"}
    assert actors.ceiling("agent:unknown") is None  # refused: no default
    assert Actors({}, default="project:read").ceiling("anyone") == {"project:read"}
    assert "agent:a" in actors and list(actors) == ["agent:a", "agent:b"]
    for bad in ({"agent": "a  b"}, {"agent": 5}, {"": "x"}, {"agent": ["has space"]}):
        with pytest.raises(ValueError):
            Actors(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Actors("agent")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"scopes": ""}, "empty|scope"),
        ({"scopes": "a b"}, "space"),
        ({"scopes": []}, "empty"),
        ({"scopes": "a", "acr": ["has space"]}, "acr"),
        ({"scopes": "a", "acr": ['quo"te']}, "acr"),
        ({"scopes": "a", "acr": [5]}, "acr"),
        ({"scopes": "a", "acr": ["x"] * 33}, "more than"),
        ({"scopes": "a", "max_age": -1}, "max_age"),
        ({"scopes": "a", "max_age": True}, "max_age"),
        ({"scopes": "a", "max_age": 1.5}, "max_age"),
        ({"scopes": "a", "actors": "agent"}, "actors"),
        ({"scopes": "a", "actors": ("",)}, "actor"),
    ],
)
def test_a_requirement_is_validated_at_construction(kwargs: dict[str, Any], fragment: str) -> None:
    scopes = kwargs.pop("scopes")
    with pytest.raises(ValueError, match=fragment):
        Requirement(scopes, **kwargs)


def test_a_requirement_is_an_alternative_like_any_other() -> None:
    assert MAP.alternatives("PUT") == (frozenset({"project:write"}), frozenset({"project:admin"}))
    assert MAP.to_dict()["DELETE"] == [["project:admin"]]
    requirements = MAP.requirements("DELETE")
    assert requirements is not None and requirements[0].acr_values == ("mfa", "hwk")
    assert MAP.needs_time and not ScopeMap({"GET": "a"}).needs_time
    assert ScopeMap({"GET": Requirement("a")}) == ScopeMap({"GET": "a"})  # no conditions: the same
    rule = MAP.rule("DELETE")
    assert rule is not None and "acr mfa or hwk" in rule.description and "300 s" in rule.description


# -- actors --------------------------------------------------------------------------------------------


def test_without_an_actors_policy_a_delegated_token_is_treated_as_today() -> None:
    delegated = access(actor="agent:x")
    assert delegated.actor == Actor("agent:x") and delegated.scopes == ADMIN
    assert delegated.actor_ceiling is None


def test_the_ceiling_narrows_what_the_person_could_do() -> None:
    actors = Actors({"agent:reader": "project:read"})
    delegated = access(actor="agent:reader", actors=actors)
    assert delegated.scopes == {"project:read"}
    assert decide(delegated, MAP, "GET", now=NOW).allowed
    refused = decide(delegated, MAP, "POST", now=NOW)
    # The role holds project:write but the actor may never exercise it: no token could help.
    assert (refused.status, refused.error, refused.www_authenticate) == (403, None, None)
    assert "agent:reader" in refused.reason
    # The same person, acting directly, is not capped.
    assert decide(access(actors=actors), MAP, "POST", now=NOW).allowed


def test_an_unlisted_actor_is_refused_unless_a_default_says_otherwise() -> None:
    refused = access(actor="agent:stranger", actors=Actors({"agent:reader": "project:read"}))
    assert refused.scopes == frozenset()
    assert decide(refused, MAP, "GET", now=NOW).status == 403
    defaulted = access(actor="agent:stranger", actors=Actors({}, default="project:read"))
    assert decide(defaulted, MAP, "GET", now=NOW).allowed


def test_the_challenge_names_only_what_role_and_ceiling_both_allow() -> None:
    scope_map = ScopeMap({"POST": ["project:admin", "project:write"]})
    actors = Actors({"agent:writer": ["project:read", "project:write"]})
    short = access(token=frozenset({"project:read"}), actor="agent:writer", actors=actors)
    decision = decide(short, scope_map, "POST", now=NOW)
    assert (decision.status, decision.error, decision.scope) == (
        403,
        "insufficient_scope",
        ("project:write",),
    )


def test_a_method_that_refuses_delegation_refuses_every_actor_and_no_one_else() -> None:
    delegated = decide(access(actor="agent:x"), MAP, "PATCH", now=NOW)
    assert (delegated.status, delegated.error) == (403, None)
    assert "agent:x" in delegated.reason
    assert decide(access(), MAP, "PATCH", now=NOW).allowed


def test_a_method_that_names_its_actors_lets_only_those_act() -> None:
    writer = frozenset({"project:read", "project:write"})
    assert decide(access(writer, role=writer, actor="agent:deploy"), MAP, "PUT", now=NOW).allowed
    other = decide(access(writer, role=writer, actor="agent:other"), MAP, "PUT", now=NOW)
    assert (other.status, other.error) == (403, None)  # project:admin is out of the role's reach
    assert decide(access(writer, role=writer), MAP, "PUT", now=NOW).allowed  # the person


# -- step-up authentication (RFC 9470) -------------------------------------------------------------------


def test_a_recent_strong_authentication_is_allowed() -> None:
    assert decide(access(acr="hwk", auth_time=NOW - 300), MAP, "DELETE", now=NOW).allowed


@pytest.mark.parametrize(
    ("acr", "auth_time"),
    [("pwd", NOW - 10), (None, NOW - 10), ("mfa", NOW - 301), ("mfa", None), ("MFA", NOW)],
)
def test_a_weak_or_old_authentication_is_401_insufficient_user_authentication(
    acr: str | None, auth_time: int | None
) -> None:
    decision = decide(access(acr=acr, auth_time=auth_time), MAP, "DELETE", realm="api", now=NOW)
    assert (decision.allowed, decision.status, decision.error) == (
        False,
        401,
        "insufficient_user_authentication",
    )
    assert (decision.acr_values, decision.max_age) == (("mfa", "hwk"), 300)
    assert decision.www_authenticate is not None
    (challenge,) = parse_challenges(decision.www_authenticate)
    assert challenge.is_scheme("Bearer")
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "mfa hwk" and challenge.params["max_age"] == "300"
    assert challenge.params["realm"] == "api"


def test_scopes_come_first_then_authentication_two_steps_at_most() -> None:
    """Both short: the scope step first (it may be silent), then the person authenticates once."""
    both_short = access(token=frozenset({"project:read"}), acr="pwd")
    first = decide(both_short, MAP, "DELETE", now=NOW)
    assert (first.status, first.error, first.scope) == (403, "insufficient_scope", ("project:admin",))
    second = decide(access(acr="pwd"), MAP, "DELETE", now=NOW)
    assert (second.status, second.error) == (401, "insufficient_user_authentication")
    assert decide(access(acr="mfa"), MAP, "DELETE", now=NOW).allowed


def test_no_step_up_is_asked_when_the_role_cannot_reach_the_method() -> None:
    reader = frozenset({"project:read"})
    decision = decide(access(reader, role=reader, acr="pwd"), MAP, "DELETE", now=NOW)
    assert (decision.status, decision.error, decision.www_authenticate) == (403, None, None)


def test_a_session_cannot_show_how_the_person_signed_in() -> None:
    decision = decide(access(None, acr=None, auth_time=None), MAP, "DELETE", now=NOW)
    assert (decision.status, decision.error) == (403, None)


def test_max_age_needs_now() -> None:
    with pytest.raises(TypeError, match="now"):
        decide(access(), MAP, "DELETE")


def test_an_alternative_without_conditions_is_decided_without_the_clock() -> None:
    assert decide(
        access(), ScopeMap({"DELETE": ["project:admin", Requirement("x", max_age=5)]}), "DELETE"
    ).allowed


@given(
    token=st.frozensets(st.sampled_from(sorted(ADMIN))),
    role=st.frozensets(st.sampled_from(sorted(ADMIN))),
    ceiling=st.frozensets(st.sampled_from(sorted(ADMIN))),
    acr=st.sampled_from([None, "pwd", "mfa", "hwk"]),
    age=st.integers(min_value=-5, max_value=1000),
    method=st.sampled_from(["GET", "POST", "DELETE", "PATCH", "PUT"]),
)
def test_a_ceiling_never_widens_and_a_challenge_can_always_be_met(
    token: frozenset[str],
    role: frozenset[str],
    ceiling: frozenset[str],
    acr: str | None,
    age: int,
    method: str,
) -> None:
    """Whatever the inputs: the actor's ceiling only narrows; an insufficient_scope challenge
    names scopes the role and ceiling hold; a step-up names what the method asks."""
    actors = Actors({"agent:a": ceiling})
    capped = access(token, role=role, actor="agent:a", actors=actors, acr=acr, auth_time=NOW - age)
    free = access(token, role=role, actor="agent:a", acr=acr, auth_time=NOW - age)
    assert capped.scopes <= free.scopes and capped.scopes <= ceiling
    decision = decide(capped, MAP, method, now=NOW)
    if decision.allowed:
        assert decide(free, MAP, method, now=NOW).allowed
    if decision.error == "insufficient_scope":
        assert set(decision.scope) <= role & ceiling
    if decision.error == "insufficient_user_authentication":
        assert decision.status == 401 and decision.acr_values == ("mfa", "hwk")
