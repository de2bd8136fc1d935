"""WWW-Authenticate: RFC golden cases, the builder, and round trips between them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import Challenge, ChallengeSyntaxError, bearer_challenge, format_challenge, parse_challenges


def one(value: str) -> Challenge:
    (challenge,) = parse_challenges(value)
    return challenge


# --- golden cases from the RFCs -------------------------------------------------------------


def test_rfc6750_section3_examples() -> None:
    assert one('Bearer realm="example"') == Challenge("Bearer", {"realm": "example"})
    challenge = one(
        'Bearer realm="example", error="invalid_token", error_description="The access token expired"'
    )
    assert dict(challenge.params) == {
        "realm": "example",
        "error": "invalid_token",
        "error_description": "The access token expired",
    }


def test_rfc9110_section11_6_1_example_has_two_challenges() -> None:
    value = 'Basic realm="simple", Newauth realm="apps", type=1, title="Login to \\"apps\\""'
    basic, newauth = parse_challenges(value)
    assert basic == Challenge("Basic", {"realm": "simple"})
    assert newauth.scheme == "Newauth"
    assert dict(newauth.params) == {"realm": "apps", "type": "1", "title": 'Login to "apps"'}


def test_rfc7235_order_of_the_same_example() -> None:
    value = 'Newauth realm="apps", type=1,\ttitle="Login to \\"apps\\"", Basic realm="simple"'
    newauth, basic = parse_challenges(value)
    assert newauth.get("title") == 'Login to "apps"' and newauth.get("type") == "1"
    assert basic.get("realm") == "simple"


def test_rfc9470_step_up_examples() -> None:
    challenge = one(
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", acr_values="myACR"'
    )
    assert challenge.get("error") == "insufficient_user_authentication"
    assert challenge.get("acr_values") == "myACR"
    challenge = one(
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required", max_age="5"'
    )
    assert challenge.get("max_age") == "5"


def test_rfc9728_resource_metadata_examples() -> None:
    url = "https://resource.example.com/.well-known/oauth-protected-resource"
    # The RFC folds the line after "="; once unfolded, BWS around "=" remains.
    assert one(f'Bearer resource_metadata= "{url}"').get("resource_metadata") == url
    challenge = one(
        f'Bearer error="invalid_token", error_description="The access token expired", resource_metadata="{url}"'
    )
    assert challenge.get("resource_metadata") == url and challenge.get("error") == "invalid_token"


def test_rfc7616_digest_commas_inside_quoted_strings() -> None:
    value = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    challenge = one(value)
    assert challenge.get("qop") == "auth, auth-int"
    assert challenge.get("algorithm") == "SHA-256"
    assert list(challenge.params) == ["realm", "qop", "algorithm", "nonce", "opaque"]


# --- multi-challenge cases that break common parsers ----------------------------------------


def test_challenges_are_not_merged() -> None:
    # A parser that merges everything into one dict loses the Basic realm or the Bearer error.
    basic, bearer = parse_challenges('Basic realm="files", Bearer realm="api", error="insufficient_scope"')
    assert basic == Challenge("Basic", {"realm": "files"})
    assert bearer == Challenge("Bearer", {"realm": "api", "error": "insufficient_scope"})


def test_bearer_after_dpop_with_a_comma_in_a_quoted_value() -> None:
    value = (
        'DPoP algs="ES256 PS256", error="invalid_token", error_description="bad, very bad", '
        'Bearer error="insufficient_scope", scope="project:write team:write"'
    )
    dpop, bearer = parse_challenges(value)
    assert dpop.get("error_description") == "bad, very bad"
    assert bearer.get("scope") == "project:write team:write"


def test_token68_then_another_challenge() -> None:
    basic, bearer = parse_challenges('Basic YWxhZGRpbjpvcGVuc2VzYW1l==, Bearer scope="a"')
    assert basic.token68 == "YWxhZGRpbjpvcGVuc2VzYW1l==" and not basic.params
    assert bearer.get("scope") == "a"
    assert one("Negotiate a87421000492aa874209af8bc028").token68 == "a87421000492aa874209af8bc028"
    assert one("Basic abc=").token68 == "abc="
    # "realm=" with no value can only be a token68 under RFC 9110's grammar.
    assert one("Bearer realm=").token68 == "realm="


def test_empty_quoted_values() -> None:
    assert one('Bearer realm=""').get("realm") == ""
    first, second = parse_challenges('Basic realm="", Bearer realm="", error=""')
    assert first.get("realm") == "" and second.get("error") == ""


def test_schemes_without_parameters() -> None:
    assert parse_challenges("Bearer") == [Challenge("Bearer")]
    assert parse_challenges("Negotiate, Basic, Bearer") == [
        Challenge("Negotiate"),
        Challenge("Basic"),
        Challenge("Bearer"),
    ]


def test_several_field_lines() -> None:
    lines = ['Basic realm="x"', 'Bearer error="insufficient_scope", scope="a b"', "DPoP algs=ES256"]
    assert [c.scheme for c in parse_challenges(lines)] == ["Basic", "Bearer", "DPoP"]
    assert [c.scheme for c in parse_challenges(tuple(lines))] == ["Basic", "Bearer", "DPoP"]
    assert parse_challenges([]) == []


def test_whitespace_empty_elements_and_case() -> None:
    value = ' , bEaReR   ReAlm = "api"  ,, , ERROR=invalid_token,  basic realm=x , '
    bearer, basic = parse_challenges(value)
    assert bearer.is_scheme("Bearer") and bearer.scheme == "bEaReR"
    assert dict(bearer.params) == {"realm": "api", "error": "invalid_token"}
    assert bearer.get("REALM") == "api"
    assert basic.is_scheme("BASIC") and basic.get("realm") == "x"


def test_empty_value_means_no_challenges() -> None:
    assert parse_challenges("") == []
    assert parse_challenges("  ,  ") == []


def test_quoted_pairs_and_obs_text() -> None:
    assert one(r'Bearer realm="a\\b\"c\d"').get("realm") == 'a\\b"cd'
    assert one(b'Bearer realm="caf\xe9"').get("realm") == "caf\u00e9"  # bytes decode as ISO-8859-1


@pytest.mark.parametrize(
    "value",
    [
        'realm="x"',  # a parameter with no scheme
        "=x",
        'Bearer realm="x" error="y"',  # missing comma between parameters
        'Bearer realm="x',  # unterminated quoted-string
        'Bearer realm="x\\',
        "Bearer a=b, a=c",  # duplicate parameter (RFC 6750 §3: MUST NOT appear more than once)
        "Bearer REALM=b, realm=c",
        "Basic abc==, realm=x",  # token68 and auth-params do not mix
        'Bearer"x"',
        "Basic Bearer x",
        "Bearer realm=x y",
        "Bearer a=b, realm=",
        "Bearer realm=\x00",
        'Bearer realm="a\x00b"',
        'Bearer realm="a\nb"',
        "Bearer\r\n realm=x",
        "Bearer \u0100",
        "Bearer realm=\u00e9",
        "Bearer realm==x",
        "Bearer @",
        '"Bearer"',
        "Bearer ,realm=x, ,error=y z",
    ],
)
def test_malformed_values_raise_challenge_syntax_error(value: str) -> None:
    with pytest.raises(ChallengeSyntaxError):
        parse_challenges(value)


@pytest.mark.parametrize("value", [None, 42, {"Bearer": "x"}, [None], ["Bearer", 3]])
def test_wrong_types_raise_challenge_syntax_error(value: object) -> None:
    with pytest.raises(ChallengeSyntaxError):
        parse_challenges(value)  # type: ignore[arg-type]


def test_challenge_syntax_error_is_a_value_error_with_an_offset() -> None:
    with pytest.raises(ValueError, match="offset 17"):
        parse_challenges('Bearer realm="x" error="y"')


# --- the builder ----------------------------------------------------------------------------


def test_bearer_challenge_plain_and_ordered() -> None:
    assert bearer_challenge() == "Bearer"
    assert bearer_challenge(realm="api") == 'Bearer realm="api"'
    assert (
        bearer_challenge(
            resource_metadata="https://rs.example/.well-known/oauth-protected-resource",
            scope=["b", "a"],
            error_description="Needs more",
            error="insufficient_scope",
            realm="api",
        )
        == 'Bearer realm="api", error="insufficient_scope", error_description="Needs more", scope="a b", '
        'resource_metadata="https://rs.example/.well-known/oauth-protected-resource"'
    )


def test_bearer_challenge_escapes_quotes_and_backslashes() -> None:
    header = bearer_challenge(realm='say "hi" \\ bye', error_description="tab\there")
    assert header == 'Bearer realm="say \\"hi\\" \\\\ bye", error_description="tab\there"'
    assert one(header).get("realm") == 'say "hi" \\ bye'


def test_bearer_challenge_extra_parameters() -> None:
    header = bearer_challenge(error="insufficient_user_authentication", acr_values="myACR", max_age=5)
    assert header == 'Bearer error="insufficient_user_authentication", acr_values="myACR", max_age="5"'


def test_scope_string_is_validated_and_kept() -> None:
    assert bearer_challenge(scope="b a") == 'Bearer scope="b a"'
    with pytest.raises(ValueError):
        bearer_challenge(scope="a\u00a0b")
    with pytest.raises(ValueError):
        bearer_challenge(scope=["a b"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"realm": "a\r\nSet-Cookie: x=y"},
        {"realm": "a\nb"},
        {"realm": "a\x00b"},
        {"error_description": "caf\u00e9"},
        {"error_description": "\x7f"},
        {"realm": "\u2028"},
        {"error": 'bad"code'},
        {"error": ""},
        {"error": 5},
        {"realm": 5},
        {"max_age": True},
        {"max_age": 1.5},
        {"Realm": "dup", "realm": "x"},
    ],
)
def test_bearer_challenge_refuses_what_cannot_go_on_the_wire(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        bearer_challenge(**kwargs)


def test_format_challenge_checks_names() -> None:
    with pytest.raises(ValueError):
        format_challenge(Challenge("Bea rer"))
    with pytest.raises(ValueError):
        format_challenge(Challenge("Bearer", {"bad name": "x"}))
    with pytest.raises(ValueError):
        format_challenge(Challenge("Basic", {"a": "b"}, token68="abc"))
    with pytest.raises(ValueError):
        format_challenge(Challenge("Basic", token68="a b"))
    assert str(Challenge("Basic", token68="abc==")) == "Basic abc=="


def test_challenge_value_semantics() -> None:
    assert Challenge("Bearer", {"REALM": "x"}).params == {"realm": "x"}
    assert hash(Challenge("Bearer", {"realm": "x"})) == hash(Challenge("bearer", {"Realm": "x"}))
    with pytest.raises(TypeError):
        Challenge("Bearer", {"realm": "x"}).params["realm"] = "y"  # type: ignore[index]


# --- round trips ----------------------------------------------------------------------------

# What a quoted-string we emit may hold: HTAB, SP and visible ASCII, quotes and backslashes included.
wire_text = st.text(alphabet=st.sampled_from(["\t"] + [chr(c) for c in range(0x20, 0x7F)]), max_size=30)
scope_token = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\']),
    min_size=1,
    max_size=10,
)
error_code = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\']),
    min_size=1,
    max_size=20,
)
param_name = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda n: n not in {"realm", "error", "error_description", "scope", "resource_metadata"}
)


@given(
    realm=st.none() | wire_text,
    error=st.none() | error_code,
    error_description=st.none() | wire_text,
    scope=st.none() | st.frozensets(scope_token, max_size=5),
    resource_metadata=st.none() | wire_text,
    extra=st.dictionaries(param_name, wire_text, max_size=3),
)
def test_parse_inverts_bearer_challenge(
    realm, error, error_description, scope, resource_metadata, extra
) -> None:
    header = bearer_challenge(
        realm=realm,
        error=error,
        error_description=error_description,
        scope=scope,
        resource_metadata=resource_metadata,
        **extra,
    )
    expected = {
        "realm": realm,
        "error": error,
        "error_description": error_description,
        "scope": None if scope is None else " ".join(sorted(scope)),
        "resource_metadata": resource_metadata,
        **extra,
    }
    assert dict(one(header).params) == {k: v for k, v in expected.items() if v is not None}


scheme = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,9}", fullmatch=True)
challenges = st.builds(
    Challenge,
    scheme,
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True), wire_text, max_size=4),
) | st.builds(
    lambda s, t: Challenge(s, token68=t),
    scheme,
    st.from_regex(r"[A-Za-z0-9._~+/-]{1,20}={0,2}", fullmatch=True),
)


@given(st.lists(challenges, min_size=1, max_size=5), st.sampled_from([", ", ",", " ,  ", "\t,\t, "]))
def test_several_challenges_round_trip_in_one_field(items: list[Challenge], separator: str) -> None:
    assert parse_challenges(separator.join(str(c) for c in items)) == items


@given(st.lists(challenges, min_size=1, max_size=5))
def test_several_challenges_round_trip_across_field_lines(items: list[Challenge]) -> None:
    assert parse_challenges([str(c) for c in items]) == items
