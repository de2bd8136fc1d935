"""DjangoGrantStore: the SQLAlchemy GrantStore's interface and rules on the Django ORM, on SQLite
and on a real PostgreSQL server; 100 concurrent approvals of one session leave exactly one row."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from django.db import connections

from policy import InvalidScope
from resource_server.django.grants import DjangoGrantStore
from resource_server.django.models import AgentGrant
from resource_server.grant_rules import MAX_TTL, Grant
from tests.support import FakeClock

_orgs = itertools.count()


@pytest.fixture(params=["default", "postgres"])
def alias(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_alias"))
    return "default"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key() -> dict[str, str]:
    """A key no other test uses: the tables outlive each test."""
    return {"org": f"org-{next(_orgs)}", "subject": "user-1", "session_id": "sess-1"}


@pytest.fixture
def store(alias: str, clock: FakeClock) -> Iterator[DjangoGrantStore]:
    yield DjangoGrantStore(using=alias, clock=clock)


def test_approve_active_revoke_purge_round_trip(
    store: DjangoGrantStore, clock: FakeClock, key: dict[str, str]
) -> None:
    grant = store.approve(**key, scopes={"docs:write", "docs:read"}, ttl=600)
    assert grant == Grant(
        key["org"], "user-1", "sess-1", frozenset({"docs:read", "docs:write"}), int(clock.now) + 600
    )
    assert store.active_scopes(**key) == {"docs:read", "docs:write"}
    assert store.active_scopes(**{**key, "session_id": "other"}) == frozenset()
    assert store.revoke(**key) is True
    assert store.revoke(**key) is False


def test_reapproval_merges_and_an_expired_one_is_replaced(
    store: DjangoGrantStore, clock: FakeClock, key: dict[str, str]
) -> None:
    store.approve(**key, scopes="docs:read", ttl=600)
    merged = store.approve(**key, scopes=["docs:write"], ttl=60)
    assert merged.scopes == {"docs:read", "docs:write"} and merged.expires_at == int(clock.now) + 600
    clock.advance(601)
    assert store.get(**key) is None and store.active_scopes(**key) == frozenset()
    fresh = store.approve(**key, scopes=["docs:write"], ttl=60)
    assert fresh.scopes == {"docs:write"}  # the old approval does not come back
    assert AgentGrant.objects.using(store.using).filter(org=key["org"]).count() == 1
    clock.advance(61)
    assert store.purge_expired() >= 1 and store.get(**key) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"org": ""},
        {"org": 1},
        {"subject": "x" * 256},
        {"session_id": "a\x00b"},
        {"scopes": []},
        {"scopes": "bad scope\x01"},
        {"ttl": 0},
        {"ttl": MAX_TTL + 1},
        {"ttl": True},
    ],
    ids=repr,
)
def test_validation_runs_before_any_database_access(bad: dict[str, object]) -> None:
    """The unreachable database proves it: a bad argument is a ValueError, never a 503."""
    arguments = {
        "org": "acme",
        "subject": "user-1",
        "session_id": "s",
        "scopes": ["docs:read"],
        "ttl": 60,
        **bad,
    }
    with pytest.raises((ValueError, InvalidScope)):
        DjangoGrantStore(using="unreachable").approve(**arguments)  # type: ignore[arg-type]


def test_a_database_that_cannot_answer_is_unavailable() -> None:
    from resource_server import VerificationUnavailable

    store = DjangoGrantStore(using="unreachable")
    with pytest.raises(VerificationUnavailable, match=r"cannot be reached \(OperationalError\)"):
        store.approve(org="acme", subject="user-1", session_id="s", scopes=["docs:read"], ttl=60)
    with pytest.raises(VerificationUnavailable):
        store.active_scopes(org="acme", subject="user-1", session_id="s")


def test_100_concurrent_approvals_of_one_session_leave_one_row(
    postgres_alias: str, key: dict[str, str]
) -> None:
    store = DjangoGrantStore(using=postgres_alias, clock=FakeClock())
    approvers = 100
    start = threading.Barrier(approvers)
    failures: list[BaseException] = []

    def approve(number: int) -> None:
        try:
            start.wait(30)
            store.approve(**key, scopes=[f"scope:{number}"], ttl=600)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(approvers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    rows = AgentGrant.objects.using(postgres_alias).filter(org=key["org"])
    assert rows.count() == 1
    assert store.active_scopes(**key) == {f"scope:{n}" for n in range(approvers)}  # every merge kept
