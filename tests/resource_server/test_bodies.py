"""Bounded body reading and strict JSON objects (resource_server.bodies), on real WSGI environs."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from resource_server.bodies import BodyError, json_object, read_body
from resource_server.strict_json import nesting_depth


def environ(body: bytes, **overrides: Any) -> dict[str, Any]:
    env = EnvironBuilder(method="POST", data=body).get_environ()
    env.update(overrides)
    return env


def test_a_body_is_read_and_put_back_whole() -> None:
    env = environ(b'{"a": 1}')
    assert read_body(env, limit=100) == b'{"a": 1}'
    assert read_body(env, limit=100) == b'{"a": 1}'  # a second reader (the app) sees it too
    assert env["wsgi.input"].read() == b'{"a": 1}'


def test_the_limit_is_exact() -> None:
    assert read_body(environ(b"x" * 100), limit=100) == b"x" * 100
    with pytest.raises(BodyError, match="larger than 99 bytes"):
        read_body(environ(b"x" * 100), limit=99)


def test_a_terminated_stream_without_a_length_is_bounded_too() -> None:
    """Servers that decode chunked bodies set wsgi.input_terminated and give no Content-Length."""
    env = environ(b"", **{"wsgi.input": io.BytesIO(b"y" * 1000), "wsgi.input_terminated": True})
    env.pop("CONTENT_LENGTH", None)
    with pytest.raises(BodyError, match="larger than 999 bytes"):
        read_body(env, limit=999)
    env = environ(b"", **{"wsgi.input": io.BytesIO(b"y" * 1000), "wsgi.input_terminated": True})
    env.pop("CONTENT_LENGTH", None)
    assert read_body(env, limit=1000) == b"y" * 1000


def test_no_length_and_no_termination_reads_nothing_rather_than_block() -> None:
    env = environ(b"", **{"wsgi.input": io.BytesIO(b"never read")})
    env.pop("CONTENT_LENGTH", None)
    assert read_body(env, limit=100) == b""


def test_a_body_shorter_than_its_content_length_is_refused() -> None:
    env = environ(b"", **{"wsgi.input": io.BytesIO(b"short"), "CONTENT_LENGTH": "50"})
    with pytest.raises(BodyError, match=r"could not be read|ended before"):
        read_body(env, limit=100)
    terminated = environ(
        b"", **{"wsgi.input": io.BytesIO(b"short"), "CONTENT_LENGTH": "50", "wsgi.input_terminated": True}
    )
    with pytest.raises(BodyError, match="ended before its Content-Length"):
        read_body(terminated, limit=100)


class Broken(io.RawIOBase):
    """An input stream that fails the way a server's chunked decoder does."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise RuntimeError("Invalid chunk size")


def test_a_stream_that_raises_is_a_body_error() -> None:
    env = environ(b"", **{"wsgi.input": Broken(), "wsgi.input_terminated": True})
    env.pop("CONTENT_LENGTH", None)
    with pytest.raises(BodyError, match="could not be read") as caught:
        read_body(env, limit=100)
    assert "chunk" not in caught.value.description  # the server's own message is not echoed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 33 + b"]" * 33, "nests deeper than 32"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, "nests deeper than 32"),
        (b"[" * 100_000, "nests deeper than 32"),
        (b'{"a": 1, "a": 2}', "duplicate member names"),
        (b'{"a": NaN}', "NaN or Infinity"),
        (b'{"a": -Infinity}', "NaN or Infinity"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"", "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_json_objects_are_strict(body: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        json_object(body)


def test_nesting_up_to_the_limit_is_fine_and_brackets_in_strings_do_not_count() -> None:
    assert json_object(b'{"a":' * 31 + b"[1]" + b"}" * 31)["a"]
    assert json_object(b'{"s": "' + b"[{" * 1000 + b'\\"[["}') == {"s": "[{" * 1000 + '"[['}
    assert json_object(b'{"deep": "x"}', max_depth=1) == {"deep": "x"}
    with pytest.raises(BodyError):
        json_object(b'{"deep": {}}', max_depth=1)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('ab[]{}"\\ é')),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_the_depth_scan_agrees_with_the_parsed_value(value: Any) -> None:
    assert nesting_depth(json.dumps(value).encode()) == reference_depth(value)
    assert nesting_depth(json.dumps(value, ensure_ascii=False).encode()) == reference_depth(value)


@given(st.binary(max_size=300))
def test_any_bytes_give_an_object_or_a_body_error(data: bytes) -> None:
    try:
        assert isinstance(json_object(data), dict)
    except BodyError as error:
        assert error.description


HOSTILE_SHAPES = {
    "an unterminated string of escaped quotes": lambda n: b'"' + b'\\"' * (n // 2),
    "quotes only": lambda n: b'"' * n,
    "open brackets": lambda n: b"[" * n,
    "bracket pairs": lambda n: b"[]" * (n // 2),
    "strings in arrays": lambda n: b'["",' * (n // 4),
    "brackets inside one string": lambda n: b'{"s": "' + b"[" * n + b'"}',
}


#: The input grows 16 times: a linear scan costs about 16 times as much, a quadratic one 256
#: times (an unterminated string of escaped quotes once took 17 s for 64 KiB). The bound sits
#: four times from each.
GROWTH, MAX_COST_GROWTH = 16, 64


def best_cpu_time(data: bytes) -> float:
    """The least CPU time of this thread (``time.thread_time``: not the wall clock, so other
    processes on a loaded machine do not count) of five refusals of ``data``."""
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        with contextlib.suppress(BodyError):
            json_object(data)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("shape", list(HOSTILE_SHAPES))
def test_refusing_a_hostile_body_takes_linear_time(shape: str) -> None:
    """Sixteen times the input costs at most 64 times the CPU time: a ratio within one run,
    the best of several tries, so neither the machine's speed nor its load decides; a
    quadratic scan (256 times) fails it on every try."""
    build = HOSTILE_SHAPES[shape]
    ratios = []
    for _ in range(5):
        small, large = best_cpu_time(build(16 * 1024)), best_cpu_time(build(16 * 1024 * GROWTH))
        ratios.append(large / max(small, 1e-6))
        if ratios[-1] <= MAX_COST_GROWTH:
            return
    raise AssertionError(f"{shape}: {GROWTH}x the input cost {min(ratios):.0f}x the CPU time")
