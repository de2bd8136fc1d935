"""Strict JSON for everything the library parses from outside: token segments, request bodies,
the authorization server's documents. One object, UTF-8 only (RFC 8259 §8.1), no duplicate
member names (RFC 8259 §4, RFC 7515 §5.2), no NaN/Infinity or overflowing numbers (§6), no deep
nesting, parsed in linear time."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "decoded", "nesting_depth", "parse_object", "strict_json_decoder"]

#: Objects and arrays nested deeper than this are refused before the JSON parser sees them
#: (CPython's parser recurses, and a body nested 1,000 deep raised RecursionError).
MAX_DEPTH = 32

# A JSON string (RFC 8259 §7), possessive, so matching never backtracks. A string that never
# closes runs to the end of the input: were it to fail instead, the search would start again at
# every later quote and rescan the rest each time (quadratic: 17 s for 64 KiB of \").
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# The depth change of each byte value, for the brackets that survive the translate below.
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def strict_json_decoder(
    duplicate: Callable[[], Exception],
    constant: Callable[[], Exception],
    names: Iterable[str] = (),
) -> json.JSONDecoder:
    """A JSON decoder that raises ``duplicate()`` for an object with a repeated member name and
    ``constant()`` for ``NaN``/``Infinity`` and for numbers too large for a float (not JSON
    values, RFC 8259 §6). Build it once: ``json.loads``
    with hooks constructs a new decoder on every call.

    A member name among ``names`` comes back as that one shared string, not a new copy per
    document: for objects that are kept (a cached token's claims), whose names repeat."""
    shared = {name: name for name in names}

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = {shared.get(name, name): value for name, value in pairs} if shared else dict(pairs)
        if len(result) != len(pairs):
            # RFC 7515 §5.2 / RFC 7519 §7.2 / RFC 8259 §4: parsers disagree about which of two
            # members counts, and that disagreement is an attack: refuse.
            raise duplicate()
        return result

    def refuse_constant(name: str) -> Any:
        raise constant()

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):  # 1e999 overflows to infinity, which JSON cannot express either
            raise constant()
        return value

    return json.JSONDecoder(
        object_pairs_hook=no_duplicates, parse_constant=refuse_constant, parse_float=finite
    )


def decoded(decoder: json.JSONDecoder, text: str) -> Any:
    """``decoder.decode(text)``, the same value or the same error, with the decoder's C scanner
    called straight for a compact document (one value, end to end): ``decode`` and
    ``raw_decode`` are two Python layers and a whitespace match around that one call. Anything
    else (whitespace around the value, trailing data, no value) goes through ``decode``."""
    try:
        value, end = vars(decoder)["scan_once"](text, 0)
    except StopIteration:  # not a value at the first character (whitespace, say)
        return decoder.decode(text)
    return value if end == len(text) else decoder.decode(text)


def nesting_depth(data: bytes) -> int:
    """How deeply objects and arrays nest in ``data``, strings skipped. Linear, and every step
    runs in C (a regex substitution, a translate, then accumulate over the brackets)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def parse_object(
    data: bytes,
    decoder: json.JSONDecoder,
    error: type[Exception],
    *,
    what: str,
    max_depth: int = MAX_DEPTH,
) -> dict[str, Any]:
    """``data`` as one JSON object, through ``decoder`` (a :func:`strict_json_decoder`, whose
    own refusals pass through), or ``error(description)`` raised: the description names
    ``what``, never the content."""
    # No document with few brackets can nest deeply: most skip the scan.
    if data.count(b"[") + data.count(b"{") > max_depth and nesting_depth(data) > max_depth:
        raise error(f"the JSON {what} nests deeper than {max_depth} levels")
    try:
        value = decoded(decoder, data.decode("utf-8"))
    except RecursionError:
        raise error(f"the {what} is not valid JSON") from None
    except ValueError as exc:  # bad UTF-8 or JSON, a 5,000-digit number, or the decoder's own
        if isinstance(error, type) and isinstance(exc, error):
            raise
        raise error(f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise error(f"the {what} must be a JSON object")
    return value
