"""What the Flask extension itself does on every protected request: one frame from the view's
wrapper to the guard, and the request and its app from one context lookup. Inside a Flask
request every function a request calls costs cache misses besides its instructions, so these
pin the calls themselves (recorded with ``sys.setprofile``), never a time."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from flask import Flask, current_app, jsonify, request
from werkzeug.test import EnvironBuilder

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from resource_server.flask.proxies import current_context
from resource_server.viewer_context import ViewerContextVerifier
from tests.support import AUDIENCE, ISSUER, FakeClock, es256, jwks

SIGNER = es256()
ROLES = Roles({"member": ["project:read"]})
ADAPTER = Path(sys.modules[ResourceServer.__module__].__file__ or "").parent  # resource_server/flask
FLASK = Path(sys.modules[Flask.__module__].__file__ or "").parent


def membership(subject: str, org: str | None) -> str | None:
    return "member" if (subject, org) == ("user-1", "acme") else None


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock()),
        roles=ROLES,
        membership=membership,
        viewer_context=ViewerContextVerifier(keys={"v1": "v" * 32}, audience="api", issuers=["gw"]),
    )

    @app.get("/orgs/<org>/projects")
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> Any:
        return jsonify(org=org)

    @app.get("/orgs/<org>/shared")
    @rs.require({"GET": "project:read"}, viewer_context=True)
    def shared(org: str) -> Any:
        return jsonify(org=org)

    return app


def adapter_calls(app: Flask, path: str) -> set[tuple[str, str]]:
    """(caller, callee) for every Python function the extension's own code calls while the app
    answers one GET with a token the guard has verified before (as a WSGI server calls it),
    each named ``module.function``; the answer must be a 200. Flask's own functions are left
    out: Flask 3.2's context reads its request through a property."""
    environ = EnvironBuilder(path=path, headers={"Authorization": f"Bearer {SIGNER.token()}"}).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def get() -> None:
        b"".join(app.wsgi_app({**environ, "wsgi.input": io.BytesIO()}, start_response))

    get()  # the first request: the routes' check, the token verified and cached
    calls: set[tuple[str, str]] = set()

    def record(frame: FrameType, event: str, arg: Any) -> None:
        caller = frame.f_back
        if event != "call" or caller is None or Path(caller.f_code.co_filename).parent != ADAPTER:
            return
        if Path(frame.f_code.co_filename).parent != FLASK:
            calls.add((name(caller), name(frame)))

    sys.setprofile(record)
    try:
        get()
    finally:
        sys.setprofile(None)
    assert statuses == ["200 OK", "200 OK"]
    return calls


def name(frame: FrameType) -> str:
    return f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"


@pytest.mark.parametrize("path", ["/orgs/acme/projects", "/orgs/acme/shared"])
def test_a_protected_request_goes_through_one_frame_of_the_extension(app: Flask, path: str) -> None:
    """The view's wrapper calls ``_outcome``, which calls the Host check and the guard, and the
    wrapper then the view: no proxy resolved through werkzeug's functions, no second frame of
    the extension's, no viewer context loader made for a request that carries none."""
    view = path.rpartition("/")[2]
    assert adapter_calls(app, path) == {
        ("__init__.protected", "guarded._outcome"),
        ("guarded._outcome", "credentials.check_host"),
        ("guarded._outcome", "guard.authorize"),
        ("__init__.protected", f"test_flask_hot_path.{view}"),
    }


def test_the_request_context_is_what_the_public_proxies_resolve_to(app: Flask) -> None:
    """``current_context`` reads Flask's own context variable (not public API): the request and
    the app it holds are those ``request`` and ``current_app`` stand for, and outside a request
    there is none."""
    assert current_context(None) is None
    seen: list[bool] = []

    @app.get("/context")
    def context() -> str:
        found = current_context(None)
        assert found is not None
        seen.append(found.request is request._get_current_object())  # type: ignore[attr-defined]
        seen.append(found.app is current_app._get_current_object())  # type: ignore[attr-defined]
        return "ok"

    assert app.test_client().get("/context").status_code == 200
    with app.test_request_context("/context"):
        found = current_context(None)
        assert found is not None
        assert found.request is request._get_current_object()  # type: ignore[attr-defined]
        assert found.app is app
    assert seen == [True, True]
    assert current_context(None) is None


def test_a_protected_view_called_outside_a_request_raises(app: Flask) -> None:
    """Called directly, outside any request, the wrapper cannot read one: a RuntimeError saying
    so, not an answer."""
    view = app.view_functions["projects"]
    with pytest.raises(RuntimeError, match="request"):
        view(org="acme")
    with app.app_context(), pytest.raises(RuntimeError, match="request"):
        view(org="acme")


@pytest.fixture(autouse=True)
def _no_profiler_left() -> Iterator[None]:
    yield
    assert sys.getprofile() is None
