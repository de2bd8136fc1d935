"""``parse_object``: the C scanner called straight for a compact document must answer exactly as
the whole decoder does, whitespace, trailing data and every refusal included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resource_server.strict_json import parse_object, strict_json_decoder


class Refused(ValueError):
    pass


DECODER = strict_json_decoder(lambda: Refused("duplicate"), lambda: Refused("constant"))


def parse(data: bytes) -> dict[str, Any]:
    return parse_object(data, DECODER, Refused, what="body")


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(deadline=None)  # a loaded CI machine: no per-example time limit
@given(st.dictionaries(st.text(max_size=6), values, max_size=4), st.sampled_from(["", " ", "\n\t "]))
def test_any_object_parses_as_json_loads_does(document: dict[str, Any], space: str) -> None:
    for text in (json.dumps(document), json.dumps(document, separators=(",", ":"))):
        for padded in (text, space + text, text + space, space + text + space):
            assert parse(padded.encode()) == json.loads(padded)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": 1}x', "not valid JSON"),
        (b'{"a": 1} {"b": 2}', "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b' {"a": {"b": 1, "b": 1}}', "duplicate"),
        (b'{"a": NaN}', "constant"),
        (b'{"a": 1e999}', "constant"),
        (b'["a"]', "must be a JSON object"),
        (b'"a"', "must be a JSON object"),
        (b"", "not valid JSON"),
        (b"   ", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
    ],
)
def test_what_the_decoder_refuses_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        parse(data)
