"""The demo's operator's summary against the story it told: the whole scripted story runs over
real loopback servers on one fake clock, then the summary is read back as the demo reads it
(``GET /metrics`` scraped and parsed, the audit trail's JSON lines), and every number is checked
against what the printed steps show."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import demo_servers, tell_story
from demo_telemetry import Summary, format_summary, read_summary

from policy import parse_challenges
from resource_server.telemetry import SCHEMA
from tests.examples.test_demo_auth_server import T0
from tests.support import FakeClock

#: ``   POST /orgs/acme/mcp/ tools/call create_project -> 403``: one request of the story.
REQUEST = re.compile(r"^   (?P<method>[A-Z]+) (?P<path>/\S*)(?: [\w/ ]+)? -> (?P<status>\d{3})$")
#: Step 8: the agent blueprint's view refuses to let a token approve, after the guard let the
#: capability through. The guard's decision was "allowed": not a refusal in its metrics or trail.
REFUSED_BY_THE_VIEW = "8"
ORG_BINDING = "the token is bound to a different organization"


@dataclass(frozen=True)
class Refusal:
    """One refusal the printed story shows: its step, status, error code and description."""

    step: str
    status: int
    error: str
    description: str


@dataclass(frozen=True)
class Told:
    out: str
    ok: bool
    summary: Summary
    content_type: str
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def told() -> Iterator[Told]:
    out = io.StringIO()
    clock = FakeClock(T0)
    with demo_servers(clock=clock) as demo, httpx.Client(timeout=10) as http:
        with contextlib.redirect_stdout(out):
            story = tell_story(demo)
        summary = read_summary(demo.metrics, demo.audit_log, http)
        content_type = http.get(demo.metrics).headers["content-type"]
        yield Told(out.getvalue(), story.ok, summary, content_type, summary.events)


def printed_requests(out: str) -> Iterator[tuple[str, str, int, list[str]]]:
    """Each request the story printed: its step (``""`` for an unnumbered one), method, status,
    and the lines after it until the next request or step."""
    step = ""
    lines = out.splitlines()
    for index, line in enumerate(lines):
        heading = re.match(r"^== (\d+)\. ", line)
        if heading:
            step = heading.group(1)
        elif line.startswith("== "):
            step = ""
        request = REQUEST.match(line)
        if request:
            after = []
            for following in lines[index + 1 :]:
                if following.startswith("==") or REQUEST.match(following):
                    break
                after.append(following)
            yield step, request["method"], int(request["status"]), after


def printed_refusals(out: str) -> list[Refusal]:
    """The refusals the printed story shows, with the error code a client reads: the challenge's
    ``error``, else ``unauthorized`` for a 401 (no credentials: RFC 6750 §3.1 names no error) and
    ``forbidden`` for a 403 without a challenge, as docs/observability.md defines them."""
    refusals = []
    for step, _, status, after in printed_requests(out):
        if status < 400:
            continue
        error = "unauthorized" if status == 401 else "forbidden"
        header = [line for line in after if line.startswith("   WWW-Authenticate: ")]
        if header:
            challenges = parse_challenges(header[0].removeprefix("   WWW-Authenticate: "))
            error = next((c.get("error") for c in challenges if c.get("error")), error) or error
        body = next((line for line in after if line.startswith("   {")), "{}")
        description = json.loads(body).get("error_description", "") if body.strip().startswith("{") else ""
        refusals.append(Refusal(step, status, error, description))
    return refusals


def test_the_story_ran_as_told(told: Told) -> None:
    assert told.ok, told.out


def test_refusals_by_reason_are_the_refusals_the_story_shows(told: Told) -> None:
    shown = [r for r in printed_refusals(told.out) if r.step != REFUSED_BY_THE_VIEW]
    assert [r.step for r in printed_refusals(told.out)].count(REFUSED_BY_THE_VIEW) == 1
    expected = Counter((r.status, r.error) for r in shown)
    assert told.summary.refusals == dict(expected)
    # The story's own numbers, to read at a glance (and to catch a parser that sees nothing).
    assert told.summary.refusals == {
        (401, "insufficient_user_authentication"): 2,  # steps 30, 33
        (401, "invalid_dpop_proof"): 1,  # 21
        (401, "invalid_token"): 5,  # 4, 15, 17, 19, 20
        (401, "unauthorized"): 3,  # 12, 13, 24
        (403, "forbidden"): 3,  # 5, 6, 28
        (403, "insufficient_scope"): 4,  # 2, 7, 22, 26
    }
    # Both sources count the same refusals.
    assert told.summary.refused_decisions == len(shown) == 18


def test_no_503s_and_no_rotations_in_a_story_that_has_none(told: Told) -> None:
    assert all(status != 503 for _, _, status, _ in printed_requests(told.out))
    assert told.summary.unavailable == {}
    assert told.summary.rotations == 0
    assert not [event for event in told.events if event["event"] == "jwks_rotated"]


def test_org_binding_violations_are_the_steps_refused_for_another_orgs_token(told: Told) -> None:
    shown = [r.step for r in printed_refusals(told.out) if r.description == ORG_BINDING]
    assert shown == ["4", "17"]  # a globex token from acme's server, then from globex's own
    assert told.summary.org_bindings == [("globex", "acme")] * len(shown)


def test_per_agent_activity_is_what_the_agents_did_in_the_story(told: Told) -> None:
    """Steps 7, 8 and 10 are the agent session's capability, 27 and 28 agent-assistant's
    exchanged token; both act for user-admin. Step 8's 403 is the view's: the guard allowed it."""
    actors = {
        "7": "session:agent-session-1",
        "8": "session:agent-session-1",
        "10": "session:agent-session-1",
        "27": "agent-assistant",
        "28": "agent-assistant",
    }
    expected: Counter[tuple[str, str | None, str]] = Counter()
    for step, _, status, _ in printed_requests(told.out):
        if step in actors:
            outcome = "refused" if status >= 400 and step != REFUSED_BY_THE_VIEW else "allowed"
            expected[actors[step], "user-admin", outcome] += 1
    assert (
        told.summary.agents
        == dict(expected)
        == {
            ("session:agent-session-1", "user-admin", "refused"): 1,
            ("session:agent-session-1", "user-admin", "allowed"): 2,
            ("agent-assistant", "user-admin", "allowed"): 1,
            ("agent-assistant", "user-admin", "refused"): 1,
        }
    )
    (approval,) = [
        event for event in told.events if event["route"] == "/orgs/<org>/agent-approvals" and event["actors"]
    ]
    assert (approval["outcome"], approval["source"]) == ("allowed", "capability")


def test_every_audit_event_follows_the_schema(told: Told) -> None:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    kinds = Counter(event["event"] for event in told.events)
    assert kinds["decision"] > told.summary.refused_decisions  # allowed requests are audited too
    assert kinds["org_binding_violation"] == 2
    for event in told.events:
        validator.validate(event)


def test_the_metrics_are_prometheus_text_from_the_opentelemetry_exporter(told: Told) -> None:
    assert told.content_type.startswith("text/plain; version=")


def test_the_summary_prints_what_was_read_back() -> None:
    summary = Summary(
        refusals={(401, "invalid_token"): 2, (503, "temporarily_unavailable"): 1},
        unavailable={"jwks": 1},
        rotations=1,
        org_bindings=[("globex", "acme")],
        agents={("agent-assistant", "user-admin", "allowed"): 3},
        refused_decisions=3,
        events=[],
    )
    assert format_summary(summary, "http://api/metrics").splitlines()[1:] == [
        "== the operator's summary, read back from http://api/metrics and the audit log",
        "   refusals by status and error (metrics): 401 invalid_token x2, 503 temporarily_unavailable x1;"
        " 3 in all, 3 refusal events in the audit log",
        "   503s by cause (metrics): jwks x1",
        "   key rotations (metrics): 1",
        "   org-binding violations (audit): 1 with a token of globex on acme's URL",
        "   agents acting for people (audit, by actor):",
        "     agent-assistant for user-admin: 3 allowed, 0 refused",
    ]
