"""The scopes each MCP tool needs: ``tool_scopes`` compiled and validated at start-up, and the
refusal of a ``tools/call`` for a tool it does not name."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from policy import ScopeMap

from .jsonrpc import INVALID_PARAMS, Refused

__all__ = ["ECHOED_NAME", "scope_map_of", "tool_maps", "undeclared_tool"]

log = logging.getLogger("resource_server")

#: Longest tool name repeated in an error message; longer ones are not echoed.
ECHOED_NAME = 128


def tool_maps(tool_scopes: Mapping[str, object]) -> dict[str, ScopeMap]:
    """``tool_scopes`` compiled: each tool name (a non-empty string) to its scope map, under
    ``POST``. ``ValueError`` naming the first entry that is not valid."""
    if not isinstance(tool_scopes, Mapping):
        raise ValueError("tool_scopes must be a mapping of tool name -> scope alternatives")
    maps: dict[str, ScopeMap] = {}
    for name, alternatives in tool_scopes.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool_scopes has the tool name {name!r}; tool names are non-empty strings")
        maps[name] = scope_map_of(f"tool_scopes[{name!r}]", alternatives)
    return maps


def scope_map_of(where: str, alternatives: object) -> ScopeMap:
    """One tool's (or ``default``'s) alternatives as a scope map under ``POST``, every JSON-RPC
    message being a POST; ``ValueError`` naming ``where``."""
    try:
        return ScopeMap({"POST": alternatives})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}".replace("ScopeMap['POST']", "alternatives")) from None


def undeclared_tool(name: str, rpc_id: object) -> Refused:
    """A ``tools/call`` of a tool ``tool_scopes`` does not name: refused, never run unmapped.
    The SDK may well have the tool, so the error says what is missing (its scopes) rather than
    that it does not exist; the status and code stay those of an unknown tool (MCP
    server/tools, error handling: ``-32602``). Long names are neither echoed nor logged."""
    if len(name) > ECHOED_NAME:
        log.warning(
            "tools/call refused: tool_scopes declares no scopes for a tool of %d characters", len(name)
        )
        return Refused(400, INVALID_PARAMS, "The tool has no declared scopes, so it is refused", rpc_id)
    log.warning("tools/call refused: tool_scopes declares no scopes for the tool %r", name)
    return Refused(400, INVALID_PARAMS, f"The tool {name} has no declared scopes, so it is refused", rpc_id)
