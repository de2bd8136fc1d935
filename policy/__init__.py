"""The pure decision engine of an OAuth 2.0 resource server.

Standard library only, synchronous, no I/O and no clock reads: given who is asking (their member
role's scopes and their token's scopes), which organization the URL names, and what the route
requires per HTTP method, it says allowed or denied, why, and which ``WWW-Authenticate``
challenge lets a client step up.
"""

from __future__ import annotations

from .access import Access, AccessError, OrgMismatch, assemble_access
from .actors import Actor, Actors
from .challenge import (
    Challenge,
    ChallengeSyntaxError,
    bearer_challenge,
    dpop_challenge,
    format_challenge,
    parse_challenges,
)
from .decision import Decision, decide
from .requirements import Requirement
from .roles import Roles
from .scope_map import ScopeMap
from .scopes import InvalidScope, ScopeHierarchy, format_scope, parse_scope

__all__ = [
    "Access",
    "AccessError",
    "Actor",
    "Actors",
    "Challenge",
    "ChallengeSyntaxError",
    "Decision",
    "InvalidScope",
    "OrgMismatch",
    "Requirement",
    "Roles",
    "ScopeHierarchy",
    "ScopeMap",
    "assemble_access",
    "bearer_challenge",
    "decide",
    "dpop_challenge",
    "format_challenge",
    "format_scope",
    "parse_challenges",
    "parse_scope",
]
