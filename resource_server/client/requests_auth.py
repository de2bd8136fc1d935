"""``RequestsStepUpAuth``: step-up as the auth of a ``requests`` session (a response hook that
retries). It exists when requests is installed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

from .dpop_key import DPoPKey
from .step_up import Attempts, Origin, StepUp, TokenProvider, origin_of, sync_token

__all__ = ["REQUESTS_INSTALLED", "RequestsStepUpAuth"]

#: Whether requests is installed, and so RequestsStepUpAuth defined.
REQUESTS_INSTALLED = True
try:
    import requests
except ImportError:
    REQUESTS_INSTALLED = False


if REQUESTS_INSTALLED:

    class RequestsStepUpAuth(requests.auth.AuthBase):
        """``session.auth = RequestsStepUpAuth(provider)``: the same behaviour for ``requests``,
        ``dpop_key`` and the ``acr_values`` and ``max_age`` of a step-up of authentication included."""

        def __init__(
            self,
            token_provider: TokenProvider,
            *,
            max_retries: int = 1,
            scopes: Iterable[str] | None = None,
            dpop_key: DPoPKey | None = None,
        ) -> None:
            self._state = StepUp(token_provider, max_retries, scopes, dpop_key)

        def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
            state = self._state
            token = state.token or state.remember(sync_token(state.ask(state.scopes)), state.scopes)
            sent_nonce = state.authorize(
                prepared.headers, prepared.method or "GET", prepared.url or "", token
            )
            attempts = state.start(prepared.url or "")
            prepared.register_hook(
                "response", lambda r, **kw: self._retry(r, attempts, token, sent_nonce, **kw)
            )
            return prepared

        def _retry(
            self,
            response: requests.Response,
            attempts: Attempts,
            token: str,
            sent_nonce: str | None,
            **send_kwargs: Any,
        ) -> requests.Response:
            # requests copies this hook onto each redirect it follows, so it runs once per hop, with
            # the same attempts; each retry goes to the URL of the hop that answered.
            state, sent = self._state, response.request
            while True:
                # requests folds repeated header lines into one comma-joined value; the parser splits it.
                values = (
                    [response.headers["WWW-Authenticate"]] if "WWW-Authenticate" in response.headers else []
                )
                retry = attempts.after(
                    [response.request.url or ""],  # the hops before were seen by this hook
                    response.status_code,
                    values,
                    response.headers.get("DPoP-Nonce"),
                    sent_nonce,
                )
                body = response.request.body
                if retry is None or not (body is None or isinstance(body, (str, bytes))):
                    break  # nothing to fix, or a streamed body that cannot be sent twice
                if retry.new_token:
                    token = state.remember(
                        sync_token(state.ask(retry.scopes, retry.authentication)), retry.scopes
                    )
                response.content  # noqa: B018 -- drain it, so the connection can be reused
                response.close()
                again = response.request.copy()
                sent_nonce = state.authorize(again.headers, again.method or "GET", again.url or "", token)
                retried = response.connection.send(again, **send_kwargs)
                retried.history = [*response.history, response]
                retried.request = again
                response = retried
            if _redirects_away(response, attempts.origin):
                # requests builds the next hop from a copy of ``sent`` (not of a retry) with every
                # header, DPoP included, and Authorization too on an upgrade from http to https on
                # the default ports: our credentials are taken off here, the one place an auth can
                # reach before requests copies them.
                for name in ("Authorization", "DPoP"):
                    sent.headers.pop(name, None)
            return response

    def _redirects_away(response: requests.Response, origin: Origin) -> bool:
        """Whether requests would follow ``response`` to another origin than ``origin``, or to
        one we cannot tell: its ``Location`` resolved against its URL as requests resolves it
        (RFC 9110 §10.2.2)."""
        if not response.is_redirect:
            return False
        target = urljoin(response.url, requests.utils.requote_uri(response.headers["Location"]))
        try:
            return origin_of(target) != origin
        except ValueError:
            return True
