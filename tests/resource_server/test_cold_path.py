"""What the cold path (a token new to the guard) leaves out when nothing would read it."""

from __future__ import annotations

import threading

import pytest
from opentelemetry import trace

from policy import Roles, ScopeMap
from resource_server.guard import Denial, Granted, Guard
from resource_server.telemetry import spans
from resource_server.telemetry.metrics import MAX_SERIES, OVERFLOW, Tally
from resource_server.tokens import JWTVerifier
from resource_server.tokens.payload import PayloadClaims
from tests.otel import recording
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

SIGNER = es256("cold-path")
ROLES = Roles({"member": ["project:read"]})
SCOPE_MAP = ScopeMap({"GET": "project:read"})


def test_no_span_is_made_when_no_tracer_would_record_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API's no-op spans cost some 7 µs per new token, a tenth of an ECDSA check, for nothing.
    monkeypatch.setattr(spans, "_tracer", None)
    monkeypatch.setattr(spans, "_api", None)
    monkeypatch.setattr(spans, "_loaded", False)
    spans.use(trace.NoOpTracerProvider())
    with spans.span("resource_server.token.verify") as current:
        assert current is None
    assert not trace.get_current_span().get_span_context().is_valid


def _guard(clock: FakeClock) -> tuple[Guard, JWTVerifier]:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock)
    return Guard(verifier=verifier, roles=ROLES, membership=lambda subject, org: "member"), verifier


def _authorize(guard: Guard, header: str) -> Granted | Denial:
    return guard.authorize(
        authorization=header, token_elsewhere=False, method="GET", scope_map=SCOPE_MAP, org="acme"
    )


def test_a_verified_token_is_kept_once_by_the_guard_not_twice() -> None:
    """The guard keeps what it verified under the Authorization value; the verifier's own cache
    (keyed by the token's SHA-256) would hold the same token a second time."""
    guard, verifier = _guard(FakeClock(NOW))
    assert type(_authorize(guard, f"Bearer {SIGNER.token(now=NOW)}")) is Granted
    assert len(guard._credentials) == 1
    assert len(verifier._cache) == 0


@pytest.mark.parametrize("spelling", ["bearer {token}", "BEARER  {token}", " Bearer {token}\t"])
def test_another_spelling_is_parsed_then_answered_from_the_one_entry(spelling: str) -> None:
    clock = FakeClock(NOW)
    guard, _ = _guard(clock)
    raw = SIGNER.token(now=NOW)
    assert type(_authorize(guard, spelling.format(token=raw))) is Granted
    assert list(guard._credentials._entries) == [f"Bearer {raw}"]  # kept canonically, once
    assert type(_authorize(guard, f"Bearer {raw}")) is Granted
    assert type(_authorize(guard, spelling.format(token=raw))) is Granted
    assert len(guard._credentials) == 1
    # From its exp on the cache answers for no spelling: the token is verified again (the
    # verifier's leeway still accepts it for 30 s) and not kept; past the leeway, refused.
    clock.now = SIGNER.claims(NOW)["exp"]
    assert type(_authorize(guard, spelling.format(token=raw))) is Granted
    assert len(guard._credentials) == 0
    clock.advance(30)
    assert type(_authorize(guard, spelling.format(token=raw))) is Denial
    assert type(_authorize(guard, f"Bearer {raw}")) is Denial


def test_cached_tokens_keep_their_claims_as_json_and_share_what_tokens_repeat() -> None:
    """A cached token keeps its payload's JSON, not the parsed claims (about three times the
    size), and one object for what many tokens repeat: the scope set, org, client and issuer."""
    guard, verifier = _guard(FakeClock(NOW))
    first, second = (_authorize(guard, f"Bearer {SIGNER.token(now=NOW)}") for _ in range(2))
    assert type(first) is Granted and type(second) is Granted
    assert first.token is not None and second.token is not None
    a, b = first.token, second.token
    assert isinstance(a.claims, PayloadClaims) and a.claims._parsed is None
    assert a.scopes is b.scopes and a.org is b.org and a.client_id is b.client_id
    assert a.issuer is b.issuer is verifier.issuer
    # Read, the claims are parsed (strictly, as when verified), kept, and read the same.
    assert a.claims["iss"] == ISSUER and a.claims["aud"] == AUDIENCE and a.claims["sub"] == a.subject
    assert a.claims._parsed is not None and a.claims == dict(a.claims)
    assert a.claims["jti"] != b.claims["jti"]
    assert all(x is y for x, y in zip(sorted(a.claims), sorted(b.claims), strict=True))


def test_a_tally_counts_exactly_while_threads_add_and_readers_read() -> None:
    """The per-request counters take no lock (a locked update cost as much as the guard's warm
    path): every step is counted once, and reading never adds to a count."""
    tally = Tally("result")
    per_thread = 20_000

    def add() -> None:
        for _ in range(per_thread):
            tally.add(("success",))

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        tally.snapshot()
    for thread in threads:
        thread.join()
    assert tally.snapshot() == [(4 * per_thread, {"result": "success"})]
    assert tally.snapshot() == [(4 * per_thread, {"result": "success"})]
    assert tally.total(result="success") == 4 * per_thread


def test_a_tally_folds_series_past_its_limit_into_the_overflow() -> None:
    tally = Tally("route")
    for n in range(MAX_SERIES + 5):
        tally.add((f"/r{n}",))
    tally.add(("/r0",))
    counts = {tuple(attributes.items()): count for count, attributes in tally.snapshot()}
    assert counts[(("route", "/r0"),)] == 2
    assert counts[((OVERFLOW, True),)] == 5
    assert len(counts) == MAX_SERIES + 1


def test_the_guard_counts_reach_the_meter_provider_and_reading_changes_none() -> None:
    with recording() as recorded:
        guard, _ = _guard(FakeClock(NOW))
        header = f"Bearer {SIGNER.token(now=NOW)}"
        for _ in range(3):
            assert type(_authorize(guard, header)) is Granted
        for _ in range(2):  # a second collection reports the same cumulative counts
            assert recorded.points("resource_server.token_cache.hits") == {frozenset(): 2}
            assert recorded.points("resource_server.token_cache.misses") == {frozenset(): 1}
            (attempts,) = recorded.points("resource_server.authorization.attempts").values()
            assert attempts == 3


def test_nothing_is_counted_while_no_meter_provider_is_set_and_everything_once_one_is() -> None:
    """The API's global provider is a proxy until the application sets one: its instruments drop
    every point, so the guard counts nothing for them; from the moment a provider is set the
    same instruments record, and so does the guard."""
    from opentelemetry.metrics._internal import _ProxyMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from resource_server import telemetry

    proxy = _ProxyMeterProvider()
    telemetry.configure(meter_provider=proxy)
    try:
        guard, _ = _guard(FakeClock(NOW))
        header = f"Bearer {SIGNER.token(now=NOW)}"
        assert guard.observer.begin(header, False) is None
        for _ in range(2):
            assert type(_authorize(guard, header)) is Granted
        found = telemetry.metrics.current()
        assert found is not None and not found.live()
        assert found.attempts.total() == 0 and found.cache_hits.total() == 0
        reader = InMemoryMetricReader()
        proxy.on_set_meter_provider(MeterProvider(metric_readers=[reader]))
        assert found.live()
        assert type(_authorize(guard, header)) is Granted
        assert found.attempts.total() == 1 and found.cache_hits.total() == 1
        names = {
            metric.name: metric
            for resource in reader.get_metrics_data().resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }
        (point,) = names["resource_server.authorization.attempts"].data.data_points
        assert point.value == 1
    finally:
        telemetry.configure()
