"""The requirements each FastAPI route declares, found in its dependency tree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import fastapi.routing
from fastapi import FastAPI

from .dependencies import Requirement

if TYPE_CHECKING:
    from . import ResourceServer

__all__ = ["requirements_of", "routes_of", "solve_order"]


def routes_of(app: FastAPI, *kinds: type) -> Iterator[Any]:
    """Every route of ``app`` of these kinds as it is served: prefixes and router-level
    dependencies applied. FastAPI 0.16x keeps included routers as contexts
    (``iter_route_contexts``); older versions copy the routes into the app."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in contexts(app.routes) if contexts is not None else app.routes:
        if isinstance(getattr(route, "original_route", route), kinds):
            yield route


def solve_order(dependant: Any) -> Iterator[Any]:
    """The dependency callables of a route in the order FastAPI calls them: depth first, each
    after its own dependencies (router-level ones first)."""
    for sub in dependant.dependencies:
        yield from solve_order(sub)
        yield sub.call


def requirements_of(calls: Iterator[Any] | list[Any], server: ResourceServer) -> list[Requirement]:
    """The requirements of ``server`` among a route's dependency callables, each once."""
    found: dict[int, Requirement] = {}
    for call in calls:
        if isinstance(call, Requirement) and call.server is server:
            found.setdefault(id(call), call)
    return list(found.values())
