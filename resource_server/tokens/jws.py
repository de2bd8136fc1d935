"""Strict parsing of compact JWS (RFC 7515 §7.1) and typed claim access (RFC 7519), shared by the
access-token and capability-token verifiers. Everything here runs before trust, on bounded input."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from jwt.algorithms import HMACAlgorithm

from ..strict_json import strict_json_decoder
from .errors import InvalidToken

__all__ = [
    "InvalidToken",
    "b64decode",
    "b64encode",
    "decoded_object",
    "integer_claim",
    "json_object",
    "split_compact",
    "string_claim",
]

# RFC 7515 §7.1 compact serialization, base64url without padding (RFC 7515 §2), nothing else.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


def split_compact(token: str) -> tuple[str, str, str]:
    """The three base64url segments of a compact JWS, or :class:`InvalidToken`."""
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise InvalidToken("the token is not a compact-serialized JWS")
    return match.group(1), match.group(2), match.group(3)


def b64encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# base64url → base64 for binascii, and "+" "/" (not base64url) → a byte strict mode refuses.
_FROM_BASE64URL = bytes.maketrans(b"-_+/", b"+/!!")


def b64decode(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly: any other character is refused."""
    if len(segment) % 4 == 1:  # no base64url string has this length (RFC 4648 §5)
        raise InvalidToken("the token is not valid base64url")
    try:
        data = (segment + "=" * (-len(segment) % 4)).encode("ascii").translate(_FROM_BASE64URL)
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
        raise InvalidToken("the token is not valid base64url") from None


_DECODER = strict_json_decoder(
    lambda: InvalidToken("the token has duplicate JSON members"),
    lambda: InvalidToken("the token holds a non-standard JSON number"),
    # The names most tokens carry (RFC 7515 §4.1, RFC 7519 §4.1, RFC 9068 §2.2, RFC 8693 §4,
    # RFC 7800 §3.1): one string each, shared by every cached token's claims.
    names=(
        *("alg", "kid", "typ", "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp"),
        *("client_id", "org_id", "cnf", "jkt", "act", "acr", "amr", "auth_time", "azp", "sid"),
    ),
)


# The same checks, for a document that is read and dropped: no shared names to look up.
_TRANSIENT = strict_json_decoder(
    lambda: InvalidToken("the token has duplicate JSON members"),
    lambda: InvalidToken("the token holds a non-standard JSON number"),
)


# Each decoder's C scanner (set on the instance by JSONDecoder.__init__; typeshed omits it).
_SCANNERS: dict[bool, Callable[[str, int], tuple[Any, int]]] = {
    True: vars(_DECODER)["scan_once"],
    False: vars(_TRANSIENT)["scan_once"],
}


def json_object(segment: str, what: str) -> dict[str, Any]:
    """The JSON object a base64url segment holds, strictly (:mod:`resource_server.strict_json`),
    its member names shared (for objects that are kept), or :class:`InvalidToken`."""
    return decoded_object(b64decode(segment), what)


def decoded_object(raw: bytes, what: str, *, kept: bool = True) -> dict[str, Any]:
    """The JSON object in ``raw`` (a decoded segment); ``kept=False`` for one the caller reads
    and drops, whose member names need not be the shared strings."""
    decoder = _DECODER if kept else _TRANSIENT
    try:
        # RFC 8259 §8.1: JSON exchanged between systems is UTF-8; no guessing of other encodings.
        text = raw.decode("utf-8")
        # strict_json.decoded(), inlined for every token: its call and its scanner lookup cost
        # 0.23 µs a token (2.22 against 1.98 µs a payload, in a loop).
        try:  # the decoder's C scanner, straight: a compact document is one value, end to end
            value, end = _SCANNERS[kept](text, 0)
        except StopIteration:  # not a value at the first character (whitespace, say)
            end = -1
        if end != len(text):  # the whole parse, which skips whitespace or says what is wrong
            value = decoder.decode(text)
    except InvalidToken:
        raise
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, a 5000-digit integer, deep nesting
        raise InvalidToken(f"the token {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"the token {what} is not a JSON object")
    return value


@overload
def integer_claim(claims: Mapping[str, Any], name: str, *, required: Literal[True]) -> int: ...
@overload
def integer_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> int | None: ...
def integer_claim(claims: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    if name not in claims:
        if required:
            raise InvalidToken(f"the token has no {name} claim")
        return None
    value = claims[name]
    # RFC 7519 §2 NumericDate; bool is an int subclass in Python and must not pass.
    if type(value) is not int:
        raise InvalidToken(f"the {name} claim must be an integer NumericDate")
    return value


# Unicode general categories an identifier must not contain: Cc (C0 controls, DEL, C1 controls),
# Cs (lone surrogates: JSON's "\ud800" decodes to one, and it cannot even be encoded as UTF-8),
# Cf (format characters: bidi overrides and isolates such as U+202E, zero-width characters,
# the BOM, soft hyphen, tag characters), Zl and Zp (U+2028, U+2029: line breaks to many readers).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_printable_identifier(value: str) -> bool:
    if value.isascii():  # the common case, checked by one regular-expression scan
        return _ASCII_CONTROL.search(value) is None
    return not any(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in value)


@overload
def string_claim(claims: Mapping[str, Any], name: str, *, required: Literal[True]) -> str: ...
@overload
def string_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None: ...
def string_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    """A claim that identifies someone or something (``sub``, ``client_id``, an org, a session):
    a non-empty JSON string (RFC 7519 §4.1.2 StringOrURI for ``sub``) without control or invisible
    characters.

    These values reach log lines, database rows and screens. Control characters (C0, DEL, C1)
    forge log lines and break terminals; lone surrogates break every UTF-8 encoder downstream.
    Invisible and bidirectional format characters (U+202E and the other bidi controls, zero-width
    spaces and joiners, the BOM) and the line and paragraph separators U+2028/U+2029 are refused
    too: they make two different identifiers look the same to the person reading a log or an
    audit screen, and no authorization server has a reason to mint them in an identifier. This
    follows the PRECIS IdentifierClass (RFC 8264 §4.2), which keeps controls and default-ignorable
    code points out of identifiers; unlike it, the zero-width joiners that some scripts use inside
    words are refused in every context, a fair price for identifiers, which are machine-made.
    Visible characters of any script and space characters (Zs) are accepted; nothing is normalized.
    """
    if name not in claims and not required:
        return None
    value = claims.get(name)
    if type(value) is not str or not value:
        raise InvalidToken(f"the {name} claim must be a non-empty string")
    # is_printable_identifier, its common case inline (this runs for every new token's sub).
    if (_ASCII_CONTROL.search(value) is not None) if value.isascii() else not is_printable_identifier(value):
        # The description names the claim, never its value, which could hold the very bytes
        # this check keeps out of logs.
        raise InvalidToken(f"the {name} claim holds control or invisible characters")
    return value


# -- HS256 tokens this server both mints and verifies (capabilities, resource tokens) -------------

_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)
_MIN_SECRET_BYTES = 32


def hmac_keys(keys: Mapping[str, bytes | str]) -> dict[str, bytes]:
    """kid → secret, each at least 32 bytes (RFC 7518 §3.2: a key as long as the hash output)."""
    if not keys:
        raise ValueError("give at least one key")
    loaded = {}
    for kid, secret in keys.items():
        raw = secret.encode() if isinstance(secret, str) else secret
        if not isinstance(kid, str) or not kid or not isinstance(raw, bytes) or len(raw) < _MIN_SECRET_BYTES:
            raise ValueError(
                f"key {kid!r} needs a non-empty kid and at least {_MIN_SECRET_BYTES} bytes of secret"
            )
        loaded[kid] = raw
    return loaded


def hs256_sign(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A compact JWS (RFC 7515 §7.1) over ``header`` and ``claims`` with HMAC-SHA256."""
    signing_input = f"{b64encode(json.dumps(header).encode())}.{b64encode(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64encode(_HS256.sign(signing_input.encode(), secret))}"


def hs256_verify(token: str, keys: Mapping[str, bytes], typ: str) -> dict[str, Any]:
    """The claims of ``token`` if it is an HS256 JWS of type ``typ`` under one of ``keys`` (by
    ``kid``), compared in constant time; :class:`InvalidToken` otherwise. Claims are not checked."""
    header_b64, payload_b64, signature_b64 = split_compact(token)
    header = json_object(header_b64, "header")
    kid = header.get("kid")
    secret = keys.get(kid) if isinstance(kid, str) else None
    # The algorithm is fixed here, never read from the token (RFC 8725 §3.1); no extensions.
    if header.get("alg") != "HS256" or header.get("typ") != typ or "crit" in header or secret is None:
        raise InvalidToken("the token is not one this server issued")
    expected = _HS256.sign(f"{header_b64}.{payload_b64}".encode(), secret)
    if not hmac.compare_digest(expected, b64decode(signature_b64)):
        raise InvalidToken("the token signature is invalid")
    return json_object(payload_b64, "payload")
