"""Identifiers that reach logs and screens (subjects, actors, clients): visible characters only.

Control characters (C0, DEL, C1) forge log lines and break terminals; lone surrogates break every
UTF-8 encoder downstream. Invisible and bidirectional format characters (U+202E and the other bidi
controls, zero-width spaces and joiners, the BOM) and the line and paragraph separators
U+2028/U+2029 make two different identifiers look the same to the person reading a log or an audit
screen, and no authorization server has a reason to mint them in an identifier. This follows the
PRECIS IdentifierClass (RFC 8264 §4.2), which keeps controls and default-ignorable code points out
of identifiers. Visible characters of any script and space characters (Zs) are accepted; nothing is
normalized.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_IDENTIFIER", "is_printable_identifier", "valid_identifier"]

#: Longer identifiers are refused: nothing an authorization server mints comes near it.
MAX_IDENTIFIER = 1024

# Unicode general categories an identifier must not contain: Cc (C0 controls, DEL, C1 controls),
# Cs (lone surrogates: JSON's "\ud800" decodes to one, and it cannot even be encoded as UTF-8),
# Cf (format characters: bidi overrides and isolates such as U+202E, zero-width characters,
# the BOM, soft hyphen, tag characters), Zl and Zp (U+2028, U+2029: line breaks to many readers).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_printable_identifier(value: str) -> bool:
    """Whether ``value`` holds no control, invisible or bidi-format character (one linear scan)."""
    if value.isascii():  # the common case, checked by one regular-expression scan
        return _ASCII_CONTROL.search(value) is None
    return not any(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in value)


def valid_identifier(value: object, what: str) -> str:
    """``value`` if it is a non-empty printable identifier of at most :data:`MAX_IDENTIFIER`
    characters; ``ValueError`` naming ``what`` (never echoing the value) otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_IDENTIFIER:
        raise ValueError(f"{what} is longer than {MAX_IDENTIFIER} characters")
    if not is_printable_identifier(value):
        raise ValueError(f"{what} holds control or invisible characters")
    return value
