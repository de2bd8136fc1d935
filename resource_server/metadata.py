"""RFC 9728 protected resource metadata: where the document lives, what it says, and the resource
identifier it is about. Every adapter serves the same document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .dpop import DPoPVerifier

__all__ = ["WELL_KNOWN", "check_resource", "metadata_document", "metadata_url_for", "resource_for"]

#: RFC 9728 §3: the well-known URI suffix of the metadata document.
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url_for(resource: str) -> str:
    """RFC 9728 §3.1: insert the well-known segment between the host and the resource's path."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


def resource_for(metadata_url: str) -> str | None:
    """The inverse of :func:`metadata_url_for`, or None if the URL is not a well-known one."""
    parts = urlsplit(metadata_url)
    if not parts.path.startswith(WELL_KNOWN):
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path[len(WELL_KNOWN) :]}"


def check_resource(resource: object, what: str = "resource", *, query: bool = True) -> str:
    """RFC 9728 §1.2: the resource identifier is an absolute http(s) URL without a fragment (and,
    where the caller says so, without a query); ``ValueError`` naming ``what`` otherwise."""
    if not isinstance(resource, str):
        raise ValueError(f"{what} must be this server's URL (an RFC 9728 resource identifier)")
    parts = urlsplit(resource)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or "#" in resource
        or (parts.query and not query)
    ):
        without = "a fragment" if query else "a query or fragment"
        raise ValueError(f"{what} must be an absolute URL without {without}, not {resource!r}")
    return resource


def metadata_document(
    *,
    resource: str | None,
    scopes_supported: Iterable[str],
    authorization_servers: Iterable[str] = (),
    dpop: DPoPVerifier | None = None,
    dpop_required: bool = False,
) -> dict[str, Any]:
    """RFC 9728 §2 (with RFC 9449 §5.1's DPoP members): only the header carries tokens here."""
    document: dict[str, Any] = {
        "resource": resource,
        "scopes_supported": sorted(scopes_supported),
        "bearer_methods_supported": ["header"],
    }
    servers = list(authorization_servers)
    if servers:
        document["authorization_servers"] = servers
    if dpop is not None:
        document["dpop_signing_alg_values_supported"] = list(dpop.algorithms)
        document["dpop_bound_access_tokens_required"] = dpop_required
    return document
