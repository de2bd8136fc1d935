"""``WWW-Authenticate`` challenges: build and parse (RFC 9110 §11, RFC 6750 §3, RFC 9470, RFC 9728).

RFC 9110 §11.6.1 and §11.2::

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )
    token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="

A field value can carry several challenges, and the commas that separate challenges are the
same commas that separate one challenge's parameters. A parser must therefore decide, at each
list element, whether it starts a new challenge (``scheme`` not followed by ``=``) or continues
the current one (``name=value``). Parsers that split on commas first, or that merge everything
into one dict, get ``Basic realm="a", Bearer error="b"`` wrong.

The parser here is a loop over one compiled pattern whose repetitions are all possessive, so it
never backtracks and runs in time linear in the input. The constant is kept small too: the regex
engine passes over each character a small, fixed number of times, and quoted-pairs are undone
with ``str.replace``, so no input shape measured costs more per byte than about ten times a plain
quoted-string (tests/adversarial/test_hostile_challenges.py holds every shape to that).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from types import MappingProxyType

from .scopes import format_scope, parse_scope

__all__ = ["Challenge", "ChallengeSyntaxError", "bearer_challenge", "format_challenge", "parse_challenges"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]++"
_TOKEN68 = r"[A-Za-z0-9\-._~+/]++=*+"
# quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE   (RFC 9110 §5.6.4; obs-text is %x80-FF)
_QDTEXT = r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
_QUOTED_PAIR_SYNTAX = r"\\[\t \x21-\x7e\x80-\xff]"
# Written as an unrolled loop, qdtext-run *( quoted-pair qdtext-run ), rather than as the grammar's
# alternation *( qdtext / quoted-pair ): each quoted-pair is then one step, not a failed qdtext
# branch followed by the quoted-pair branch, which cuts the cost of a run of them by about 40%.
# It matches the same language, possessively, so it still never backtracks.
_QUOTED_BODY = rf"{_QDTEXT}*+(?:{_QUOTED_PAIR_SYNTAX}{_QDTEXT}*+)*+"
_PARAM = rf'{_TOKEN}[ \t]*+=[ \t]*+(?:{_TOKEN}|"{_QUOTED_BODY}")'
# The same auth-param with three groups (name, token value, quoted-string body), preceded by the
# list separators before it. Consuming the separators in the match, instead of letting finditer
# search past them, keeps a long run of empty list elements from costing one failed match
# attempt per byte.
_PARAM_FIELDS = re.compile(rf'[ \t,]*+({_TOKEN})[ \t]*+=[ \t]*+(?:({_TOKEN})|"({_QUOTED_BODY})")')
# One challenge, with the list separators before it and the whitespace after it. Its auth-params
# are matched as one span here and split by _PARAM_FIELDS.finditer, so the per-parameter work
# happens inside the regex engine. The first auth-param follows the scheme after 1*SP, or after
# a comma (an empty list element), which senders emit and recipients must accept (§5.6.1).
_CHALLENGE = re.compile(
    rf"""
    (?P<sep>[ \t,]*+)
    (?P<scheme>{_TOKEN})
    (?:
        \ ++(?P<token68>{_TOKEN68})(?=[ \t]*+(?:,|\Z))
      | (?P<params>(?:\ [ \t,]*+|[ \t]*+,[ \t,]*+){_PARAM}[ \t]*+(?:,[ \t,]*+{_PARAM}[ \t]*+)*+)
    )?+
    [ \t]*+
    """,
    re.VERBOSE,
)
#: Real headers carry a handful of challenges with a handful of parameters each; these bounds keep
#: a hostile header from costing more than a fraction of a millisecond per kilobyte.
MAX_CHALLENGES = 256
MAX_PARAMS = 256
_TOKEN_RE = re.compile(_TOKEN)
_TOKEN68_RE = re.compile(_TOKEN68)
# What may appear inside a quoted-string we emit: HTAB, SP and visible ASCII. CR, LF, NUL, other
# controls and non-ASCII are refused rather than emitted (RFC 9110 §5.5, §5.6.4).
_EMITTABLE = re.compile(r"[\t\x20-\x7e]*+")
# RFC 6750 §3: error = 1*( %x20-21 / %x23-5B / %x5D-7E )
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]++")


class ChallengeSyntaxError(ValueError):
    """A ``WWW-Authenticate`` field value does not follow RFC 9110 §11.6.1."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """One authentication challenge.

    ``scheme`` keeps the case it was sent in (compare with :meth:`is_scheme`); ``params`` is a
    read-only ordered mapping whose names are lower-cased (RFC 9110 §11.2: parameter names are
    case-insensitive) and whose values are unquoted; ``token68`` is set for challenges such as
    ``Basic abc==`` instead of parameters.
    """

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    def __post_init__(self) -> None:
        params = MappingProxyType({str(name).lower(): value for name, value in self.params.items()})
        object.__setattr__(self, "params", params)

    def is_scheme(self, scheme: str) -> bool:
        """Whether this challenge uses ``scheme``, compared case-insensitively (RFC 9110 §11.1)."""
        return self.scheme.lower() == scheme.lower()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of parameter ``name`` (case-insensitive), or ``default``."""
        return self.params.get(name.lower(), default)

    def __hash__(self) -> int:
        return hash((self.scheme.lower(), tuple(self.params.items()), self.token68))

    def __str__(self) -> str:
        return format_challenge(self)


def _fail(message: str, offset: int) -> ChallengeSyntaxError:
    return ChallengeSyntaxError(f"invalid WWW-Authenticate value at offset {offset}: {message}")


def _unquote(body: str) -> str:
    """The value of a quoted-string whose body ``_QUOTED_BODY`` matched: each quoted-pair undone."""
    if "\\" not in body:
        return body
    # re.sub(r"\\(.)", ...) would build a match object per quoted-pair, about a microsecond each:
    # a run of them cost 0.4-0.8 ms per KiB. These three passes run in C. Read left to right, a
    # run of backslashes pairs up from its start, exactly as str.replace finds "\\\\"; so once the
    # escaped backslashes are set aside, every backslash left escapes the character after it. NUL
    # holds their place because a body that _QUOTED_BODY matched cannot contain one.
    return body.replace("\\\\", "\x00").replace("\\", "").replace("\x00", "\\")


def _params(found: list[tuple[str, ...]], offset: int) -> dict[str, str]:
    if len(found) > MAX_PARAMS:
        raise _fail(f"more than {MAX_PARAMS} auth-params in one challenge", offset)
    params: dict[str, str] = {}
    for name, token, quoted in found:
        key = name.lower()
        if key in params:
            raise _fail(f"parameter {key!r} appears twice in one challenge", offset)
        # An empty token group means the value was the quoted-string, which may itself be "".
        params[key] = token if token else _unquote(quoted)
    return params


def _parse_one(value: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    pos, end = 0, len(value)
    while pos < end:
        match = _CHALLENGE.match(value, pos)
        if match is None:
            start = end - len(value[pos:].lstrip(" \t,"))  # past the list separators
            if start == end:
                break
            raise _fail("expected an auth-scheme", start)
        after = match.end()
        if value.startswith("=", after):
            where = "before any auth-scheme" if not challenges else "malformed, or after a token68"
            raise _fail(f"auth-param {where}", match.start("scheme"))
        if len(challenges) == MAX_CHALLENGES:
            raise _fail(f"more than {MAX_CHALLENGES} challenges", match.start("scheme"))
        if challenges and "," not in match["sep"]:
            raise _fail("missing comma before this element", match.start("scheme"))
        params = match.span("params")
        found: list[tuple[str, ...]] = []  # (name, token, quoted-string body)
        if params[0] >= 0:
            # At most MAX_PARAMS + 1 are split out: enough for _params to refuse a header with
            # more, without a tuple for each of the thousands that 64 KiB of "a=b," can carry.
            split = islice(_PARAM_FIELDS.finditer(value, *params), MAX_PARAMS + 1)
            found = [param.groups("") for param in split]
        challenges.append(Challenge(match["scheme"], _params(found, params[0]), match["token68"]))
        pos = after
    return challenges


def parse_challenges(header_value: str | bytes | Iterable[str | bytes]) -> list[Challenge]:
    """Parse a whole ``WWW-Authenticate`` field value into its challenges (RFC 9110 §11.6.1).

    Accepts one field value or a list of them (several ``WWW-Authenticate`` lines, RFC 9110
    §5.3). ``bytes`` are decoded as ISO-8859-1, the historical field-value charset. An empty
    value yields no challenges. Anything malformed raises :class:`ChallengeSyntaxError`; nothing
    else is ever raised, and the time taken is linear in the input.
    """
    if isinstance(header_value, (str, bytes, bytearray)):
        values: Iterable[object] = (header_value,)
    elif isinstance(header_value, Iterable) and not isinstance(header_value, Mapping):
        values = header_value
    else:
        raise ChallengeSyntaxError(f"expected a str or a list of str, not {type(header_value).__name__}")
    challenges: list[Challenge] = []
    for value in values:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        elif not isinstance(value, str):
            raise ChallengeSyntaxError(f"expected a str field value, not {type(value).__name__}")
        challenges.extend(_parse_one(value))
    return challenges


def _quote(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"challenge parameter {name!r} must be a string, not {type(value).__name__}")
    if _EMITTABLE.fullmatch(value) is None:
        raise ValueError(
            f"challenge parameter {name!r} contains CR, LF, NUL, another control character or non-ASCII"
        )
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_challenge(challenge: Challenge) -> str:
    """Serialize a :class:`Challenge`, quoting every parameter value (RFC 9110 §11.2)."""
    if _TOKEN_RE.fullmatch(challenge.scheme) is None:
        raise ValueError(f"auth-scheme {challenge.scheme[:32]!r} is not an RFC 9110 token")
    if challenge.token68 is not None:
        if challenge.params:
            raise ValueError("a challenge has either a token68 or auth-params, not both")
        if _TOKEN68_RE.fullmatch(challenge.token68) is None:
            raise ValueError("token68 contains characters outside RFC 9110 §11.2")
        return f"{challenge.scheme} {challenge.token68}"
    parts = []
    for name, value in challenge.params.items():
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"auth-param name {name[:32]!r} is not an RFC 9110 token")
        parts.append(f"{name}={_quote(name, value)}")
    return f"{challenge.scheme} {', '.join(parts)}" if parts else challenge.scheme


def bearer_challenge(
    *,
    realm: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    scope: str | Iterable[str] | None = None,
    resource_metadata: str | None = None,
    **extra: str | int,
) -> str:
    """Build one ``Bearer`` challenge (RFC 6750 §3) as a ``WWW-Authenticate`` field value.

    Parameters come out in the order ``realm, error, error_description, scope,
    resource_metadata`` (RFC 9728 §5.1), then ``extra`` (e.g. RFC 9470's ``acr_values``,
    ``max_age``). Every value is a quoted-string with ``"`` and ``\\`` escaped; CR, LF, NUL,
    other controls and non-ASCII raise ``ValueError`` instead of reaching the wire. ``scope``
    is a scope string (validated, kept as given) or a collection of scope tokens (sorted).
    """
    params: dict[str, str] = {}
    if realm is not None:
        params["realm"] = realm
    if error is not None:
        if not isinstance(error, str) or _ERROR_CODE.fullmatch(error) is None:
            raise ValueError("error must be an RFC 6750 §3 error code")
        params["error"] = error
    if error_description is not None:
        params["error_description"] = error_description
    if scope is not None:
        if isinstance(scope, str):
            parse_scope(scope)
            params["scope"] = scope
        else:
            params["scope"] = format_scope(scope)
    if resource_metadata is not None:
        params["resource_metadata"] = resource_metadata
    for name, value in extra.items():
        if name.lower() in params:
            raise ValueError(f"challenge parameter {name!r} given twice")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"challenge parameter {name!r} must be a string or an integer")
        params[name.lower()] = str(value)
    return format_challenge(Challenge("Bearer", params))


def dpop_challenge(
    *,
    algs: Iterable[str],
    realm: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    scope: str | Iterable[str] | None = None,
    resource_metadata: str | None = None,
    **extra: str | int,
) -> str:
    """Build one ``DPoP`` challenge (RFC 9449 §7.1): the parameters of :func:`bearer_challenge`
    (the error codes include ``invalid_dpop_proof`` and ``use_dpop_nonce``, §7.1 and §9), then
    ``extra`` (RFC 9470's ``acr_values`` and ``max_age``, whose §3 challenge RFC 9449 §7.1 lets
    the DPoP scheme carry), then ``algs``, the space-delimited JWS algorithms the server accepts
    for proofs."""
    names = list(algs) if not isinstance(algs, str) else [algs]
    if not names or not all(isinstance(n, str) and _TOKEN_RE.fullmatch(n) for n in names):
        raise ValueError("algs must name one or more JWS algorithms")
    bearer = bearer_challenge(
        realm=realm,
        error=error,
        error_description=error_description,
        scope=scope,
        resource_metadata=resource_metadata,
        **extra,
        algs=" ".join(names),
    )
    return "DPoP" + bearer[len("Bearer") :]
