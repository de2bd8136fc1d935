"""The Django example (``examples/django_api/``), started by the README's command as a person
would start it (every port chosen by the OS and read from what it prints) and driven over real
HTTP: each printed curl command gets what its comment says, our ``StepUpAuth`` steps up against
it (403 ``insufficient_scope`` → a new token → success), roles and organizations decide, and its
``manage.py`` passes the library's checks."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from policy import parse_challenges
from resource_server.client import StepUpAuth
from tests.examples.test_demo_serve import EXPECTATION, check, parse_curl, perform

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from demo_auth_server import PASSWORDS, fetch_token_with_code  # noqa: E402

SCRIPT = "examples/django_api/serve.py"
#: The README's command, after its demo command (whose demo extra includes Django) made the venv.
README_COMMAND = ".venv/bin/python " + SCRIPT
READY = "Ctrl-C stops the servers."
ASSIGNMENT = re.compile(r"^(?P<name>[A-Z]+)=(?P<value>\S+)$")


@dataclass(frozen=True)
class Served:
    api: str
    issuer: str
    lines: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The README's command, with ``--port 0 --as-port 0``, until it says it serves."""
    log = tmp_path_factory.mktemp("django-example") / "server.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, SCRIPT, "--port", "0", "--as-port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=own_settings(),
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + 90  # start-up, not expiry: bounded, never slept on
        try:
            while not seen or seen[-1] != READY:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                assert line is not None, f"it stopped early: {seen}\n{log.read_text()}"
                seen.append(line)
            api = next(line.split()[-1] for line in seen if line.startswith("API "))
            issuer = next(line.split()[-1] for line in seen if line.startswith("authorization server:"))
            yield Served(api, issuer, seen)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                assert process.wait(timeout=30) == 0, log.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def own_settings() -> dict[str, str]:
    """This environment, without the test suite's ``DJANGO_SETTINGS_MODULE`` (tests/django sets
    it): the example names its own."""
    return {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}


def token(served: Served, scope: str, username: str = "user-admin", org: str = "acme") -> str:
    """A token from the example's authorization server: the code flow with PKCE, scripted."""
    with httpx.Client(timeout=30) as http:
        answer = fetch_token_with_code(
            served.issuer, username=username, password=PASSWORDS[username], org=org, scope=scope, client=http
        )
    return str(answer["access_token"])


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_the_readme_starts_it_with_one_command_after_the_demo_install() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{README_COMMAND}`" in readme
    # The demo extra carries the example's dependencies, so no set-up command of its own is needed.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    own = [r for r in extras["demo"] if r.startswith("scoped-resource-server[")]
    assert own and "django" in own[0].partition("[")[2].rstrip("]").split(",")


def test_every_printed_command_gets_what_its_comment_says(served: Served) -> None:
    variables: dict[str, str] = {}
    checked = []
    for line in served.lines:
        assigned = ASSIGNMENT.match(line)
        if assigned:
            variables[assigned["name"]] = assigned["value"]
            continue
        if not line.startswith("curl "):
            continue
        expected = EXPECTATION.match(line)
        assert expected is not None, f"a command without its expected outcome: {line}"
        check(
            perform(parse_curl(expected["command"], variables), {}),
            expected["status"],
            expected["rest"],
            line,
        )
        checked.append(expected["status"])
    assert set(variables) == {"READER", "WRITER"}
    assert checked == ["200", "401", "200", "403", "201", "403", "401", "200", "200"]


def test_step_up_auth_steps_up_against_it(served: Served) -> None:
    """Our client reads the 403's challenge, asks for a token with the scope it names, and
    retries: the write succeeds, as the person it was asked of."""
    asked: list[list[str]] = []

    def provider(scopes: Iterable[str] | None) -> str:
        wanted = sorted(scopes or ["project:read"])
        asked.append(wanted)
        return token(served, " ".join(wanted))

    with httpx.Client(
        base_url=served.api, auth=StepUpAuth(provider, scopes=["project:read"]), timeout=30
    ) as client:
        listed = client.get("/orgs/acme/projects")
        assert listed.status_code == 200 and [p["name"] for p in listed.json()][:1] == ["website"]
        created = client.post("/orgs/acme/projects", json={"name": "stepped up"})
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "user-admin"
        assert client.get("/orgs/acme/projects").status_code == 200  # the new token, kept
    assert asked == [["project:read"], ["project:read", "project:write"]]


def test_the_members_role_and_the_tokens_org_decide(served: Served) -> None:
    api = served.api
    reader = token(served, "project:read")
    members = httpx.get(f"{api}/orgs/acme/members", headers=bearer(reader))
    assert members.status_code == 403  # any of team:write, org:admin: the admin's role holds the first
    (challenge,) = parse_challenges(members.headers["WWW-Authenticate"])
    assert (challenge.get("error"), challenge.get("scope")) == ("insufficient_scope", "team:write")
    team = httpx.get(f"{api}/orgs/acme/members", headers=bearer(token(served, "project:read team:write")))
    assert {"user": "user-member", "role": "member"} in team.json()

    member = token(served, "project:read project:write", username="user-member")  # capped: read
    refused = httpx.post(f"{api}/orgs/acme/projects", json={"name": "x"}, headers=bearer(member))
    assert refused.status_code == 403 and "WWW-Authenticate" not in refused.headers  # no token helps
    assert refused.json()["error"] == "forbidden"

    globex = token(served, "project:read", org="globex")  # user-admin is a member of globex too
    assert httpx.get(f"{api}/orgs/globex/projects", headers=bearer(globex)).json()[0]["name"] == "billing"
    assert httpx.get(f"{api}/orgs/acme/projects", headers=bearer(globex)).status_code == 401

    me = httpx.get(f"{api}/me", headers=bearer(reader)).json()
    assert me == {"subject": "user-admin", "org": "acme", "scopes": ["project:read"], "client_id": "demo-cli"}
    metadata = httpx.get(f"{api}/.well-known/oauth-protected-resource").json()
    assert (metadata["resource"], metadata["authorization_servers"]) == (api, [served.issuer])
    assert metadata["scopes_supported"] == ["org:admin", "project:read", "project:write", "team:write"]


@pytest.mark.parametrize(
    ("arguments", "printed"),
    [(["check"], "System check identified no issues"), (["scopes", "check"], "scope maps OK")],
)
def test_its_manage_py_passes_the_checks(arguments: list[str], printed: str) -> None:
    result = subprocess.run(
        [sys.executable, "examples/django_api/manage.py", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=own_settings(),
    )
    assert result.returncode == 0, result.stderr
    assert printed in result.stdout
