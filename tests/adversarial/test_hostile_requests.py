"""Hostile requests against protected routes: only 400 or 401, never a 500, never a hang, and the
request's own text never comes back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from policy import parse_challenges
from resource_server.wsgi import BearerMiddleware
from tests.resource_server.test_flask import MEMBERS, PROJECTS, ROLES, VERIFIER, build_app

MIB5 = 5 * 1024 * 1024

APP, _ = build_app()
APP.testing = True  # an exception inside the app propagates out of the test client: no silent 500
FLASK = APP.test_client()


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"reached"]


MIDDLEWARE = Client(
    BearerMiddleware(
        _echo,
        verifier=VERIFIER,
        roles=ROLES,
        membership=lambda subject, org: MEMBERS.get((subject, org)),
        routes={"/orgs/<org>/projects": PROJECTS},
    )
)

# Field values a client could put on the wire: visible ASCII, space, tab and obs-text (latin-1).
FIELD_CHARS = st.characters(
    codec="latin-1", exclude_categories=("Cc",), include_characters="\t"
) | st.sampled_from('Bb=.-_~+/ ,"\\')
FIELD_TEXT = st.text(FIELD_CHARS, max_size=200)
B64TOKEN = st.text(st.sampled_from("ABCxyz019-._~+/"), min_size=1, max_size=120).map(
    lambda s: s + "=" * (len(s) % 3)
)
AUTHORIZATION = st.one_of(
    FIELD_TEXT,
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["Bearer ", "bearer ", "BEARER  ", "Bearer"]),
        FIELD_TEXT,
    ),
    st.builds("Bearer {}".format, B64TOKEN),
    st.builds("Bearer {}.{}.{}".format, B64TOKEN, B64TOKEN, B64TOKEN),
    st.builds(lambda a, b: f"{a},{b}", FIELD_TEXT, FIELD_TEXT),
)


def check(response: Any, sent: str) -> None:
    assert response.status_code in (400, 401), (response.status_code, sent)
    body = response.get_data(as_text=True)
    document = json.loads(body)
    assert set(document) == {"error", "error_description"}
    assert document["error"] in ("invalid_request", "invalid_token", "unauthorized")
    assert "Traceback" not in body
    (challenge,) = parse_challenges(response.headers.getlist("WWW-Authenticate"))
    assert challenge.is_scheme("Bearer")
    # Long enough that finding it in a response cannot be a coincidence with our fixed messages.
    if len(sent) >= 24:
        assert sent not in body
        assert all(sent not in value for _, value in response.headers.items())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(AUTHORIZATION)
def test_flask_answers_hostile_authorization_with_400_or_401(value: str) -> None:
    check(FLASK.get("/orgs/acme/projects", headers={"Authorization": value}), value)


@settings(max_examples=150, deadline=None)
@given(AUTHORIZATION, st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_middleware_answers_hostile_authorization_with_400_or_401(value: str, method: str) -> None:
    # Credentials are judged before the method: an unmapped method still gets 400/401 here.
    check(MIDDLEWARE.open("/orgs/acme/projects", method=method, headers={"Authorization": value}), value)


@settings(max_examples=150, deadline=None)
@given(
    st.text(FIELD_CHARS, min_size=1, max_size=60).filter(lambda s: "/" not in s and s.strip(".")),
    st.text(FIELD_CHARS, max_size=60),
)
def test_a_query_token_is_refused_whatever_the_path_and_query(segment: str, query: str) -> None:
    path = f"/orgs/{quote(segment, safe='')}/projects"
    for client in (FLASK, MIDDLEWARE):
        response = client.get(path, query_string={"q": query, "access_token": query})
        assert response.status_code == 400, (path, query, response.status_code)
        assert json.loads(response.get_data())["error"] == "invalid_request"


#: A hang guard, not a benchmark: the wall-clock seconds after which a request counts as hung.
HANG_TIMEOUT = 60.0


def within(cpu_seconds: float, call: Callable[[], Any]) -> Any:
    """Run ``call`` in a thread; fail if it hangs (no answer after ``HANG_TIMEOUT`` seconds) or
    takes more than ``cpu_seconds`` of that thread's CPU time (``time.thread_time``: other
    processes on a loaded machine do not count). These refusals take about 50 ms."""
    outcome: list[Any] = []

    def run() -> None:
        start = time.thread_time()
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:
            outcome.append(("raised", exc))
        outcome.append(time.thread_time() - start)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_TIMEOUT)
    assert len(outcome) == 2, f"no answer within {HANG_TIMEOUT} s"
    (kind, value), cpu = outcome
    assert kind == "ok", value
    assert cpu < cpu_seconds, f"{cpu:.2f} s of CPU time"
    return value


@pytest.mark.parametrize(
    "value",
    [
        "Bearer " + "A" * MIB5,
        "Bearer " + "A" * MIB5 + " extra",
        "Bearer " + "a." * (MIB5 // 2),
        "Bearer " + " " * MIB5 + "x",
        "Bearer" + "\t" * MIB5,
        "B" * MIB5,
        "Basic " + "A" * MIB5,
        "Bearer " + "=" * MIB5 + "a",
        "Bearer " + "/" * MIB5 + "@",
    ],
    ids=[
        "long-token",
        "long-token-space",
        "dots",
        "spaces",
        "tabs",
        "long-scheme",
        "basic",
        "equals",
        "slashes",
    ],
)
def test_a_five_megabyte_authorization_header_is_refused_quickly(value: str) -> None:
    for client in (FLASK, MIDDLEWARE):
        response = within(
            2.0, lambda c=client: c.get("/orgs/acme/projects", headers={"Authorization": value})
        )
        assert response.status_code in (400, 401)
        assert len(response.get_data()) < 1024
        assert len(response.headers.get("WWW-Authenticate", "")) < 1024


def test_a_five_megabyte_bearer_token_is_invalid_token() -> None:
    response = within(
        2.0, lambda: FLASK.get("/orgs/acme/projects", headers={"Authorization": "Bearer " + "A" * MIB5})
    )
    assert response.status_code == 401
    (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
    assert challenge.get("error") == "invalid_token"
