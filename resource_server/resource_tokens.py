"""Resource-scoped read tokens: short-lived, read-only tokens a browser can put in a URL.

An ``<img src>`` or a download link cannot send an ``Authorization`` header, so an app mints a
token bound to one resource prefix (usecase / org / project, as in an object store's key space)
and to ``GET``/``HEAD`` only. It is an HS256 JWT (``typ: res+jwt``) under the server's own
secrets; a URL leaks more easily than a header, hence the short ``ttl``, the read-only methods
and the narrow prefix. These tokens are never a general bearer credential: only routes that opt
in read them, from their own query parameter.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policy import Access

from .tokens.jws import InvalidToken, hmac_keys, hs256_sign, hs256_verify, integer_claim, string_claim

__all__ = ["READ_METHODS", "ResourceToken", "ResourceTokenIssuer", "ResourceTokenVerifier"]

RESOURCE_TOKEN_TYPE = "res+jwt"
READ_METHODS = frozenset({"GET", "HEAD"})
_MAX_TOKEN_BYTES = 2048


@dataclass(frozen=True, slots=True)
class ResourceToken:
    """What a verified resource token allows: reading under ``usecase/org[/project]``."""

    subject: str
    usecase: str
    org: str
    project: str | None
    expires_at: int


def _segment(value: object, what: str) -> str:
    """A prefix segment: a non-empty string without "/" (it must not widen the prefix)."""
    if not isinstance(value, str) or not value or "/" in value or len(value) > 255:
        raise ValueError(f"{what} must be a non-empty string without '/' of at most 255 characters")
    return value


class ResourceTokenIssuer:
    """Mints resource tokens. ``keys`` maps kid → secret (≥ 32 bytes), the first one signs;
    ``read_scope`` is the scope the caller must hold, in the org, to be given one."""

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        audience: str,
        ttl: int = 300,
        read_scope: str = "project:read",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 0 < ttl <= 3600:
            raise ValueError("resource tokens are short-lived: ttl must be 1 to 3600 seconds")
        self._keys = hmac_keys(keys)
        self._signing_kid = next(iter(self._keys))
        self.audience = audience
        self.ttl = ttl
        self.read_scope = read_scope
        self._clock = clock or time.time

    def mint(self, *, org: str, project: str | None = None, usecase: str, access: Access) -> str:
        """A token for reading ``usecase/org[/project]``, if ``access`` holds ``read_scope`` in ``org``.

        Raises ``PermissionError`` when it does not (the caller answers 403), ``ValueError`` for
        malformed segments."""
        org, usecase = _segment(org, "org"), _segment(usecase, "usecase")
        project = None if project is None else _segment(project, "project")
        if access.org != org or not access.has_scope(self.read_scope):
            raise PermissionError(f"reading in {org!r} needs {self.read_scope} in that organization")
        now = int(self._clock())
        claims = {
            "aud": self.audience,
            "sub": access.subject,
            "org_id": org,
            "usecase": usecase,
            "project": project,
            "htm": sorted(READ_METHODS),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + self.ttl,
        }
        header = {"alg": "HS256", "typ": RESOURCE_TOKEN_TYPE, "kid": self._signing_kid}
        return hs256_sign(header, claims, self._keys[self._signing_kid])


class ResourceTokenVerifier:
    """Verifies resource tokens against the request: method, usecase, org and project."""

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        audience: str,
        ttl: int = 300,
        leeway: int = 5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._keys = hmac_keys(keys)
        self.audience = audience
        self.ttl = ttl
        self.leeway = leeway
        self._clock = clock or time.time

    def verify(
        self, token: str, *, method: str, usecase: str, org: str, project: str | None = None
    ) -> ResourceToken:
        """The token's grant if it allows ``method`` on ``usecase/org[/project]``, else
        :class:`InvalidToken`. A token minted without a project covers every project of the org;
        one minted for a project covers only that project."""
        if not isinstance(method, str) or method.upper() not in READ_METHODS:
            raise InvalidToken("resource tokens allow GET and HEAD only")
        claims = self._verified_claims(token)
        granted = self._grant(claims)
        if (granted.usecase, granted.org) != (usecase, org):
            raise InvalidToken("the token is for another resource")
        if granted.project is not None and granted.project != project:
            raise InvalidToken("the token is for another project")
        return granted

    def _verified_claims(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_BYTES:
            raise InvalidToken("the token is malformed or too large")
        return hs256_verify(token, self._keys, RESOURCE_TOKEN_TYPE)

    def _grant(self, claims: dict[str, Any]) -> ResourceToken:
        now = self._clock()
        exp = integer_claim(claims, "exp", required=True)
        iat = integer_claim(claims, "iat", required=True)
        if now >= exp + self.leeway or iat > now + self.leeway or exp > iat + self.ttl:
            raise InvalidToken("the token has expired or has a lifetime this server does not issue")
        if claims.get("aud") != self.audience or claims.get("htm") != sorted(READ_METHODS):
            raise InvalidToken("the token was not issued for reading here")
        project = claims.get("project")
        if project is not None and (not isinstance(project, str) or not project):
            raise InvalidToken("the token project claim is malformed")
        return ResourceToken(
            subject=string_claim(claims, "sub", required=True),
            usecase=string_claim(claims, "usecase", required=True),
            org=string_claim(claims, "org_id", required=True),
            project=project,
            expires_at=exp,
        )
