"""What does protecting a Flask view cost, next to the bare view and next to Authlib?

Requests go through Flask's test client (the whole WSGI stack in process, no sockets), to the same
view under four set-ups, interleaved round by round so that machine noise hits them alike:

* bare: no protection at all;
* ``@rs.require`` warm: the same token on every request (the verified-token cache answers);
* ``@rs.require`` cold: a new ES256 (and RS256) token on every request (full verification);
* Authlib's ``ResourceProtector`` with its RFC 9068 ``JWTBearerTokenValidator``.

Ratios to the bare view are printed; absolute times are given for orientation only.

    python benchmarks/bench_flask.py            # about 30 s
    python benchmarks/bench_flask.py --quick    # a smoke run, numbers not meaningful
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps
from apps import fresh_tokens, same_token

from tests.support import AUDIENCE, ISSUER, Signer, es256, jwks, rs256

URL = "/orgs/acme/projects"


def build_app(signers: tuple[Signer, ...]) -> Flask:
    """The benchmarks' shared app (``apps.flask_app``): the same view bare, under
    ``@rs.require`` and under Authlib."""
    return apps.flask_app(jwks(*signers), issuer=ISSUER, audience=AUDIENCE)


def requester(app: Flask, prefix: str, tokens: Iterator[str]) -> Callable[[], None]:
    """One GET through the test client. Every set-up, the bare view included, receives the same
    kind of ``Authorization`` header, so only what is done with it is measured."""
    client = app.test_client()
    url = prefix + URL

    def one() -> None:
        response = client.get(url, headers={"Authorization": f"Bearer {next(tokens)}"})
        if response.status_code != 200:
            raise RuntimeError(f"{prefix}: {response.status_code} {response.get_data(as_text=True)}")

    return one


def measure(cases: dict[str, Callable[[], None]], *, number: int, rounds: int) -> dict[str, float]:
    """Median over interleaved rounds of the mean seconds per request."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, one in cases.items():
            start = time.perf_counter()
            for _ in range(number):
                one()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few requests only (smoke test)")
    args = parser.parse_args()
    number, rounds = (20, 2) if args.quick else (400, 15)
    needed = number * rounds + 10

    es, rs = es256(), rs256()
    app = build_app((es, rs))
    cases = {
        "bare view": requester(app, "/bare", same_token(es)),
        "@rs.require, warm (same token)": requester(app, "/rs", same_token(es)),
        "@rs.require, cold ES256 (new token each time)": requester(app, "/rs", fresh_tokens(es, needed)),
        "@rs.require, cold RS256 (new token each time)": requester(app, "/rs", fresh_tokens(rs, needed)),
        "Authlib ResourceProtector, RFC 9068, ES256": requester(app, "/authlib", same_token(es)),
    }
    for one in cases.values():  # warm-up: imports, first-request set-up, the warm token's cache entry
        one()
    results = measure(cases, number=number, rounds=rounds)
    bare = results["bare view"]
    print(f"{'set-up':<48} {'per request':>12} {'ratio to bare':>14}")
    for name, seconds in results.items():
        print(f"{name:<48} {seconds * 1e6:>10.1f}µs {seconds / bare:>13.2f}x")


if __name__ == "__main__":
    main()
