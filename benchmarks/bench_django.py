"""What does protecting a DRF view cost, next to the bare view and next to django-oauth-toolkit?

Requests are WSGI calls on Django's own handler (``WSGIHandler``, the whole Django and DRF stack
in process, no sockets) with a prebuilt environ, as ``bench_hot_path.py`` makes them for Flask,
and with its helpers. In the same run, in an order shuffled round by round so machine noise hits
every case alike:

* a bare DRF ``APIView`` (no authentication, no permission: the reference);
* the same with an authentication class and a permission class that do nothing: what DRF
  itself charges for running any (``AllowAny``);
* the same view under ``BearerTokenAuthentication`` + ``ScopeMapPermission``, with a warm token
  (the same token again) and with a new ES256 token every request (full verification);
* django-oauth-toolkit's ``OAuth2Authentication`` + ``TokenMatchesOASRequirements`` on the same
  view, its token in its own SQLite tables (a query per request, on a persistent connection);
* the floor: one bare ``cryptography`` ECDSA P-256 verification of a token's signature.

Printed: each case's cost, its ratio to the bare view (the median of per-round ratios), and for
the cold case the extra over bare divided by the verification floor of the same round. Targets:
warm ≤ 1.05x the bare view; cold ES256 extra ≤ 1.5x the floor.

    python benchmarks/bench_django.py            # about a minute
    python benchmarks/bench_django.py --quick    # a smoke run, numbers not meaningful

Then, where the extra goes inside real requests (``--attribution-only`` prints just that): the
same WSGI calls with ``perf_counter_ns`` checkpoints around this library's two classes and, inside
them, around the shared guard's steps (the credential lookup or verification; membership, grant
and decision) and the telemetry observer's ``begin``/``end``; what the classes spend outside
those is the Django adapter's own work. The checkpoints' own cost, calibrated in the same run, is
taken off each enclosing figure.

Needs the ``bench`` extra (django-oauth-toolkit; DRF comes with the ``django`` extra).
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import django
from apps import ROLES, SCOPES, fresh_tokens, membership, same_token
from bench_hot_path import caller, measure, verification_floor
from django.conf import settings

from resource_server import JWTVerifier
from tests.support import AUDIENCE, ISSUER, es256, jwks

PATH = "/orgs/acme/projects"
DOT_TOKEN = "dot-benchmark-token-0123456789abcdef"  # an opaque token, as DOT issues them

BARE = "DRF: bare APIView (the reference)"
IDLE = "DRF: an authentication and a permission class that do nothing"
WARM = "DRF: BearerTokenAuthentication + ScopeMapPermission, warm"
COLD = "DRF: BearerTokenAuthentication + ScopeMapPermission, cold ES256"
DOT = "DRF: DOT OAuth2Authentication + TokenMatchesOASRequirements"
FLOOR = "floor: ECDSA P-256 verification"
TARGETS = {WARM: "≤ 1.05", COLD: "≤ 1.5 (extra ÷ floor)"}


def configure(database: Path, verifier: JWTVerifier) -> None:
    """Django for this process only: DRF, django-oauth-toolkit and this library, no middleware
    (every case pays the same handler), JSON rendering only, a SQLite file for DOT's tables."""
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-" + "x" * 50,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        MIDDLEWARE=[],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "oauth2_provider",
            "resource_server.django",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(database),
                # DOT's best case: one connection kept across requests, not one opened per request
                # (Django's default, CONN_MAX_AGE=0, costs it about 0.5 ms more a request here).
                "CONN_MAX_AGE": None,
            }
        },
        RESOURCE_SERVER={"VERIFIER": verifier, "ROLES": ROLES, "MEMBERSHIP": membership},
        REST_FRAMEWORK={
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
        },
        OAUTH2_PROVIDER={"SCOPES": {"project:read": "read projects"}},
        LOGGING_CONFIG=None,
    )
    django.setup()


def urls() -> list[Any]:
    """The same view three times: bare, under this library's classes, under DOT's."""
    from django.urls import path
    from oauth2_provider.contrib.rest_framework import OAuth2Authentication, TokenMatchesOASRequirements
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from resource_server.django.rest_framework import BearerTokenAuthentication, ScopeMapPermission

    class Bare(APIView):
        authentication_classes: ClassVar[list[Any]] = []
        permission_classes: ClassVar[list[Any]] = []

        def get(self, request: Any, org: str) -> Response:
            return Response({"org": org, "projects": []})

    class Nothing(BaseAuthentication):
        def authenticate(self, request: Any) -> None:
            return None

    class Idle(Bare):
        """What DRF itself costs for one authentication class and one permission class."""

        authentication_classes: ClassVar[list[Any]] = [Nothing]
        permission_classes: ClassVar[list[Any]] = [AllowAny]

    class Ours(Bare):
        authentication_classes: ClassVar[list[Any]] = [BearerTokenAuthentication]
        permission_classes: ClassVar[list[Any]] = [ScopeMapPermission]
        scope_map = SCOPES

    class Peer(Bare):
        authentication_classes: ClassVar[list[Any]] = [OAuth2Authentication]
        permission_classes: ClassVar[list[Any]] = [TokenMatchesOASRequirements]
        required_alternate_scopes: ClassVar[dict[str, Any]] = {"GET": [["project:read"]]}

    rule = "orgs/<str:org>/projects"
    return [
        path("bare/" + rule, Bare.as_view()),
        path("idle/" + rule, Idle.as_view()),
        path("rs/" + rule, Ours.as_view()),
        path("dot/" + rule, Peer.as_view()),
    ]


def dot_token() -> None:
    """DOT's tables, migrated, with one user, one application and one access token for user-1
    with project:read, as its token endpoint would have stored them."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("user-1")
    application = Application.objects.create(
        name="bench",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        user=user,
    )
    AccessToken.objects.create(
        user=user,
        application=application,
        token=DOT_TOKEN,
        scope="project:read",
        expires=timezone.now() + datetime.timedelta(days=1),
    )


def constant(token: str) -> Any:
    while True:
        yield token


def ratios(times: list[float], reference: list[float]) -> float:
    return statistics.median(t / b for t, b in zip(times, reference, strict=True))


class Checkpoints:
    """Timing wrappers put on named callables for the attribution, and taken off again: each
    call's ``perf_counter_ns`` span is added to its label's total (and counted)."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        spent, calls, clock = self.spent, self.calls, time.perf_counter_ns
        spent.setdefault(label, 0)
        calls.setdefault(label, 0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += clock() - start
                calls[label] += 1

        return timed

    def patch(self, owner: Any, name: str, label: str) -> None:
        """Replace ``owner.name`` by its timed wrapper until :meth:`undo`."""
        had = name in vars(owner)
        original = vars(owner)[name] if had else getattr(owner, name)
        setattr(owner, name, self.wrap(label, original))
        self._undo.append(lambda: setattr(owner, name, original) if had else delattr(owner, name))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


class _TimedObserver:
    """The guard's observer, its ``begin`` and ``end`` timed (its other methods passed on)."""

    def __init__(self, observer: Any, checkpoints: Checkpoints) -> None:
        self._observer = observer
        self.begin = checkpoints.wrap(OBSERVER, observer.begin)
        self.end = checkpoints.wrap(OBSERVER, observer.end)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observer, name)


AUTHENTICATION = "BearerTokenAuthentication.authenticate"
PERMISSION = "ScopeMapPermission.has_permission"
CREDENTIAL = "guard: the credential (cache lookup; cold: verification)"
DECISION = "guard: membership(), the (org, role) grant, decide()"
OBSERVER = "telemetry: observer.begin() + observer.end()"


def calibrate(calls: int = 200_000) -> float:
    """The nanoseconds one checkpoint adds to the span that encloses it."""

    def nothing() -> None:
        return None

    timed = Checkpoints().wrap("calibration", nothing)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            timed()
        middle = time.perf_counter_ns()
        for _ in range(calls):
            nothing()
        best = min(best, ((middle - start) - (time.perf_counter_ns() - middle)) / calls)
    return best


def attribution(
    handler: Any, es: Any, *, number: int, rounds: int
) -> tuple[list[tuple[str, float, float]], float]:
    """Per request (µs, medians over rounds of ``number`` calls, warm and cold side by side):
    the whole request, bare and protected, and the protected request's extra split between
    DRF and Django around the classes, the classes' own work, the guard's steps and the
    observer. Two checkpoints only (the two classes) time the whole request and the classes;
    the guard's steps and the observer are timed in rounds of their own, so their checkpoints
    never inflate the classes' figure. Each checkpoint's cost (calibrated) is taken off the
    spans that enclose it."""
    from resource_server.django.conf import get_resource_server
    from resource_server.django.rest_framework import BearerTokenAuthentication, ScopeMapPermission

    guard = get_resource_server().guard
    observer = guard.observer
    overhead = calibrate()
    calls = {
        "bare": caller(handler, "/bare" + PATH, same_token(es)),
        "warm": caller(handler, "/rs" + PATH, same_token(es)),
        "cold": caller(handler, "/rs" + PATH, fresh_tokens(es, 2 * number * rounds + 10)),
    }
    blocks = ["bare", "warm classes", "warm steps", "cold classes", "cold steps"]
    spans: dict[str, list[dict[str, float]]] = {block: [] for block in blocks}
    for one in calls.values():
        one()
    for index in range(rounds):
        order = blocks[:]
        random.Random(index).shuffle(order)
        for block in order:
            checkpoints = Checkpoints()
            if block.endswith("classes"):
                checkpoints.patch(BearerTokenAuthentication, "authenticate", AUTHENTICATION)
                checkpoints.patch(ScopeMapPermission, "has_permission", PERMISSION)
            elif block.endswith("steps"):
                checkpoints.patch(guard, "credential", CREDENTIAL)
                for name in ("membership", "grant", "decision"):
                    checkpoints.patch(guard, name, DECISION)
                guard.observer = _TimedObserver(observer, checkpoints)
            one = calls[block.split()[0]]
            try:
                start = time.perf_counter_ns()
                for _ in range(number):
                    one()
                whole = time.perf_counter_ns() - start
            finally:
                checkpoints.undo()
                guard.observer = observer
            spent = sum(checkpoints.spent.values()) - sum(checkpoints.calls.values()) * overhead
            per = 1e3 * number
            found = {label: value / per for label, value in checkpoints.spent.items()}
            found[WHOLE] = (whole - sum(checkpoints.calls.values()) * overhead) / per
            found[CLASSES] = spent / per
            spans[block].append(found)
    return _rows(spans), overhead


WHOLE = "the whole request, protected"
EXTRA = "the extra over bare"
OUTSIDE = "  outside the two classes: what DRF and Django do more"
CLASSES = "  inside the two classes"
OWN = "    the adapter's own work (facts, request attributes, user, org, route)"


def _rows(spans: dict[str, list[dict[str, float]]]) -> list[tuple[str, float, float]]:
    """The attribution's rows: medians over rounds; differences paired within a round."""

    def median(block: str, value: Callable[[dict[str, float], int], float]) -> float:
        return statistics.median(value(found, index) for index, found in enumerate(spans[block]))

    def bare(index: int) -> float:
        return spans["bare"][index][WHOLE]

    reference = median("bare", lambda f, i: f[WHOLE])
    table: list[tuple[str, float, float]] = [("the whole request, bare APIView", reference, reference)]
    labels: list[tuple[str, Callable[[str], float]]] = [
        (WHOLE, lambda case: median(case + " classes", lambda f, i: f[WHOLE])),
        (EXTRA, lambda case: median(case + " classes", lambda f, i: f[WHOLE] - bare(i))),
        (OUTSIDE, lambda case: median(case + " classes", lambda f, i: f[WHOLE] - bare(i) - f[CLASSES])),
        (CLASSES, lambda case: median(case + " classes", lambda f, i: f[CLASSES])),
        (
            OWN,
            lambda case: median(
                case + " classes",
                lambda f, i: f[CLASSES] - spans[case + " steps"][i][CLASSES],
            ),
        ),
    ]
    labels += [
        ("    " + step, lambda case, step=step: median(case + " steps", lambda f, i: f.get(step, 0.0)))
        for step in (CREDENTIAL, DECISION, OBSERVER)
    ]
    for label, value in labels:
        table.append((label, value("warm"), value("cold")))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few calls only (smoke test)")
    parser.add_argument("--attribution-only", action="store_true", help="only where the extra goes")
    args = parser.parse_args()
    number, rounds = (20, 2) if args.quick else (200, 51)
    spans = (20, 2) if args.quick else (200, 21)
    needed = number * rounds + 10
    es = es256()
    with tempfile.TemporaryDirectory(prefix="bench-django-") as directory:
        configure(
            Path(directory) / "dot.sqlite3", JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es))
        )
        global urlpatterns
        urlpatterns = urls()
        dot_token()
        from django.core.handlers.wsgi import WSGIHandler

        handler = WSGIHandler()
        cases: dict[str, Callable[[], None]] = {
            BARE: caller(handler, "/bare" + PATH, same_token(es)),
            IDLE: caller(handler, "/idle" + PATH, same_token(es)),
            WARM: caller(handler, "/rs" + PATH, same_token(es)),
            COLD: caller(handler, "/rs" + PATH, fresh_tokens(es, needed)),
            DOT: caller(handler, "/dot" + PATH, constant(DOT_TOKEN)),
            FLOOR: verification_floor(es),
        }
        for one in cases.values():  # warm-up: imports, first-request set-up, the warm token's entry
            one()
        started = time.perf_counter()
        samples = {} if args.attribution_only else measure(cases, number=number, rounds=rounds)
        spent = time.perf_counter() - started
        rows, overhead = attribution(handler, es, number=spans[0], rounds=spans[1])
        from django.db import connections

        connections.close_all()
    if samples:
        report(samples, rounds, number, spent)
    print(
        f"\nWhere the extra goes, µs per request (medians of {spans[1]} interleaved rounds of "
        f"{spans[0]} calls; each checkpoint's {overhead:.0f} ns taken off the spans around it):"
    )
    print(f"{'':<72} {'warm':>8} {'cold ES256':>11}")
    for label, warm, cold in rows:
        print(f"{label:<72} {warm:>8.1f} {cold:>11.1f}")


def report(samples: dict[str, list[float]], rounds: int, number: int, spent: float) -> None:
    """The table of the interleaved cases: costs, ratios, the targets."""
    print(
        f"Django {django.get_version()}, {rounds} rounds of {number} calls in {spent:.0f} s; "
        "ratios are medians of per-round ratios"
    )
    print(f"{'case':<64} {'µs/call':>9} {'÷ bare':>8} {'extra ÷ floor':>14} {'target':>22}")
    bare, floor = samples[BARE], samples[FLOOR]
    for name, times in samples.items():
        ratio = "" if name == FLOOR else f"{ratios(times, bare):>7.3f}x"
        over = ""
        if name == COLD:
            extra = statistics.median((t - b) / f for t, b, f in zip(times, bare, floor, strict=True))
            over = f"{extra:>13.2f}x"
        target = TARGETS.get(name, "")
        print(f"{name:<64} {statistics.median(times) * 1e6:>9.1f} {ratio:>8} {over:>14} {target:>22}")
    print(
        f"\nours (warm) ÷ DRF's own cost of the two classes: {ratios(samples[WARM], samples[IDLE]):.3f}x; "
        f"DOT ÷ ours (warm): {ratios(samples[DOT], samples[WARM]):.3f}x; "
        f"DOT ÷ ours (cold ES256): {ratios(samples[DOT], samples[COLD]):.3f}x"
    )


urlpatterns: list[Any] = []

if __name__ == "__main__":
    main()
