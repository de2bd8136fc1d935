"""``request.user`` for a request authenticated by an access token."""

from __future__ import annotations

from typing import Any

from ..tokens import VerifiedToken

__all__ = ["TokenUser"]


class TokenUser:
    """A lightweight principal for a token's subject, for projects that do not map subjects to
    their user model (``ResourceServer(user_for=...)`` does). It is authenticated, holds no
    Django permissions and is never saved: nothing is created in the database.

    ``pk``, ``id`` and ``username`` are the token's subject; ``token`` is the
    :class:`~resource_server.tokens.VerifiedToken`."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, token: VerifiedToken) -> None:
        self.token = token
        self.pk = self.id = self.username = token.subject

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, module: str) -> bool:
        return False

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        return set()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and other.username == self.username

    def __hash__(self) -> int:
        return hash(self.username)

    def __str__(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"TokenUser({self.username!r})"
