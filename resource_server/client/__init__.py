"""Clients that step up by themselves: send a token; on ``403 insufficient_scope`` ask for one that
also covers the advertised scopes and retry once; on ``401 invalid_token`` fetch a fresh one once;
on ``401 insufficient_user_authentication`` (RFC 9470 §3) ask a provider that can have the person
authenticate again for a token with the challenge's ``acr_values`` and ``max_age``, once.

``StepUpAuth`` is the auth of an ``httpx`` or an ``httpx2`` client (sync and async): one class,
an ``Auth`` of each of the two that is installed, so either library's client takes it (each accepts
only instances of its own ``Auth``). ``RequestsStepUpAuth`` does the same for ``requests``. None
imports Flask. The challenge is read with :func:`policy.parse_challenges`, so several challenges in
one ``WWW-Authenticate`` value, or across several lines, are fine: the Bearer one is used
(RFC 9110 §11.6.1, RFC 6750 §3).

With a :class:`DPoPKey` (RFC 9449) both send ``Authorization: DPoP <token>`` and a fresh ``DPoP``
proof on every request and every retry, read the ``DPoP`` challenge (the Bearer one if there is
none), answer ``use_dpop_nonce`` once with the server's nonce and keep the latest ``DPoP-Nonce``
of each origin for the requests after (§9); a nonce that is not 1 to 1024 of §8.1's characters
is ignored.

Credentials, proofs and step-ups go only to the origin (scheme, host, port; RFC 6454 §4) a request
was first sent to. A response from another origin, or reached through one by redirects, is returned
as it is: its challenge is not followed, its scopes are never asked for, its nonce is not kept. With
requests, the adapter's ``Authorization`` and ``DPoP`` headers are removed before requests follows a
redirect to another origin; httpx and httpx2 drop ``Authorization`` themselves (see docs/clients.md).

Bodies are replayed on retry. With httpx and httpx2 the request body is read before the first
attempt, so even streamed bodies can be resent, at the cost of holding them in memory. With
requests, a body that cannot be replayed (a file or a generator) is not retried: the first response
is returned as it is.

A token provider is called as ``provider(scopes)``; with ``dpop_key=`` when it takes that keyword
(or ``**kwargs``), and with ``acr_values=`` (a tuple, or None) and ``max_age=`` (seconds, or None)
only to answer an ``insufficient_user_authentication``, and only when it names both parameters
(RFC 9470 §4: it passes them on to its authorization request). A provider that does not name them
cannot have a person authenticate (client credentials): that 401 is returned as it is.

No HTTP library is required: ``StepUpAuth`` exists when httpx or httpx2 is installed,
``RequestsStepUpAuth`` when requests is, and :class:`DPoPKey`, :class:`InsufficientScope`,
:class:`InsufficientUserAuthentication`, :func:`insufficient_scope`,
:func:`insufficient_user_authentication` and :func:`bearer_challenge_of` need none. Importing a class whose
library is missing raises an ``ImportError`` that names the library to install.

The package's modules: :mod:`~resource_server.client.challenges` (reading challenges),
:mod:`~resource_server.client.step_up` (what the adapters share: tokens, nonces, retries),
:mod:`~resource_server.client.httpx_auth` (``StepUpAuth``),
:mod:`~resource_server.client.requests_auth` (``RequestsStepUpAuth``) and
:mod:`~resource_server.client.dpop_key` (``DPoPKey``); every name is importable from here.
"""

from __future__ import annotations

from typing import Any

from .challenges import (
    InsufficientScope,
    InsufficientUserAuthentication,
    bearer_challenge_of,
    insufficient_scope,
    insufficient_user_authentication,
)
from .dpop_key import DPoPKey

# Each adapter needs only its own library: a requests user need not install httpx, nor the reverse.
# Each module imports what it needs if installed, and defines its class only then.
from .httpx_auth import HTTPX_AUTH_BASES
from .requests_auth import REQUESTS_INSTALLED
from .step_up import AsyncTokenProvider as AsyncTokenProvider
from .step_up import TokenProvider as TokenProvider

if HTTPX_AUTH_BASES:
    from .httpx_auth import StepUpAuth as StepUpAuth
if REQUESTS_INSTALLED:
    from .requests_auth import RequestsStepUpAuth as RequestsStepUpAuth

#: The adapter classes, by the libraries any one of which each needs.
_NEEDS = {"StepUpAuth": ("httpx2", "httpx"), "RequestsStepUpAuth": ("requests",)}

__all__ = [
    "DPoPKey",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    *(["RequestsStepUpAuth"] if REQUESTS_INSTALLED else []),
    *(["StepUpAuth"] if HTTPX_AUTH_BASES else []),
    "bearer_challenge_of",
    "insufficient_scope",
    "insufficient_user_authentication",
]


def __getattr__(name: str) -> Any:
    """An adapter whose library is not installed: say which one to install (PEP 562)."""
    if name in _NEEDS:
        libraries = _NEEDS[name]
        needed = " or ".join(libraries)
        which = "neither is installed" if len(libraries) > 1 else "which is not installed"
        raise ImportError(
            f"{name} needs {needed}, {which}: pip install 'scoped-resource-server[client]'"
            f" (or pip install {libraries[0]} alone)",
            name=libraries[0],
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
