"""The hot path against its floor: what a protected request costs over the bare view, next to the
cryptography it cannot avoid.

Requests are WSGI calls on ``app.wsgi_app`` (and on a ``BearerMiddleware``), with a prebuilt
environ, so neither a test client nor a socket dilutes the ratio. In the same run, interleaved
round by round so machine noise hits every case alike:

* the bare Flask view and the bare WSGI app (the references);
* ``@rs.require`` and the middleware with a warm token (the same token again);
* with a new ES256 and a new RS256 token every request (full verification);
* ``@rs.require`` with a delegated token (RFC 8693, one ``act`` level, under an actor ceiling)
  warm and cold, and warm on a route asking for ``acr``/``max_age`` (RFC 9470); the same two
  warm cases through the middleware, whose sub-microsecond bare app shows what they add;
* ``@rs.require`` warm and cold (ES256) with telemetry: the OpenTelemetry SDK's providers and an
  in-memory metric reader attached; the same with the audit hook on for every request (every
  allowed request sampled); and warm as without ``opentelemetry-api`` (the state the library is
  in when the import fails), each case switching the telemetry before its loop;
* Authlib's ``ResourceProtector`` (RFC 9068) on the same view;
* the floors: one bare ``cryptography`` ECDSA P-256 verification and one RSA-2048 (PKCS#1 v1.5,
  SHA-256) verification of a token's signing input.

Printed: each case's cost, its ratio to its bare reference, and for cold cases the extra over
bare divided by the verification floor of the same algorithm (ES256, RS256, EdDSA); the warm
delegated and step-up cases against the warm bearer case (their ratios divided, round by
round, and through the middleware the µs they add); every target of the hot path beside its value in this run, met or not, with the count of
strictness tests that hold the line; and where a cold request's time goes, measured inside real
requests through Flask, the WSGI and the ASGI middleware (``bench_cold_attribution.py``); and the
async adapters' targets (``bench_asgi_hot_path.py``).

Then, in a fresh interpreter whose import system refuses ``opentelemetry``, the bare view and the
warm case again (``--no-otel-api``): the warm extra with the API really absent.

    python benchmarks/bench_hot_path.py            # about a minute
    python benchmarks/bench_hot_path.py --quick    # a smoke run, numbers not meaningful
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from flask import Flask
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps
import urllib3
from apps import fresh_tokens, same_token
from jwt.utils import der_to_raw_signature, raw_to_der_signature

from resource_server.client import DPoPKey
from resource_server.tokens import JWTVerifier
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, Signer, eddsa, es256, jwks, rs256

PATH = "/orgs/acme/projects"
#: A Flask view that checks the request's token signature and nothing else (``apps.floor_view``):
#: the floor, inside a Flask request.
FLASK_FLOOR = "Flask: the token's ECDSA check only, cold ES256"
#: ``BearerMiddleware`` in front of the same Flask app, reaching its bare view.
FRONTED_WARM = "Flask: BearerMiddleware in front, warm"
FRONTED_COLD = "Flask: BearerMiddleware in front, cold ES256"
#: The introspection app's bare view after one pooled POST to the endpoint, and nothing else.
INTROSPECTION_FLOOR = "Introspection app: one POST inside the view"
# The same roles, membership and scope map as the shared app's.
ROLES, SCOPES, membership = apps.ROLES, apps.SCOPES, apps.membership


@dataclass(frozen=True)
class Telemetry:
    """What the library records with, as :func:`resource_server.telemetry.configure` leaves it,
    kept so that a case can switch to it before its loop (outside the timing) without making
    new instruments or hook threads each round."""

    metrics: Any
    tracer: Any
    api: Any
    hook: Any
    sampler: Any

    @classmethod
    def current(cls) -> Telemetry:
        from resource_server.telemetry import audit, metrics, spans

        return cls(metrics.current(), spans._current_tracer(), spans._api, audit._hook, audit.sampler)

    def apply(self) -> None:
        from resource_server.telemetry import audit, metrics, spans

        metrics.active, metrics._loaded = self.metrics, True
        spans._tracer, spans._api, spans._loaded = self.tracer, self.api, True
        audit._hook, audit.sampler = self.hook, self.sampler


def telemetry_states() -> dict[str, Telemetry]:
    """The default (the API's global providers: no SDK, so no-op instruments), the SDK with a
    metric reader, the SDK and an audit hook given every request, and no API at all."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from resource_server import telemetry
    from resource_server.telemetry import audit

    telemetry.configure()
    default = Telemetry.current()
    telemetry.configure(
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        tracer_provider=TracerProvider(),
    )
    sdk = Telemetry.current()
    hooked = Telemetry(
        sdk.metrics, sdk.tracer, sdk.api, audit.HookQueue(lambda event: None), audit.Sampler(1)
    )
    absent = Telemetry(None, None, None, None, audit.Sampler(0))
    telemetry.configure()
    return {"default": default, "sdk": sdk, "hooked": hooked, "absent": absent}


def verifier(signers: tuple[Signer, ...]) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(*signers))


def flask_app(signers: tuple[Signer, ...]) -> Flask:
    """The benchmarks' shared app (``apps.flask_app``), trusting these signers."""
    return apps.flask_app(jwks(*signers), issuer=ISSUER, audience=AUDIENCE)


def plain_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = b'{"projects": []}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def middleware(signers: tuple[Signer, ...]) -> BearerMiddleware:
    return BearerMiddleware(
        plain_app,
        verifier=verifier(signers),
        roles=ROLES,
        membership=membership,
        # The delegated and step-up cases: the actor ceiling (consulted for delegated tokens
        # only) and a route asking for a recent second factor.
        actors=apps.ACTORS,
        routes={"/orgs/<org>/projects": SCOPES, "/step-up/orgs/<org>/projects": apps.STEP_UP},
    )


def caller(app: Callable[..., Any], path: str, tokens: Iterator[str]) -> Callable[[], None]:
    """One GET as a WSGI server makes it. Every case, the bare ones included, receives an
    ``Authorization`` header, so only what is done with it is measured."""
    base = EnvironBuilder(path=path, headers={"Authorization": "Bearer x"}).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = dict(base)
        environ["HTTP_AUTHORIZATION"] = f"Bearer {next(tokens)}"
        environ["wsgi.input"] = io.BytesIO()
        result = app(environ, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if statuses.pop() != "200 OK":
            raise RuntimeError(f"{path}: refused")

    return one


def dpop_caller(app: Callable[..., Any], path: str, token: str, proofs: Iterator[str]) -> Callable[[], None]:
    """One GET with ``Authorization: DPoP <token>`` and a new proof each time (a new ``jti``)."""
    base = EnvironBuilder(path=path, headers={"Authorization": f"DPoP {token}"}).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    def one() -> None:
        environ = dict(base)
        environ["HTTP_DPOP"] = next(proofs)
        environ["wsgi.input"] = io.BytesIO()
        for _ in app(environ, start_response):
            pass
        if statuses.pop() != "200 OK":
            raise RuntimeError(f"{path}: refused")

    return one


def dpop_cases(es: Signer, needed: int) -> dict[str, Callable[[], None]]:
    """A DPoP-bound token (warm in the cache) with a fresh ES256 proof per request, next to the
    bare view of the same app."""
    key = DPoPKey.generate("ES256")
    app = apps.dpop_flask_app(jwks(es), issuer=ISSUER, audience=AUDIENCE).wsgi_app
    token = es.token(now=int(time.time()), cnf={"jkt": key.jkt})
    url = "http://localhost/rs" + PATH
    proofs = iter([key.proof("GET", url, access_token=token) for _ in range(needed)])
    return {
        "DPoP app: bare view": caller(app, "/bare" + PATH, same_token(es)),
        "DPoP app: @rs.require, warm token, new proof": dpop_caller(app, "/rs" + PATH, token, proofs),
    }


def introspection_cases(endpoint: str, needed: int) -> dict[str, Callable[[], None]]:
    """Opaque tokens: one seen again (the guard's cache), and a new one each request (one
    loopback introspection call each), next to the bare view of the same app."""
    flask = apps.introspection_flask_app(endpoint, audience=AUDIENCE)
    warm = iter(lambda: "opaque-warm-token", None)
    fresh = iter([f"opaque-{n:012d}" for n in range(needed)])
    pool = urllib3.PoolManager(maxsize=4)

    def round_trip() -> None:
        """The floor: one bare POST to the same endpoint over a pooled connection."""
        pool.request("POST", endpoint, body=b"token=x&token_type_hint=access_token").data  # noqa: B018

    def posting(org: str) -> dict[str, Any]:
        """The bare view after the same POST: the floor inside a Flask request."""
        round_trip()
        return {"org": org, "projects": []}

    flask.add_url_rule("/post/orgs/<org>/projects", "post", posting)
    app = flask.wsgi_app
    return {
        "floor: one loopback POST to the endpoint": round_trip,
        INTROSPECTION_FLOOR: caller(app, "/post" + PATH, warm),
        "Introspection app: bare view": caller(app, "/bare" + PATH, warm),
        "Introspection app: @rs.require, warm": caller(app, "/rs" + PATH, warm),
        "Introspection app: @rs.require, cold (one call)": caller(app, "/rs" + PATH, fresh),
    }


def verification_floor(signer: Signer) -> Callable[[], None]:
    """One bare ``cryptography`` verification of a token's signature: the cost nothing can avoid."""
    token = signer.token(now=int(time.time()))
    signing_input, _, signature_b64 = token.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    data = signing_input.encode()
    public = signer.private_key.public_key()
    if signer.algorithm == "ES256":
        der = raw_to_der_signature(signature, ec.SECP256R1())
        assert der_to_raw_signature(der, ec.SECP256R1()) == signature
        return lambda: public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    if signer.algorithm == "EdDSA":
        return lambda: public.verify(signature, data)
    return lambda: public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def measure(
    cases: dict[str, Callable[[], None]],
    *,
    number: int,
    rounds: int,
    setup: Callable[[str], None] = lambda name: None,
) -> dict[str, list[float]]:
    """Seconds per call of each case, one sample per round. Within a round the cases run in an
    order shuffled by the round's number (fixed seeds, so every run shuffles alike), so neither
    drift nor a fixed order favours any of them; ratios are then taken within each round.
    ``setup(name)`` runs before each case's loop, untimed."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for number_of_round in range(rounds):
        order = names[:]
        random.Random(number_of_round).shuffle(order)
        for name in order:
            one = cases[name]
            setup(name)
            start = time.perf_counter()
            for _ in range(number):
                one()
            samples[name].append((time.perf_counter() - start) / number)
    return samples


def best_of(one: Callable[[], object], number: int, repeat: int = 7) -> float:
    """The best mean seconds per call over ``repeat`` loops of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            one()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def dpop_attribution(number: int) -> list[tuple[str, float]]:
    """Where a DPoP request's time goes beyond the warm bearer path, each stage in a loop."""
    from resource_server.credentials import request_url
    from resource_server.dpop import DPoPVerifier

    key = DPoPKey.generate("ES256")
    url = "http://localhost/rs" + PATH
    proofs = iter([key.proof("GET", url, access_token="token") for _ in range(number * 8 + 8)])
    verifier = DPoPVerifier()
    verifier.verify(next(proofs), method="GET", url=url, access_token="token")  # the key, parsed once
    environ = EnvironBuilder(path="/rs" + PATH).get_environ()
    signed = next(proofs)
    signing_input, _, signature = signed.rpartition(".")
    from resource_server.tokens.jws import b64decode

    checked = verifier._headers[signed.split(".")[0]][1]
    raw = b64decode(signature)
    return [
        (
            "the whole proof check (new jti each)",
            best_of(
                lambda: verifier.verify(next(proofs), method="GET", url=url, access_token="token"), number
            ),
        ),
        ("its signature check", best_of(lambda: checked.verify(signing_input.encode(), raw), number)),
        ("the request URL for htu", best_of(lambda: request_url(environ), number * 10)),
    ]


def memory_per_entry(count: int = 4096) -> float:
    """Bytes each verified token costs in the guard's and the verifier's caches together: the
    growth in traced memory after ``count`` distinct tokens, over ``count``."""
    import gc
    import tracemalloc

    from policy import ScopeMap
    from resource_server.guard import Guard

    signer = es256("memory")
    guard = Guard(verifier=verifier((signer,)), roles=ROLES, membership=membership, cache_size=count)
    scope_map = ScopeMap(SCOPES)
    tokens = [signer.token(now=int(time.time())) for _ in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for token in tokens:
        # The header as a server builds it, while tracing: a cache that keeps it is charged for it.
        header = "Bearer " + token
        guard.authorize(
            authorization=header, token_elsewhere=False, method="GET", scope_map=scope_map, org="acme"
        )
    del header, token
    tokens.clear()  # what stays is what the caches keep (the header text included)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


#: Each telemetry case's state (:func:`telemetry_states`); every other case runs with the default
#: (the API without an SDK, as an app that installs the extra but no SDK). The middleware's
#: cases carry the headline figures: its bare app costs under a microsecond, so a microsecond
#: added is not lost in a Flask request's noise.
TELEMETRY_CASES = {
    "WSGI: BearerMiddleware, warm, no otel API": "absent",
    "WSGI: BearerMiddleware, warm, SDK metrics": "sdk",
    "WSGI: BearerMiddleware, warm, SDK + audit hook": "hooked",
    "WSGI: BearerMiddleware, cold ES256, SDK metrics": "sdk",
    "WSGI: BearerMiddleware, cold ES256, SDK + hook": "hooked",
    "Flask: @rs.require, warm, no otel API": "absent",
    "Flask: @rs.require, warm, SDK metrics": "sdk",
    "Flask: @rs.require, warm, SDK + audit hook": "hooked",
}


def telemetry_cases(
    app: Callable[..., Any], wrapped: Callable[..., Any], es: Signer, needed: int
) -> dict[str, Callable[[], None]]:
    """The Flask and middleware cases again with telemetry recording (:data:`TELEMETRY_CASES`)."""
    cases = {}
    for name in TELEMETRY_CASES:
        tokens = fresh_tokens(es, needed) if "cold" in name else same_token(es)
        flask = name.startswith("Flask")
        cases[name] = caller(app if flask else wrapped, ("/rs" if flask else "") + PATH, tokens)
    return cases


def warm_only(number: int, rounds: int) -> None:
    """``--no-otel-api``: the bare references and the warm cases, in this interpreter where
    ``opentelemetry`` cannot be imported; prints the warm extras (µs): middleware, Flask."""
    es = es256()
    app, wrapped = flask_app((es,)).wsgi_app, middleware((es,))
    cases = {
        "Flask: bare view": caller(app, "/bare" + PATH, same_token(es)),
        "Flask: @rs.require, warm": caller(app, "/rs" + PATH, same_token(es)),
        "WSGI: bare app": caller(plain_app, PATH, same_token(es)),
        "WSGI: BearerMiddleware, warm": caller(wrapped, PATH, same_token(es)),
    }
    for one in cases.values():
        one()
    samples = measure(cases, number=number, rounds=rounds)
    assert not [name for name in sys.modules if name.startswith("opentelemetry")]

    def extra(case: str, bare: str) -> float:
        return statistics.median(c - b for c, b in zip(samples[case], samples[bare], strict=True)) * 1e6

    print(
        f"{extra('WSGI: BearerMiddleware, warm', 'WSGI: bare app'):.3f} "
        f"{extra('Flask: @rs.require, warm', 'Flask: bare view'):.3f}"
    )


#: Run in a fresh interpreter: refuse every ``opentelemetry`` module (as if it were not
#: installed), then run this script as ``__main__`` with the arguments after ``-c``.
WITHOUT_OPENTELEMETRY = """
import os, runpy, sys
from importlib.abc import MetaPathFinder

class NoOpenTelemetry(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as running the script does: apps.py beside it
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def without_api(quick: bool) -> tuple[float, float]:
    """The warm extras (µs: middleware, Flask) measured by :func:`warm_only` in a fresh
    interpreter without the API."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_OPENTELEMETRY,
            __file__,
            "--no-otel-api",
            *(["--quick"] if quick else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    middleware_extra, flask_extra = done.stdout.split()[-2:]
    return float(middleware_extra), float(flask_extra)


def print_flask_context(samples: dict[str, list[float]]) -> None:
    """The Flask targets beside the same work in the same place: the bare signature check inside
    a Flask request, and the middleware's guard in front of the same Flask app, cold and warm."""

    def median_of(values: Iterator[float]) -> float:
        return statistics.median(values)

    bare, floor = samples["Flask: bare view"], samples["floor: ECDSA P-256 verification"]

    def over_floor(name: str) -> float:
        return median_of((t - b) / f for t, b, f in zip(samples[name], bare, floor, strict=True))

    def extra(name: str, reference: list[float]) -> float:
        return median_of((t - b) * 1e6 for t, b in zip(samples[name], reference, strict=True))

    print("\nthe Flask targets beside the same work in a Flask request (extra over the bare view):")
    print(
        f"  the bare ECDSA check of each new token, inside the view: {over_floor(FLASK_FLOOR):.2f}x the floor"
    )
    for name in ("Flask: @rs.require, cold ES256", FRONTED_COLD, "WSGI: BearerMiddleware, cold ES256"):
        reference = samples["WSGI: bare app"] if name.startswith("WSGI") else bare
        value = median_of((t - b) / f for t, b, f in zip(samples[name], reference, floor, strict=True))
        print(f"  {name}: {value:.2f}x the floor")
    post, bare_view = (
        samples["floor: one loopback POST to the endpoint"],
        samples["Introspection app: bare view"],
    )
    for name in (INTROSPECTION_FLOOR, "Introspection app: @rs.require, cold (one call)"):
        value = median_of((t - b) / p for t, b, p in zip(samples[name], bare_view, post, strict=True))
        print(f"  {name}: {value:.2f}x the POST")
    print(
        f"  warm extra: @rs.require {extra('Flask: @rs.require, warm', bare):.2f} µs, "
        f"the middleware in front of Flask {extra(FRONTED_WARM, bare):.2f} µs, "
        f"the middleware alone {extra('WSGI: BearerMiddleware, warm', samples['WSGI: bare app']):.2f} µs"
    )


def print_telemetry(samples: dict[str, list[float]], quick: bool) -> None:
    """What telemetry adds to a request: medians of per-round differences (µs). Warm cases are
    compared with the warm case as without the API; cold ones with the same cold case under the
    default telemetry (the API, no SDK)."""

    def growth(name: str, reference: str) -> float:
        return statistics.median(t - r for t, r in zip(samples[name], samples[reference], strict=True)) * 1e6

    print("\ntelemetry, added per request (µs; medians of per-round differences):")
    for app, bare in (
        ("WSGI: BearerMiddleware", "WSGI: bare app"),
        ("Flask: @rs.require", "Flask: bare view"),
    ):
        absent = f"{app}, warm, no otel API"
        print(f"  {app}: warm extra over bare without the API {growth(absent, bare):.2f}; it grows by")
        for name, label in (
            (f"{app}, warm", "the API, no SDK (no-op providers)"),
            (f"{app}, warm, SDK metrics", "the SDK, a metric reader attached"),
            (f"{app}, warm, SDK + audit hook", "the SDK and the audit hook given every request"),
        ):
            print(f"    {growth(name, absent):>7.2f}  {label}")
        for suffix in ("SDK metrics", "SDK + hook"):
            name = f"{app}, cold ES256, {suffix}"
            if name in samples:
                print(
                    f"    {growth(name, f'{app}, cold ES256'):>7.2f}  cold ES256, {suffix}, over cold ES256"
                )
    middleware_extra, flask_extra = without_api(quick)
    print(
        "  in an interpreter that cannot import opentelemetry, warm extra over bare: "
        f"middleware {middleware_extra:.2f}, Flask {flask_extra:.2f}"
    )


def reference_of(name: str) -> str:
    """The bare case a case is divided by: the same app's bare view."""
    app = name.split(":")[0]
    return {"WSGI": "WSGI: bare app", "DPoP app": "DPoP app: bare view"}.get(
        app, "Introspection app: bare view" if app == "Introspection app" else "Flask: bare view"
    )


def floor_of(name: str) -> str | None:
    """The physical floor a case's extra is compared with: the signature it must verify, or the
    round trip it must make; None for warm cases, which have none."""
    if name.startswith("DPoP app: @"):
        return "floor: ECDSA P-256 verification"  # the proof's signature
    if name == INTROSPECTION_FLOOR or (name.startswith("Introspection app: @") and "cold" in name):
        return "floor: one loopback POST to the endpoint"
    if "cold ES256" in name:
        return "floor: ECDSA P-256 verification"
    if "cold RS256" in name:
        return "floor: RSA-2048 verification"
    if "cold EdDSA" in name:
        return "floor: Ed25519 verification"
    return None


def strictness_tests() -> int:
    """How many hostile-input tests guard the strictness these figures must not trade away:
    the tests under tests/adversarial, and the DPoP proof and guard-cache tests."""
    root = Path(__file__).resolve().parents[1] / "tests"
    files = [
        *sorted((root / "adversarial").glob("test_*.py")),
        root / "resource_server" / "test_dpop_guard.py",
        root / "resource_server" / "test_guard_cache.py",
        root / "resource_server" / "test_cold_path.py",
    ]
    return sum(f.read_text(encoding="utf-8").count("\ndef test_") for f in files if f.exists())


def targets(samples: dict[str, list[float]], memory: float) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target of the hot path, from this run's samples."""

    def median(values: Iterator[float]) -> float:
        return statistics.median(values)

    def per_round(name: str) -> list[float]:
        return samples[name]

    ecdsa = per_round("floor: ECDSA P-256 verification")
    rows: list[tuple[str, str, bool]] = []

    def over_floor(name: str, floor: list[float]) -> float:
        bare = per_round(reference_of(name))
        return median((t - b) / f for t, b, f in zip(per_round(name), bare, floor, strict=True))

    for name in ("WSGI: BearerMiddleware, cold ES256", "Flask: @rs.require, cold ES256"):
        value = over_floor(name, ecdsa)
        rows.append((f"{name}: extra ÷ ECDSA floor ≤ 1.5", f"{value:.2f}", value <= 1.5))
    for adapter in ("WSGI: BearerMiddleware", "Flask: @rs.require"):
        for algorithm, floor_name in (
            ("ES256", "floor: ECDSA P-256 verification"),
            ("RS256", "floor: RSA-2048 verification"),
            ("EdDSA", "floor: Ed25519 verification"),
        ):
            name, floor = f"{adapter}, cold {algorithm}", per_round(floor_name)
            bare = per_round(reference_of(name))
            value = median(
                (t - b - f) / e for t, b, f, e in zip(per_round(name), bare, floor, ecdsa, strict=True)
            )
            rows.append((f"{name}: (extra - its floor) ÷ ECDSA floor ≤ 0.5", f"{value:.2f}", value <= 0.5))
    warm = median(
        t / b
        for t, b in zip(per_round("Flask: @rs.require, warm"), per_round("Flask: bare view"), strict=True)
    )
    rows.append(("Flask: @rs.require, warm ÷ bare view ≤ 1.05", f"{warm:.3f}", warm <= 1.05))
    flask_extra = median(
        t - b
        for t, b in zip(per_round("Flask: @rs.require, warm"), per_round("Flask: bare view"), strict=True)
    )
    middleware_extra = median(
        t - b
        for t, b in zip(per_round("WSGI: BearerMiddleware, warm"), per_round("WSGI: bare app"), strict=True)
    )
    rows.append(
        (
            "warm extra, Flask ≤ middleware + 1 µs",
            f"{flask_extra * 1e6:.2f} vs {middleware_extra * 1e6:.2f} µs",
            flask_extra <= middleware_extra + 1e-6,
        )
    )
    dpop = over_floor("DPoP app: @rs.require, warm token, new proof", ecdsa)
    rows.append(("DPoP, warm token + new ES256 proof: extra ÷ ECDSA floor ≤ 1.5", f"{dpop:.2f}", dpop <= 1.5))
    post = "floor: one loopback POST to the endpoint"
    introspection = median(
        (t - b) / p
        for t, b, p in zip(
            per_round("Introspection app: @rs.require, cold (one call)"),
            per_round("Introspection app: bare view"),
            per_round(post),
            strict=True,
        )
    )
    extra = median(
        t - b
        for t, b in zip(
            per_round("Introspection app: @rs.require, cold (one call)"),
            per_round("Introspection app: bare view"),
            strict=True,
        )
    )
    rows.append(
        (
            "introspection, new opaque token: extra ÷ one loopback POST ≤ 1.25",
            f"{introspection:.2f} ({extra * 1e6:.0f} µs over the POST's {median(iter(per_round(post))) * 1e6:.0f})",
            introspection <= 1.25,
        )
    )
    rows.append(
        ("memory per cached token ≤ 1,536 B (header text included)", f"{memory:,.0f} B", memory <= 1536)
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few calls only (smoke test)")
    parser.add_argument("--no-otel-api", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    number, rounds = (20, 2) if args.quick else (200, 51)
    if args.no_otel_api:
        warm_only(number, rounds)
        return
    needed = number * rounds + 10
    es, rs, ed = es256(), rs256(), eddsa()
    signers = (es, rs, ed)
    endpoint = apps.IntrospectionEndpoint(AUDIENCE)
    flask = flask_app(signers)
    flask.add_url_rule("/floor/orgs/<org>/projects", "floor", apps.floor_view(jwks(*signers)))
    app, wrapped = flask.wsgi_app, middleware(signers)
    # The middleware in front of the same Flask app: the guard's code run by the middleware, in
    # a request that goes on into Flask, to compare with @rs.require in the same place.
    fronted = BearerMiddleware(
        app,
        verifier=verifier(signers),
        roles=ROLES,
        membership=membership,
        routes={"/bare/orgs/<org>/projects": SCOPES},
    )
    cases = {
        "Flask: bare view": caller(app, "/bare" + PATH, same_token(es)),
        "Flask: @rs.require, warm": caller(app, "/rs" + PATH, same_token(es)),
        "Flask: @rs.require, cold ES256": caller(app, "/rs" + PATH, fresh_tokens(es, needed)),
        "Flask: @rs.require, cold RS256": caller(app, "/rs" + PATH, fresh_tokens(rs, needed)),
        "Flask: @rs.require, cold EdDSA": caller(app, "/rs" + PATH, fresh_tokens(ed, needed)),
        "Flask: @rs.require, delegated, warm": caller(app, "/rs" + PATH, same_token(es, act=apps.ACT)),
        "Flask: @rs.require, delegated, cold ES256": caller(
            app, "/rs" + PATH, fresh_tokens(es, needed, act=apps.ACT)
        ),
        "Flask: @rs.require, acr/max_age, warm": caller(
            app, "/rs-step-up" + PATH, same_token(es, acr="mfa", auth_time=int(time.time()))
        ),
        **telemetry_cases(app, wrapped, es, needed),
        "Flask: Authlib ResourceProtector, ES256": caller(app, "/authlib" + PATH, same_token(es)),
        FLASK_FLOOR: caller(app, "/floor" + PATH, fresh_tokens(es, needed)),
        FRONTED_WARM: caller(fronted, "/bare" + PATH, same_token(es)),
        FRONTED_COLD: caller(fronted, "/bare" + PATH, fresh_tokens(es, needed)),
        "WSGI: bare app": caller(plain_app, PATH, same_token(es)),
        "WSGI: BearerMiddleware, warm": caller(wrapped, PATH, same_token(es)),
        "WSGI: BearerMiddleware, cold ES256": caller(wrapped, PATH, fresh_tokens(es, needed)),
        "WSGI: BearerMiddleware, delegated, warm": caller(wrapped, PATH, same_token(es, act=apps.ACT)),
        "WSGI: BearerMiddleware, acr/max_age, warm": caller(
            wrapped, "/step-up" + PATH, same_token(es, acr="mfa", auth_time=int(time.time()))
        ),
        "WSGI: BearerMiddleware, cold RS256": caller(wrapped, PATH, fresh_tokens(rs, needed)),
        "WSGI: BearerMiddleware, cold EdDSA": caller(wrapped, PATH, fresh_tokens(ed, needed)),
        **dpop_cases(es, needed),
        **introspection_cases(endpoint.url, needed),
        "floor: ECDSA P-256 verification": verification_floor(es),
        "floor: RSA-2048 verification": verification_floor(rs),
        "floor: Ed25519 verification": verification_floor(ed),
    }
    states = telemetry_states()

    def setup(name: str) -> None:
        states[TELEMETRY_CASES.get(name, "default")].apply()

    for name, one in cases.items():  # warm-up: imports, first-request set-up, the warm token's entry
        setup(name)
        one()
    samples = measure(cases, number=number, rounds=rounds, setup=setup)
    endpoint.close()
    states["default"].apply()
    results = {name: statistics.median(times) for name, times in samples.items()}
    print(f"median of {rounds} rounds of {number} calls; ratios are medians of per-round ratios")
    print(f"{'case':<42} {'µs/call':>9} {'÷ bare':>8} {'extra ÷ floor':>14}")
    for name, times in samples.items():
        bare = samples[reference_of(name)]
        ratio = (
            ""
            if name.startswith("floor")
            else f"{statistics.median(t / b for t, b in zip(times, bare, strict=True)):>7.3f}x"
        )
        over = ""
        if floor_of(name) is not None:
            floor = samples[floor_of(name)]  # type: ignore[index]
            extra = statistics.median((t - b) / f for t, b, f in zip(times, bare, floor, strict=True))
            over = f"{extra:>13.2f}x"
        print(f"{name:<42} {results[name] * 1e6:>9.1f} {ratio:>8} {over:>14}")
    warm = samples["Flask: @rs.require, warm"]
    for name in ("Flask: @rs.require, delegated, warm", "Flask: @rs.require, acr/max_age, warm"):
        relative = statistics.median(t / w for t, w in zip(samples[name], warm, strict=True))
        print(f"  {name.removeprefix('Flask: @rs.require, ')} ÷ the warm bearer case: {relative:.4f}x")
    # The middleware's bare app costs under a microsecond, so what the decision adds shows there.
    warm = samples["WSGI: BearerMiddleware, warm"]
    for name in ("WSGI: BearerMiddleware, delegated, warm", "WSGI: BearerMiddleware, acr/max_age, warm"):
        added = statistics.median(t - w for t, w in zip(samples[name], warm, strict=True))
        print(
            f"  middleware, {name.removeprefix('WSGI: BearerMiddleware, ')}: {added * 1e6:+.2f} µs over the warm bearer case"
        )
    memory = memory_per_entry(512 if args.quick else 4096)
    print(
        f"\ntargets (this run; {strictness_tests()} hostile-token, hostile-proof and cache tests hold the line):"
    )
    for target, measured, met in targets(samples, memory):
        print(f"  {'met    ' if met else 'NOT MET'} {target:<66} {measured}")
    print_flask_context(samples)
    print_telemetry(samples, args.quick)
    print("\nwhere a cold request's time goes, inside real requests (benchmarks/bench_cold_attribution.py):")
    import asyncio

    import bench_cold_attribution

    loop = asyncio.new_event_loop()
    try:
        for signer in (es, rs):
            for line in bench_cold_attribution.report(
                signer, max(number // 2, 20), max(rounds // 5, 2), loop
            ):
                print(f"  {line}")
    finally:
        loop.close()
    print("\nDPoP, each stage alone in a loop (µs):")
    for stage, seconds in dpop_attribution(max(number // 5, 20)):
        print(f"    {stage:<52} {seconds * 1e6:>7.2f}")
    print("\nthe async adapters, direct ASGI calls (benchmarks/bench_asgi_hot_path.py):")
    import bench_asgi_hot_path

    for line in asyncio.run(bench_asgi_hot_path.run(*((10, 2) if args.quick else (100, 21)))):
        print(f"  {line}".rstrip())
    print(
        "\nunder real servers: python benchmarks/bench_load.py (gunicorn: warm ≥ 0.97, cold ES256 ≥ 0.80 "
        "of bare throughput, beside the floor case) and python benchmarks/bench_asgi.py (uvicorn), with wrk"
    )


if __name__ == "__main__":
    main()
