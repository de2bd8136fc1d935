"""User-approved write grants for agent sessions on the Django ORM: the interface of the
SQLAlchemy :class:`~resource_server.grants.GrantStore` (``approve``, ``get``, ``active_scopes``,
``revoke``, ``purge_expired``), its checks and its merge rule (:mod:`resource_server.grant_rules`),
in the project's own database and migrations (``manage.py migrate`` creates the table).

One row per (org, subject, session id), whatever the concurrency: an approval inserts the row if
it is missing (``INSERT ... ON CONFLICT DO NOTHING``), then reads it under a row lock
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers itself) and merges, inside one
transaction. A database that cannot answer now is
:class:`~resource_server.VerificationUnavailable` (``503`` with ``Retry-After``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import InterfaceError, OperationalError, transaction

from policy.scopes import format_scope, parse_scope

from ..grant_rules import Grant, check_key, check_scopes, check_ttl, merge
from ..tokens.errors import VerificationUnavailable

if TYPE_CHECKING:  # the model is imported once the app registry is ready, in _rows
    from django.db.models import QuerySet

    from .models import AgentGrant

__all__ = ["DjangoGrantStore"]


@contextmanager
def _reachable() -> Iterator[None]:
    """:class:`~resource_server.VerificationUnavailable` for a database that cannot answer now
    (down, unreachable, locked past its timeout). Only the class is said: the message can quote
    the statement, its parameters and the connection settings."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise VerificationUnavailable(
            f"the grants database cannot be reached ({type(exc).__name__})"
        ) from None


class DjangoGrantStore:
    """Approval grants in the Django database ``using`` (an alias of ``DATABASES``). ``clock``
    returns Unix time. Safe to share between threads: Django keeps a connection per thread."""

    def __init__(self, *, using: str = "default", clock: Callable[[], float] | None = None) -> None:
        self.using = using
        self._clock = clock or time.time

    @property
    def _rows(self) -> QuerySet[AgentGrant]:
        from .models import AgentGrant  # the app registry is ready by the first call

        return AgentGrant.objects.using(self.using)

    def approve(
        self, *, org: str, subject: str, session_id: str, scopes: Iterable[str] | str, ttl: int
    ) -> Grant:
        """Record that the user approved ``scopes`` for this session for ``ttl`` seconds. Every
        argument is validated before the database is touched (``ValueError``). An active grant
        for the same session is merged (scope union, the later expiry wins); an expired one is
        replaced. The read-modify-write is atomic under concurrency."""
        from .models import AgentGrant

        org, subject, session_id = check_key(org, subject, session_id)
        new_scopes = check_scopes(scopes)
        ttl = check_ttl(ttl)
        now = float(self._clock())
        expires_at = int(now) + ttl  # whole seconds, rounded down: never longer than asked
        key = {"org": org, "subject": subject, "session_id": session_id}
        with _reachable(), transaction.atomic(using=self.using):
            # Creates the row, or (on conflict) waits for a concurrent creator to commit; either
            # way the row exists for the locking read below.
            row = AgentGrant(**key, scopes=format_scope(new_scopes), created_at=now, expires_at=expires_at)
            self._rows.bulk_create([row], ignore_conflicts=True)
            stored = self._rows.select_for_update().get(**key)
            merged = merge(stored.scopes, stored.expires_at, new_scopes, expires_at, now)
            changes = {"scopes": merged.scope_string, "expires_at": merged.expires_at}
            if merged.replaced:  # expired: start over, or an old approval would be revived
                changes["created_at"] = now
            if any(getattr(stored, name) != value for name, value in changes.items()):
                self._rows.filter(pk=stored.pk).update(**changes)
        return Grant(org, subject, session_id, merged.scopes, merged.expires_at)

    def get(self, *, org: str, subject: str, session_id: str) -> Grant | None:
        """The active grant for this session, or None if there is none or it has expired."""
        org, subject, session_id = check_key(org, subject, session_id)
        with _reachable():
            row = (
                self._rows.filter(org=org, subject=subject, session_id=session_id)
                .values_list("scopes", "expires_at")
                .first()
            )
        if row is None or not row[1] > self._clock():
            return None
        return Grant(org, subject, session_id, parse_scope(row[0]), int(row[1]))

    def active_scopes(self, *, org: str, subject: str, session_id: str) -> frozenset[str]:
        """The scopes approved for this session if the grant has not expired, else the empty set."""
        grant = self.get(org=org, subject=subject, session_id=session_id)
        return grant.scopes if grant else frozenset()

    def revoke(self, *, org: str, subject: str, session_id: str) -> bool:
        """Delete this session's grant; True if there was one (expired or not)."""
        org, subject, session_id = check_key(org, subject, session_id)
        with _reachable():
            deleted, _ = self._rows.filter(org=org, subject=subject, session_id=session_id).delete()
        return int(deleted) > 0

    def purge_expired(self) -> int:
        """Delete every expired grant; returns how many were deleted."""
        with _reachable():
            deleted, _ = self._rows.filter(expires_at__lte=self._clock()).delete()
        return int(deleted)
