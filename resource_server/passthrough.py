"""Which client headers a gateway may forward to a backend: an allowlist, validated up front.

A gateway that forwards "some" client headers is one configuration mistake away from letting a
client set ``Authorization``, ``Host``, ``X-Forwarded-For`` or a hop-by-hop header on a request
the backend trusts. :class:`PassthroughPolicy` refuses such names at construction and, per
request, copies only allowed headers with clean values.

Capture once: call :meth:`PassthroughPolicy.capture` when a backend session is created (for an
agent or a websocket, say) and reuse the result for that session's requests, so a header cannot
change identity or routing halfway through a session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import islice

__all__ = ["PassthroughPolicy"]

# RFC 9110 §5.1: field-name = token; token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 §5.5: field values are visible ASCII, SP, HTAB and obs-text; never CR, LF, NUL or controls.
_CLEAN_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Credentials, framing, routing and hop-by-hop fields (RFC 9110 §7.6.1), and our own trust header.
_REFUSED = frozenset(
    {
        "host",
        "authorization",
        "proxy-authorization",
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "forwarded",
        "x-real-ip",
        "x-viewer-context",
    }
)
_REFUSED_PREFIXES = ("x-forwarded-",)
MAX_HEADERS = 32  # configured names
MAX_INCOMING = 256  # incoming fields looked at; a request with more is hostile or broken
MAX_VALUE_BYTES = 4096


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"{where}: {name!r} is not a valid header name (RFC 9110 §5.1)")
    lowered = name.lower()
    if lowered in _REFUSED or lowered.startswith(_REFUSED_PREFIXES):
        raise ValueError(f"{where}: {name!r} must never be passed through (credentials, framing or routing)")
    return lowered


class PassthroughPolicy:
    """``allow``: client header names copied to the backend. ``static``: headers the gateway sets
    itself on every backend request. Both are checked at construction; an error names the entry."""

    def __init__(self, allow: Iterable[str], static: Mapping[str, str] | None = None) -> None:
        if isinstance(allow, str):
            raise TypeError("allow must be a list of header names, not a string")
        allowed: dict[str, str] = {}
        for index, name in enumerate(allow):
            lowered = _check_name(name, f"allow[{index}]")
            if lowered in allowed:
                raise ValueError(f"allow[{index}]: {name!r} is listed twice (names ignore case)")
            allowed[lowered] = name
        fixed: dict[str, str] = {}
        for name, value in (static or {}).items():
            lowered = _check_name(name, f"static[{name!r}]")
            if lowered in allowed:
                raise ValueError(f"static[{name!r}]: also in allow; a header is either forwarded or fixed")
            if lowered in {n.lower() for n in fixed}:
                raise ValueError(f"static[{name!r}]: listed twice (names ignore case)")
            if (
                not isinstance(value, str)
                or not _CLEAN_VALUE.fullmatch(value)
                or len(value) > MAX_VALUE_BYTES
            ):
                raise ValueError(f"static[{name!r}]: the value has control characters or is too long")
            fixed[name] = value
        if len(allowed) + len(fixed) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers can be passed through")
        self.allow = tuple(allowed.values())
        self.static = dict(fixed)
        self._names = allowed  # lower-cased name -> the name as configured
        self._allowed = frozenset(allowed)

    def capture(self, incoming: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """The headers to send to the backend: the allowed ones from ``incoming`` (a mapping or a
        list of pairs), minus any the incoming ``Connection`` field nominates as hop-by-hop
        (RFC 9110 §7.6.1), minus values with CR, LF, NUL or other controls, plus ``static``."""
        pairs = list(islice(incoming.items() if isinstance(incoming, Mapping) else incoming, MAX_INCOMING))
        nominated = {
            option.strip().lower()
            for name, value in pairs
            if isinstance(name, str) and name.lower() == "connection" and isinstance(value, str)
            for option in value.split(",")
        }
        captured: dict[str, str] = {}
        for name, value in pairs:
            if not isinstance(name, str) or not isinstance(value, str):
                continue
            lowered = name.lower()
            if lowered not in self._allowed or lowered in nominated or lowered in captured:
                continue  # repeated fields: the first wins, a later one cannot override it
            if len(value) > MAX_VALUE_BYTES or not _CLEAN_VALUE.fullmatch(value):
                continue
            captured[lowered] = value.strip(" \t")
        result = {self._names[name]: value for name, value in captured.items()}
        result.update(self.static)
        return result
