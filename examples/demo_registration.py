"""Dynamic client registration (RFC 7591) for the demo's authorization server, small and bounded.

MCP clients register themselves: the MCP SDK's ``OAuthClientProvider`` posts its client metadata
to the ``registration_endpoint`` of the server's RFC 8414 metadata before it sends anyone to
authorize. This server registers public clients only, of one shape:

- no secret: ``token_endpoint_auth_method`` ``none`` (omitted means the same here), so every
  registered client proves itself with PKCE S256 alone, which the authorization endpoint demands;
- the authorization code grant (``refresh_token``, which MCP clients ask for by default, is
  dropped: RFC 7591 §3.2.1 lets the server register less than asked, and the answer says so);
- one to four redirect URIs, each an ``http`` loopback URL (RFC 8252 §7.3: a client on the
  user's own machine), at most 256 characters, compared exactly when used;
- every scope of the server; what a token carries is still capped by the user's role.

Anything else is refused with ``invalid_redirect_uri`` or ``invalid_client_metadata`` (§3.2.2).
Members this server does not use are ignored (§2). The server itself caps how many clients it
registers and how large a request may be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The largest registration request read, in bytes.
MAX_REGISTRATION_BYTES = 8 * 1024
MAX_REDIRECT_URIS = 4
MAX_URI_CHARS = 256
MAX_NAME_CHARS = 100
#: RFC 8252 §7.3 names the IP literals; ``localhost`` is common among MCP clients (§8.3 advises
#: against it, as it depends on the resolver), and loopback it is.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: Every dynamically registered client's id starts with this, which no seeded client's does.
DYNAMIC_PREFIX = "dyn-"


class RegistrationRefused(ValueError):
    """An RFC 7591 §3.2.2 error: ``error`` is the code, ``description`` safe to send (it never
    echoes the request)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ClientMetadata:
    """What this server keeps of a registration request."""

    redirect_uris: tuple[str, ...]
    client_name: str | None = None


def check_client_metadata(body: dict[str, Any]) -> ClientMetadata:
    """The registration request ``body`` (one JSON object), checked; :class:`RegistrationRefused`
    when this server cannot register a client that does what it asks."""
    method = body.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise _metadata(
            "this server registers public clients only: token_endpoint_auth_method none, with PKCE"
        )
    grant_types = _strings(body, "grant_types", ["authorization_code"])
    if "authorization_code" not in grant_types:
        raise _metadata("this server registers clients of the authorization_code grant only")
    if "code" not in _strings(body, "response_types", ["code"]):
        raise _metadata("response_types must include code")
    name = body.get("client_name")
    if name is not None and not (
        isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable()
    ):
        raise _metadata(f"client_name must be 1-{MAX_NAME_CHARS} printable characters")
    return ClientMetadata(_redirect_uris(body.get("redirect_uris")), name)


def _redirect_uris(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_REDIRECT_URIS:
        raise RegistrationRefused(
            "invalid_redirect_uri", f"redirect_uris must list 1-{MAX_REDIRECT_URIS} redirect URIs"
        )
    for uri in value:
        if not _loopback(uri):
            raise RegistrationRefused(
                "invalid_redirect_uri",
                f"each redirect URI must be an http loopback URL (127.0.0.1, [::1] or localhost)"
                f" without credentials, query or fragment, at most {MAX_URI_CHARS} characters",
            )
    return tuple(dict.fromkeys(value))  # a repeated URI is registered once


def _loopback(uri: object) -> bool:
    # ASCII without spaces or controls: the store keeps the list space-separated.
    if not isinstance(uri, str) or not 0 < len(uri) <= MAX_URI_CHARS or not uri.isascii():
        return False
    if not uri.isprintable() or " " in uri or "#" in uri:
        return False
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in LOOPBACK_HOSTS
        and "@" not in parts.netloc
        and not parts.query
    )


def _strings(body: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = body.get(name, default)
    if not isinstance(value, list) or not 0 < len(value) <= 8 or not all(isinstance(v, str) for v in value):
        raise _metadata(f"{name} must be a list of 1-8 strings")
    return value


def _metadata(description: str) -> RegistrationRefused:
    return RegistrationRefused("invalid_client_metadata", description)
