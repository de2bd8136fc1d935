"""How this resource server authenticates to its authorization server's introspection endpoint
(RFC 7662 §2.1): client credentials, in the ``Authorization`` header (``client_secret_basic``,
RFC 6749 §2.3.1) or in the form (``client_secret_post``), or a bearer token (RFC 6750 §2.1),
fixed or obtained from a callable and obtained again when the endpoint refuses it.

Secrets and tokens are kept inside :class:`ClientAuthenticator`, whose ``repr`` shows neither,
and are never logged: a failing token callable is logged by its exception's class only.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote_plus

from ..telemetry import audit
from .errors import VerificationUnavailable

__all__ = ["B64TOKEN", "BearerAuth", "ClientAuth", "ClientAuthenticator", "Credentials"]


# RFC 6750 §2.1 b64token: nothing else can follow "Bearer " in a header, CR and LF included.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_METHODS = ("client_secret_basic", "client_secret_post")
# Far more than any real access token; a larger one is not put in a header.
_MAX_BEARER = 8192


def _is_bearer_token(value: object) -> bool:
    return isinstance(value, str) and len(value) <= _MAX_BEARER and B64TOKEN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True, repr=False)
class BearerAuth:
    """Authenticate introspection calls with a bearer token (RFC 7662 §2.1, RFC 6750 §2.1):
    ``token`` is the token itself, or a callable taking no argument that returns one.

    A callable is called when the first token is needed (never at construction, so start-up does
    no I/O), and its token is used until the endpoint answers 401 to it; then it is called again,
    once for all the requests that saw that refusal, and the request is sent once more with the
    new token. A token it returns is checked like any bearer token (an RFC 6750 ``b64token``);
    an exception, or something else, is a 503 for the request that needed it, logged at ERROR
    without its message. The callable may do I/O (a client-credentials grant, a file read) and
    should bound its own time: requests that need a new token wait for it.
    """

    token: str | Callable[[], str]

    def __post_init__(self) -> None:
        if isinstance(self.token, str):
            if not _is_bearer_token(self.token):
                raise ValueError(
                    "client_auth: the bearer token must be an RFC 6750 b64token of at most 8192 characters"
                )
        elif not callable(self.token):
            raise TypeError("client_auth: BearerAuth takes a token string or a callable returning one")

    def __repr__(self) -> str:
        return "BearerAuth(<callable>)" if callable(self.token) else "BearerAuth(<token>)"


#: ``"client_secret_basic"`` (the default), ``"client_secret_post"``, or a :class:`BearerAuth`.
ClientAuth = Literal["client_secret_basic", "client_secret_post"] | BearerAuth


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """What one request carries: its authentication headers, its extra form fields, and the
    bearer token among them (to say which one the endpoint refused)."""

    headers: Mapping[str, str]
    form: tuple[tuple[str, str], ...]
    bearer: str | None = None

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


class ClientAuthenticator:
    """The credentials for each introspection request, by the method ``client_auth`` names,
    checked at construction (``ValueError`` naming the argument at fault)."""

    __slots__ = ("_current", "_lock", "_provider", "method", "settings")

    def __init__(self, client_auth: object, client_id: object, client_secret: object) -> None:
        self._provider: Callable[[], str] | None = None
        self._current: Credentials | None = None
        self._lock = threading.Lock()
        if isinstance(client_auth, BearerAuth):
            if client_id is not None or client_secret is not None:
                raise ValueError("client_id and client_secret are not used with client_auth=BearerAuth(...)")
            self.method, self.settings = "bearer", "client_auth (its bearer token)"
            if isinstance(client_auth.token, str):
                self._current = _bearer(client_auth.token)
            else:
                self._provider = client_auth.token
            return
        if client_auth not in _METHODS:
            raise ValueError(
                'client_auth must be "client_secret_basic", "client_secret_post" or BearerAuth(token)'
            )
        identifier = _required("client_id", client_id, client_auth)
        secret = _required("client_secret", client_secret, client_auth)
        self.method, self.settings = str(client_auth), f"client_id and client_secret ({client_auth})"
        if client_auth == "client_secret_basic":
            # RFC 6749 §2.3.1: each part is form-urlencoded before the two are joined and encoded.
            basic = f"{quote_plus(identifier)}:{quote_plus(secret)}".encode()
            header = "Basic " + base64.b64encode(basic).decode("ascii")
            self._current = Credentials({"Authorization": header}, ())
        else:  # RFC 6749 §2.3.1: in the request body, which the endpoint's TLS protects
            self._current = Credentials({}, (("client_id", identifier), ("client_secret", secret)))

    def __repr__(self) -> str:
        return f"ClientAuthenticator({self.method}, <hidden>)"

    def credentials(self) -> Credentials:
        """The credentials to send now; the first call of a token callable happens here."""
        current = self._current
        return current if current is not None else self._obtain(None)

    def after_refusal(self, refused: Credentials) -> Credentials | None:
        """New credentials to try once more after the endpoint answered 401 to ``refused``, or
        None when nothing new can be had (a fixed secret or token, or the callable returned the
        very token just refused)."""
        if self._provider is None:
            return None
        fresh = self._obtain(refused.bearer)
        return fresh if fresh.bearer != refused.bearer else None

    def _obtain(self, refused: str | None) -> Credentials:
        """A token from the callable, unless another thread already replaced ``refused``
        (single flight: one call per refusal, however many requests saw it)."""
        assert self._provider is not None
        with self._lock:
            current = self._current
            if current is not None and current.bearer != refused:
                return current
            try:
                token = self._provider()
            except Exception as exc:  # its message may quote a secret: only the class is logged
                raise _failed(f"the client_auth token callable raised {type(exc).__name__}") from None
            if not _is_bearer_token(token):
                raise _failed("the client_auth token callable returned something that is not a bearer token")
            self._current = _bearer(token)
            return self._current


def _required(name: str, value: object, method: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string with client_auth={method!r}")
    return value


def _bearer(token: str) -> Credentials:
    return Credentials({"Authorization": f"Bearer {token}"}, (), token)


def _failed(reason: str) -> VerificationUnavailable:
    audit.security(
        "introspection_failed",
        {"details": {"uri": None, "reason": reason}},
        "token introspection: %s",
        reason,
        level=logging.ERROR,
    )
    return VerificationUnavailable(reason, cause="introspection")
