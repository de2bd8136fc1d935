"""What the Flask extension refuses before it serves anything: a route serving the function
``@rs.require`` wrapped (the decorator written above ``@app.route``), a scope no role grants, a
coroutine ``membership``; and ``flask scopes check`` on an app with no protected route."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, g

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from tests.support import AUDIENCE, ISSUER, FakeClock, Signer, jwks

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MISORDERED = r"@rs\.require is above @app\.route.*Put @rs\.require below @app\.route"


def membership(subject: str, org: str | None) -> str | None:
    return {"user-1": "admin"}.get(subject)


def server(es: Signer, app: Flask | None = None) -> ResourceServer:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock())
    return ResourceServer(app, verifier=verifier, roles=ROLES, membership=membership)


def logged(view: Callable[..., Any]) -> Callable[..., Any]:
    """An application's own decorator, written the usual way (``functools.wraps``)."""

    @functools.wraps(view)
    def logging_view(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return logging_view


# -- @rs.require above @app.route -------------------------------------------------------------------


def test_require_above_route_is_refused_at_the_first_request(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es, app)
    ran: list[str] = []

    @rs.require({"GET": "project:read"})
    @app.route("/orgs/<org>/projects")
    def projects(org: str) -> str:
        ran.append(org)
        return "the projects"

    client = app.test_client()
    for _ in range(2):  # every request, until the order is fixed: none reaches the view
        response = client.get("/orgs/acme/projects")  # no token at all
        assert response.status_code == 500 and b"the projects" not in response.data
    assert ran == []
    app.testing = True  # the error itself, as the application's own tests see it
    with pytest.raises(
        ValueError, match=r"^/orgs/<org>/projects \(projects\) serves '.*projects' unprotected: "
    ):
        client.get("/orgs/acme/projects")
    with pytest.raises(ValueError, match=MISORDERED):
        client.get("/orgs/acme/projects")
    assert ran == []


def test_routes_declared_before_init_app_are_checked_by_init_app(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es)  # the application-factory order: routes first, init_app later

    @rs.require({"GET": "project:read"})
    @app.route("/orgs/<org>/projects")
    def projects(org: str) -> str:
        return "the projects"

    with pytest.raises(ValueError, match=MISORDERED):
        rs.init_app(app)


@pytest.mark.parametrize("order", ["require, logged, route", "require, route, logged"])
def test_a_blueprint_registered_later_is_checked_through_other_decorators(es: Signer, order: str) -> None:
    app = Flask(__name__)
    app.testing = True
    rs = server(es, app)
    bp = Blueprint("reports", __name__, url_prefix="/orgs/<org>/reports")

    def reports(org: str) -> str:
        return "the reports"

    if order == "require, logged, route":  # the route registers the bare function
        rs.require({"GET": "project:read"})(logged(bp.route("/")(reports)))
    else:  # the route registers the app's wrapper, which require then wraps
        rs.require({"GET": "project:read"})(bp.route("/")(logged(reports)))
    app.register_blueprint(bp)
    with pytest.raises(
        ValueError, match=r"^/orgs/<org>/reports/ \(reports\.reports\) serves .*" + MISORDERED
    ):
        app.test_client().get("/orgs/acme/reports/")


def test_the_check_passes_routes_in_order_and_then_leaves_the_request_path(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es, app)

    @app.before_request
    def mark() -> None:  # registered after the extension's own check
        g.marked = True

    @app.route("/orgs/<org>/projects")
    @logged
    @rs.require({"GET": "project:read"})
    def projects(org: str) -> str:
        return "the projects"

    @app.route("/orgs/<org>/teams")
    @rs.require({"GET": "project:read"})
    @logged
    def teams(org: str) -> str:
        return f"marked: {g.marked}"

    client = app.test_client()
    assert client.get("/orgs/acme/projects").status_code == 401
    hooks = app.before_request_funcs[None]
    assert hooks == [mark]  # checked once; the app's own hook ran on that request and stays
    token = es.token(sub="user-1", scope="project:read", now=int(FakeClock().now))
    answer = client.get("/orgs/acme/teams", headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.text) == (200, "marked: True")


def test_one_function_public_on_one_route_and_wrapped_on_another_is_served_as_declared(es: Signer) -> None:
    """A route declared public on purpose (``@rs.public`` or ``RESOURCE_SERVER_PUBLIC_ENDPOINTS``)
    may serve the same function that ``require`` wraps at another route: the app said so, and
    the wrapped route stays protected."""
    app = Flask(__name__)
    app.testing = True
    rs = server(es, app)

    def status(org: str = "acme") -> str:
        return "ok"

    app.add_url_rule("/status", "status", rs.public(status))
    app.add_url_rule("/orgs/<org>/status", "org_status", rs.require({"GET": "project:read"})(status))
    app.add_url_rule("/health", "health", status)
    app.config["RESOURCE_SERVER_PUBLIC_ENDPOINTS"] = ["health"]
    client = app.test_client()
    assert client.get("/status").status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/orgs/acme/status").status_code == 401


def audited(view: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator written without ``functools.wraps``: the wrapper hides ``view`` in its closure."""

    def audit(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return audit


class Audited:
    """A decorator written as a class: the callable object holds ``view`` as an attribute."""

    def __init__(self, view: Callable[..., Any]) -> None:
        self.view = view

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.view(*args, **kwargs)


@pytest.mark.parametrize("decorator", [audited, Audited], ids=["closure", "class"])
def test_require_above_route_is_refused_through_a_decorator_that_hides_the_view(
    es: Signer, decorator: Callable[..., Any]
) -> None:
    """``@rs.require`` above a decorator that sets no ``__wrapped__``, above ``@app.route``: the
    route serves the bare function, which ``require`` reached through the decorator's closure or
    attributes; refused, never served open."""
    app = Flask(__name__)
    app.testing = True
    rs = server(es, app)

    @rs.require({"GET": "project:read"})
    @decorator
    @app.get("/orgs/<org>/secret")
    def secret(org: str) -> str:
        return "the secret"

    with pytest.raises(ValueError, match=MISORDERED):
        app.test_client().get("/orgs/acme/secret")


# -- scopes no role grants ---------------------------------------------------------------------------


def test_a_scope_no_role_grants_is_refused_at_the_first_request(es: Signer) -> None:
    app = Flask(__name__)
    app.testing = True
    rs = server(es, app)

    @app.route("/orgs/<org>/audit")
    @rs.require({"GET": ["project:read", "audit:raed"]})
    def audit(org: str) -> str:
        return "the audit"

    bp = Blueprint("teams", __name__, url_prefix="/orgs/<org>/teams")
    rs.protect_blueprint(bp, {"GET": "team:read"})
    bp.add_url_rule("/", "list", lambda org: "the teams")
    app.register_blueprint(bp)
    with pytest.raises(ValueError) as refused:
        app.test_client().get("/orgs/acme/audit")
    assert str(refused.value) == (
        "/orgs/<org>/audit requires audit:raed, which no role grants; "
        "/orgs/<org>/teams/ requires team:read, which no role grants: "
        "grant the scope to a role in Roles, or correct the scope map"
    )


def test_a_scope_no_role_grants_is_refused_by_init_app(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es)

    @app.route("/orgs/<org>/audit")
    @rs.require({"GET": "audit:read"})
    def audit(org: str) -> str:
        return "the audit"

    with pytest.raises(ValueError, match="audit:read, which no role grants"):
        rs.init_app(app)


# -- membership ---------------------------------------------------------------------------------------


class Directory:
    async def __call__(self, subject: str, org: str | None) -> str | None:
        return "admin"


async def async_membership(subject: str, org: str | None) -> str | None:
    return "admin"


@pytest.mark.parametrize(
    "given", [async_membership, Directory()], ids=["coroutine function", "async __call__"]
)
def test_a_coroutine_membership_is_refused_at_construction(es: Signer, given: Any) -> None:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es))
    with pytest.raises(TypeError) as refused:
        ResourceServer(verifier=verifier, roles=ROLES, membership=given)
    assert str(refused.value) == (
        "membership is a coroutine function, which resource_server.flask cannot await (it is "
        "synchronous): give a plain function, or serve the app with an async adapter: "
        "resource_server.asgi, resource_server.fastapi, resource_server.mcp"
    )


# -- flask scopes check --------------------------------------------------------------------------------


def check(app: Flask) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["scopes", "check"])
    return result.exit_code, result.output.strip()


def test_check_reports_a_misordered_route_when_no_route_is_protected(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es, app)

    @rs.require({"GET": "project:read"})
    @app.route("/orgs/<org>/projects")
    def projects(org: str) -> str:
        return "the projects"

    code, output = check(app)
    assert code == 1
    assert output.startswith("/orgs/<org>/projects (projects) serves ")
    assert "Put @rs.require below @app.route" in output
    assert len(output.splitlines()) == 1  # reported once, not also as an undeclared route


def test_check_reports_unprotected_routes_when_none_is_protected(es: Signer) -> None:
    app = Flask(__name__)
    rs = server(es, app)
    app.add_url_rule("/health", "health", rs.public(lambda: "ok"))
    assert check(app) == (0, "scope maps OK")  # public on purpose
    app.add_url_rule("/debug", "debug", lambda: "open")
    code, output = check(app)
    assert code == 1
    assert output == (
        "/debug (debug) has no protection; declare it with @rs.public or "
        "RESOURCE_SERVER_PUBLIC_ENDPOINTS if it is public on purpose"
    )
