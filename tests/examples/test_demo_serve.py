"""``examples/demo.py --serve`` prints commands for people to paste, each with what it gets. Here
the script runs as a person would start it (every port chosen by the OS), and each printed
request is made as printed (curl's options read from the line, made with httpx): its status
and challenge must be what its comment says."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from policy import parse_challenges

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops the servers."
#: A command and its printed expectation: ``curl ...   # 403, no challenge: why``.
EXPECTATION = re.compile(r"^(?P<command>.+?)\s+# (?P<status>\d{3})\b(?P<rest>.*)$")
#: ``NAME=$(curl ... | python3 -c '...["access_token"]...')``: a token kept for later lines.
ASSIGNMENT = re.compile(r"^(?P<name>[A-Z]+)=\$\((?P<command>curl .+?) \| python3 -c '.+'\)$")


@pytest.fixture(scope="module")
def printed() -> Iterator[list[str]]:
    """The lines ``--serve`` prints before it waits, with its servers still running."""
    process = subprocess.Popen(
        [sys.executable, "examples/demo.py", "--serve"]
        + [f"--{name}-port=0" for name in ("as", "api", "gateway", "globex", "mcp")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 60  # start-up, not expiry: bounded, never slept on
    try:
        while not seen or seen[-1] != READY:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"--serve stopped early: {seen}"
            seen.append(line)
        yield seen
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends: the demo stops its servers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Curl:
    """The request one printed curl command makes, read from its options."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str | None
    auth: tuple[str, str] | None
    cookies_from: str | None
    cookies_to: str | None


def parse_curl(command: str, variables: dict[str, str]) -> Curl:
    words = shlex.split(command)
    assert words[0] == "curl", command
    method, url, body, auth, read, write = None, None, [], None, None, None
    headers: list[tuple[str, str]] = []
    options = iter(words[1:])
    for word in options:
        if word in ("-s", "-i"):
            continue
        if word in ("-X", "-H", "-d", "-u", "-b", "-c"):
            value = re.sub(r"\$([A-Z]+)", lambda found: variables[found.group(1)], next(options))
            if word == "-X":
                method = value
            elif word == "-H":
                name, _, field = value.partition(":")
                headers.append((name.strip(), field.strip()))
            elif word == "-d":
                body.append(value)
            elif word == "-u":
                user, _, password = value.partition(":")
                auth = (user, password)
            elif word == "-b":
                read = value
            else:
                write = value
        else:
            assert word.startswith("http://") and url is None, f"an option this test does not know: {word}"
            url = word
    assert url is not None, command
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))  # what curl -d sends
    return Curl(
        method or ("POST" if body else "GET"),
        url,
        headers,
        "&".join(body) if body else None,
        auth,
        read,
        write,
    )


def perform(curl: Curl, jars: dict[str, httpx.Cookies]) -> httpx.Response:
    cookies = jars.get(curl.cookies_from) if curl.cookies_from else None
    with httpx.Client(timeout=30, cookies=cookies) as client:
        response = client.request(
            curl.method, curl.url, headers=curl.headers, content=curl.body, auth=curl.auth
        )
    if curl.cookies_to:
        jar = jars.setdefault(curl.cookies_to, httpx.Cookies())
        jar.extract_cookies(response)
    return response


def check(response: httpx.Response, status: str, rest: str, line: str) -> None:
    """The response is what the comment after the command says."""
    assert response.status_code == int(status), (line, response.status_code, response.text)
    challenge = response.headers.get("www-authenticate")
    if "no challenge" in rest:
        assert challenge is None, (line, challenge)
    if "+ challenge" in rest:
        assert challenge is not None, line
        (parsed,) = parse_challenges(challenge)
        error = re.search(r'error="([^"]+)"', rest)
        if error:
            assert parsed.get("error") == error.group(1), (line, challenge)
        for name in re.findall(r"\bwith (\w+)", rest):
            assert parsed.get(name), (line, challenge)


def test_every_printed_command_gets_what_its_comment_says(printed: list[str]) -> None:
    variables: dict[str, str] = {}
    jars: dict[str, httpx.Cookies] = {}
    checked = []
    for line in (line.strip() for line in printed):
        assigned = ASSIGNMENT.match(line)
        if assigned:  # a token for the lines after: the exchange itself must succeed
            response = perform(parse_curl(assigned["command"], variables), jars)
            assert response.status_code == 200, (line, response.text)
            variables[assigned["name"]] = response.json()["access_token"]
            continue
        if not line.startswith("curl "):
            continue
        expected = EXPECTATION.match(line)
        assert expected is not None, f"a command without its expected outcome: {line}"
        check(
            perform(parse_curl(expected["command"], variables), jars),
            expected["status"],
            expected["rest"],
            line,
        )
        checked.append((expected["status"], expected["rest"].split(":")[0].strip(", ")))
    assert set(variables) == {"TOKEN", "OPAQUE", "GLOBEX", "MCPTOKEN"}
    assert checked == [
        ("200", ""),
        ("403", "no challenge"),
        ("200", ""),
        ("200", ""),
        ("200", ""),
        ("200", ""),
        ("401", '+ challenge error="invalid_token"'),
        ("401", "+ challenge with resource_metadata"),
        ("200", ""),
        ("200", ""),  # the API's /metrics
    ]


def test_the_printed_python_prints_what_its_comment_says(printed: list[str]) -> None:
    """The DPoP snippet, a heredoc for ``python -``: run as printed, its output as announced."""
    start = next(i for i, line in enumerate(printed) if line.endswith("- <<'EOF'"))
    end = printed.index("EOF", start)
    assert printed[end + 1].strip() == (
        '# prints: DPoP token bound to ...; 200; then 401 DPoP ... error="invalid_dpop_proof"'
    )
    result = subprocess.run(
        shlex.split(printed[start].removesuffix(" <<'EOF'")),
        input="\n".join(printed[start + 1 : end]) + "\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, second, third = result.stdout.splitlines()
    assert first.startswith("DPoP token bound to ")
    assert second.startswith("with its proof: 200 ")
    assert third.startswith("the same proof again: 401 DPoP ") and 'error="invalid_dpop_proof"' in third
