"""Security mutants: break one security check at a time in a scratch copy of the repository, run
the tests that should notice, and report which faults the tests kill and which survive.

A surviving mutant is a check no test protects: the code may be right today, but a refactor
could break it unnoticed. Each mutant below is a small, hand-written fault in a real security
check (the org binding, the algorithm taken from the key, DPoP's replay check, ...), the kind a
careless edit would make. Check a security change the same way: add mutants for the checks it
adds, run them, and add a test for each survivor.

Not run in CI (a run takes minutes). Run it with the Python that has the test dependencies::

    python tools/mutants.py                   # every mutant against its own test selection
    python tools/mutants.py --list            # the mutants, with their files
    python tools/mutants.py --check           # only check that every snippet is still there
    python tools/mutants.py dpop-proof-cap introspection-aud-substring   # some, by name
    python tools/mutants.py --full            # each mutant against the whole suite (-x): slow

The working tree is copied (tracked files and untracked ones not ignored, uncommitted changes
included) into a temporary directory; the repository itself is never modified. Each mutant
replaces one exact snippet of one file with another. When the code moves and a snippet is no
longer found exactly once, the tool stops before running anything and names the mutants to
update: edit ``original`` (and ``replacement``) in :data:`MUTANTS` to match the new code. The
tests name behaviour, not lines, so they stay as they are.

Exit status: 0 when every mutant is killed, 1 when one survives, 2 when the list is out of date
or the suite fails without any mutant.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    """One fault: ``original`` (exactly once in ``path``) replaced by ``replacement``."""

    name: str
    path: str
    original: str
    replacement: str
    description: str
    tests: tuple[str, ...]  # the pytest selection expected to kill it


ADVERSARIAL = "tests/adversarial"
STEP_UP_AUTHENTICATION = "tests/resource_server/test_client_step_up_authentication.py"
ASGI = "tests/resource_server/test_asgi.py"
DPOP_TESTS = ("tests/adversarial/test_hostile_proofs.py", "tests/resource_server/test_dpop_guard.py")
JWT_TESTS = ("tests/resource_server/test_tokens.py", "tests/adversarial/test_hostile_tokens.py")
INTROSPECTION = (
    "tests/resource_server/test_introspection.py",
    "tests/adversarial/test_hostile_introspection_answers.py",
)
LIMITS = "tests/adversarial/test_signature_and_size_limits.py"

MUTANTS: tuple[Mutant, ...] = (
    # -- the nine that once survived the whole suite (issue 25) -------------------------------------
    Mutant(
        "asgi-header-first",
        "resource_server/asgi_http.py",
        '    return ", ".join(value.decode("latin-1") for value in values)',
        '    return values[0].decode("latin-1")',
        "ASGI header(): keep only the first of repeated lines (two DPoP proofs seen as one)",
        ("tests/adversarial/test_repeated_headers.py",),
    ),
    Mutant(
        "introspection-aud-substring",
        "resource_server/tokens/introspection.py",
        "        return aud == audience",
        "        return audience in aud",
        "introspection: a string aud containing ours is accepted (https://api.test.evil.example)",
        INTROSPECTION,
    ),
    Mutant(
        "keys-ecdsa-length",
        "resource_server/tokens/jwk.py",
        "        if len(signature) != 2 * half:\n            return False\n",
        "",
        "ECDSA: no length check on R || S (a zero byte before S still verifies)",
        (LIMITS, "tests/resource_server/test_keys.py"),
    ),
    Mutant(
        "introspection-decode-content",
        "resource_server/tokens/introspection.py",
        "                decode_content=False,",
        "                decode_content=True,",
        "introspection: a gzip-encoded answer is inflated (a decompression bomb)",
        INTROSPECTION,
    ),
    Mutant(
        "dpop-proof-cap",
        "resource_server/dpop_jws.py",
        '    if len(proof) > MAX_PROOF_BYTES:\n        raise InvalidDPoPProof("the DPoP proof is too large")\n',
        "",
        "DPoP: no 4 KiB cap on a proof",
        (*DPOP_TESTS, LIMITS),
    ),
    Mutant(
        "introspection-unbounded-read",
        "resource_server/tokens/introspection.py",
        '            data = response.read(MAX_RESPONSE_BYTES + 1) if wanted else b""',
        '            data = response.read() if wanted else b""',
        "introspection: the whole answer is read before its size is checked (64 MiB in memory)",
        INTROSPECTION,
    ),
    Mutant(
        "async-proof-on-loop",
        "resource_server/async_guard.py",
        "            if cached.jkt is None or not self._proof_waits:",
        "            if True:",
        "AsyncGuard: a cached DPoP token's proof is checked on the event loop even with Redis",
        ("tests/resource_server/test_slow_replay_store.py", "tests/resource_server/test_async_guard.py"),
    ),
    Mutant(
        "async-new-token-waits-on-loop",
        "resource_server/async_guard.py",
        "                return verify(authorization, token_elsewhere, dpop, wait=False)",
        "                return verify(authorization, token_elsewhere, dpop, wait=True)",
        "AsyncGuard: a new token whose keys must be fetched is verified on the event loop",
        ("tests/resource_server/test_async_guard.py",),
    ),
    Mutant(
        "keys-stale-set-answers-now",
        "resource_server/tokens/keys.py",
        "        if fetched is None or not within(self._clock(), fetched.at, fetched.max_age):\n"
        '            raise WouldWait("the key set must be fetched")',
        '        if fetched is None:\n            raise WouldWait("the key set must be fetched")',
        "RemoteKeySet: a stale set answers without waiting, so its refresh never happens off the loop",
        ("tests/resource_server/test_async_guard.py",),
    ),
    Mutant(
        "issuers-size-cap",
        "resource_server/tokens/issuers.py",
        '        if len(token) > self.max_token_bytes:\n            raise InvalidToken("the token is too large")\n',
        "",
        "TrustedIssuers: an oversized JWS is decoded and routed before any size check",
        (LIMITS, "tests/resource_server/test_issuers.py"),
    ),
    Mutant(
        "client-refused-nonce",
        "resource_server/client/step_up.py",
        "                    if self.nonce_retried or fresh is None or fresh == sent_nonce:",
        "                    if self.nonce_retried or fresh is None:",
        "client: a request refused with the nonce it carried is retried with that same nonce",
        ("tests/resource_server/test_client_refused_nonce.py", "tests/resource_server/test_client_dpop.py"),
    ),
    # The JWT side of the audience fault: no test caught it either, before the audience tests.
    Mutant(
        "jwt-aud-substring",
        "resource_server/tokens/jwt.py",
        "            accepted = aud in self.audiences",
        "            accepted = any(audience in aud for audience in self.audiences)",
        "JWT: a string aud containing ours is accepted",
        (*JWT_TESTS, "tests/adversarial/test_hostile_introspection_answers.py"),
    ),
    # -- checks the suite already protected (kept, so that a refactor is checked too) -----------------
    Mutant(
        "asgi-authorization-first",
        "resource_server/asgi_http.py",
        '            authorization = text if authorization is None else f"{authorization}, {text}"',
        "            authorization = text if authorization is None else authorization",
        "ASGI: of two Authorization lines only the first is seen",
        (ASGI, "tests/adversarial/test_repeated_headers.py"),
    ),
    Mutant(
        "policy-org-binding",
        "policy/access.py",
        "    if token_org is not None and request_org is not None and token_org != request_org:",
        "    if False:",
        "policy: a token bound to one org is accepted on another org's URL",
        ("tests/policy/test_access.py", ASGI),
    ),
    Mutant(
        "guard-org-mismatch-401",
        "resource_server/guard.py",
        "            refused = self.refusals.invalid_token(\n"
        '                "the token is bound to a different organization", dpop=dpop, reason=str(exc)\n'
        "            )",
        '            refused = self.refusals.forbidden("the token is bound to a different organization", "forbidden")',
        "guard: another org's token is a 403 (no token could help) instead of 401 invalid_token",
        (ASGI, "tests/resource_server/test_flask.py"),
    ),
    Mutant(
        "jwt-alg-from-header",
        "resource_server/tokens/jwt.py",
        '        if alg != key.algorithm:\n            raise InvalidToken("the token algorithm does not match its key")\n',
        "",
        "JWT: the header's alg need not be the key's algorithm",
        JWT_TESTS,
    ),
    Mutant(
        "jwt-typ",
        "resource_server/tokens/jwt.py",
        "            if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:",
        "            if False:",
        "JWT: typ is not checked (an ID token passes as an access token, RFC 9068 §4)",
        JWT_TESTS,
    ),
    Mutant(
        "jwt-exp",
        "resource_server/tokens/jwt.py",
        "        if now >= exp + self.leeway:",
        "        if False:",
        "JWT: an expired token is accepted",
        JWT_TESTS,
    ),
    Mutant(
        "jwt-iss",
        "resource_server/tokens/jwt.py",
        '        if claims.get("iss") != self.issuer:  # exact, case-sensitive (RFC 7519 §4.1.1)',
        "        if False:",
        "JWT: any issuer is accepted",
        JWT_TESTS,
    ),
    Mutant(
        "keys-refuse-secrets",
        "resource_server/tokens/jwk.py",
        '    refuse_secrets(jwk)\n    kid = jwk.get("kid")',
        '    kid = jwk.get("kid")',
        "keys: a JWK holding private or symmetric key material is loaded",
        ("tests/resource_server/test_keys.py",),
    ),
    Mutant(
        "dpop-typ",
        "resource_server/dpop.py",
        '        if header.get("typ") != "dpop+jwt":',
        "        if False:",
        "DPoP: typ is not checked (an access token's JWS passes as a proof)",
        DPOP_TESTS,
    ),
    Mutant(
        "dpop-replay",
        "resource_server/dpop.py",
        '            seen = replayed(self.replay_cache, f"{jkt}:{jti}", exp)',
        '            seen = replayed(self.replay_cache, f"{jkt}:{jti}", exp) and False',
        "DPoP: a proof may be replayed (jti not recorded)",
        DPOP_TESTS,
    ),
    Mutant(
        "mcp-grant-kept",
        "resource_server/mcp/__init__.py",
        "            GRANTED.reset(granted_token)\n",
        "            pass\n",
        "MCP: the caller's context keeps the request's grant after the call returns",
        ("tests/resource_server/test_mcp.py",),
    ),
    Mutant(
        "dpop-replay-unanswered",
        "resource_server/dpop.py",
        '            seen = replayed(self.replay_cache, f"{jkt}:{jti}", exp)',
        '            seen = self.replay_cache.seen(f"{jkt}:{jti}", exp)',
        "DPoP: a replay cache that fails (its clock, say) is a 500 and keeps the key's place",
        ("tests/adversarial/test_hostile_dpop_fast_paths.py", *DPOP_TESTS),
    ),
    Mutant(
        "dpop-htm",
        "resource_server/dpop.py",
        "        if not is_method(htm) or htm != method:",
        "        if not is_method(htm):",
        "DPoP: a proof for another method is accepted",
        DPOP_TESTS,
    ),
    Mutant(
        "dpop-ath",
        "resource_server/dpop.py",
        '        if access_token is not None:\n            ath = claims.get("ath")',
        '        if access_token is None:\n            ath = claims.get("ath")',
        "DPoP: a proof not bound to this access token (ath) is accepted",
        DPOP_TESTS,
    ),
    Mutant(
        "dpop-too-old",
        "resource_server/dpop.py",
        "        if iat < now - self.max_age:",
        "        if False:",
        "DPoP: a proof of any age is accepted",
        DPOP_TESTS,
    ),
    Mutant(
        "dpop-private-jwk",
        "resource_server/dpop.py",
        "            refuse_secrets(jwk)\n        except KeySetError:",
        "            pass\n        except KeySetError:",
        "DPoP: a proof whose jwk carries the private key is accepted",
        DPOP_TESTS,
    ),
    Mutant(
        "guard-cnf-jkt",
        "resource_server/dpop.py",
        "        if bound_to is not None and not same_ascii(jkt, bound_to):",
        "        if False:",
        "guard: a proof by a key the token is not bound to (cnf.jkt) is accepted",
        (*DPOP_TESTS, ASGI),
    ),
    Mutant(
        "guard-bearer-downgrade",
        "resource_server/token_check.py",
        '        if scheme == "Bearer" and (jkt is not None or self.dpop_required):',
        '        if scheme == "Bearer" and self.dpop_required:',
        "guard: a DPoP-bound token is accepted as a bearer token, with no proof",
        (*DPOP_TESTS, ASGI),
    ),
    Mutant(
        "guard-token-elsewhere",
        "resource_server/token_check.py",
        "        if token_elsewhere:",
        "        if False:",
        "guard: a token also sent in the query or a form body is not refused (RFC 6750 §2)",
        (ASGI, "tests/resource_server/test_wsgi.py"),
    ),
    Mutant(
        "introspection-active-true",
        "resource_server/tokens/introspection.py",
        '            if not isinstance(claims.get("active"), bool):',
        '            if "active" not in claims:',
        'introspection: "active": "true" or 1 is taken for an answer (and then for active or not)',
        INTROSPECTION,
    ),
    # -- the loose ends of issue 19's fixes --------------------------------------------------------
    Mutant(
        "denials-description-raw",
        "resource_server/denials.py",
        "        description = _challenge_description(error_description) if error_description is not None else None",
        "        description = error_description",
        "refusals: a verifier's description reaches the challenge as it is (non-ASCII: a 500)",
        ("tests/adversarial/test_hostile_descriptions.py",),
    ),
    Mutant(
        "client-nonce-any",
        "resource_server/client/step_up.py",
        "            if dpop_nonce is not None and _NONCE.fullmatch(dpop_nonce):",
        "            if dpop_nonce:",
        "client: a DPoP-Nonce of any characters and length is kept and signed into later proofs",
        ("tests/resource_server/test_client_refused_nonce.py",),
    ),
    Mutant(
        "client-step-up-authentication-twice",
        "resource_server/client/step_up.py",
        "            if self.authentication is not None:\n                return None\n",
        "",
        "client: a 401 insufficient_user_authentication after a new sign-in sends the person to sign in again",
        (STEP_UP_AUTHENTICATION,),
    ),
    Mutant(
        "client-step-up-authentication-kwargs",
        "resource_server/client/step_up.py",
        'self.authenticates = _names_keywords(token_provider, ("acr_values", "max_age"))',
        'self.authenticates = _names_keywords(token_provider, ("acr_values", "max_age"), or_var_keyword=True)',
        "client: a **kwargs provider written before acr_values is given them (and may raise)",
        (STEP_UP_AUTHENTICATION,),
    ),
    Mutant(
        "client-acr-values-any",
        "resource_server/client/challenges.py",
        "    if acr_values is not None and _ACR_VALUES.fullmatch(acr_values) is None:\n        return None\n",
        "",
        "client: acr_values of any characters and size are passed on to the authorization request",
        (STEP_UP_AUTHENTICATION,),
    ),
    Mutant(
        "client-max-age-unbounded",
        "resource_server/client/challenges.py",
        " or int(max_age) > MAX_AGE_LIMIT",
        "",
        "client: a max_age past a signed 32-bit integer is passed on to the authorization request",
        (STEP_UP_AUTHENTICATION,),
    ),
    Mutant(
        "client-rsa-key-any",
        "resource_server/client/dpop_key.py",
        "        problem = rsa_key_problem(key.public_key().public_numbers())",
        "        problem = None",
        "DPoPKey: an RSA key the resource server refuses (its exponent, its size) is loaded",
        ("tests/resource_server/test_client_dpop.py",),
    ),
    Mutant(
        "jwt-key-before-payload",
        "resource_server/tokens/jwt.py",
        '        claims = decoded_object(payload, "payload", kept=False)\n        key = self._key_for(checked, claims.get("iat"), wait)\n',
        '        key = self._key_for(checked, None, wait)\n        claims = decoded_object(payload, "payload", kept=False)\n',
        "JWT: the key is looked up before the payload is parsed (a malformed token is a 503)",
        ("tests/resource_server/test_keys.py",),
    ),
    Mutant(
        "grants-unreachable-500",
        "resource_server/grants.py",
        "    except _UNAVAILABLE as exc:",
        "    except _UNAVAILABLE[:0] as exc:",
        "grants: a database that cannot answer is a 500, not a 503",
        ("tests/resource_server/test_flask_agents.py",),
    ),
    Mutant(
        "replay-cache-full",
        "resource_server/state.py",
        "            if len(self._expiry) >= self.max_entries:",
        "            if False:",
        "MemoryReplayCache: never full (unbounded memory) instead of a 503",
        ("tests/resource_server/test_viewer_context.py", "tests/resource_server/test_dpop_guard.py"),
    ),
)


# -- running them ----------------------------------------------------------------------------------


def check_snippets(root: Path, mutants: list[Mutant]) -> list[str]:
    """The problems with the list: each original must be found exactly once in its file, and
    each test path must exist."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        if not path.is_file():
            problems.append(f"{mutant.name}: {mutant.path} does not exist")
            continue
        if mutant.replacement == mutant.original:
            problems.append(f"{mutant.name}: its replacement is its original")
        found = path.read_text(encoding="utf-8").count(mutant.original)
        if found != 1:
            problems.append(f"{mutant.name}: its snippet is found {found} times in {mutant.path}")
        for test in mutant.tests:
            if not (root / test.split("::")[0]).exists():
                problems.append(f"{mutant.name}: its test path {test} does not exist")
    names = [m.name for m in mutants]
    problems += [
        f"{name}: two mutants have this name" for name in sorted({n for n in names if names.count(n) > 1})
    ]
    return problems


def scratch_copy(root: Path) -> Path:
    """The working tree's files (tracked, and untracked ones not ignored) in a new temporary
    directory: what ``git status`` shows, uncommitted edits included."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    target = Path(tempfile.mkdtemp(prefix="mutants-"))
    for name in filter(None, listed.split("\0")):
        source = root / name
        if "__pycache__" in source.parts or not source.is_file():  # deleted, or a compiled leftover
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return target


def environment(copy: Path) -> dict[str, str]:
    """The copy first on the import path; no bytecode written (a mutant and its revert can have
    the same size and modification second, and a stale .pyc would be used)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def pytest(copy: Path, selection: list[str], timeout: float) -> tuple[str, float]:
    """Run ``selection`` in the copy: ("passed" | "failed" | "error" | "timeout", seconds)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*command, *selection],
            cwd=copy,
            env=environment(copy),
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    if done.returncode in (4, 5):  # a path that does not exist, or no tests collected
        raise SystemExit(
            f"pytest could not run {selection}: fix the mutant's tests\n{done.stdout.decode()[-2000:]}"
        )
    # 1: a test failed; 2 and 3: collection or internal errors (a mutant that breaks an import).
    outcome = {0: "passed", 1: "failed"}.get(done.returncode, "error")
    return outcome, time.monotonic() - started


def imports_the_copy(copy: Path) -> bool:
    code = "import policy, resource_server; print(resource_server.__file__, policy.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=environment(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return all(Path(p).resolve().is_relative_to(copy.resolve()) for p in out.split())


VERDICT = {"failed": "killed", "error": "killed (error)", "timeout": "killed (timeout)", "passed": "SURVIVED"}


def run(mutants: list[Mutant], *, full: bool, timeout: float, keep: bool) -> int:
    copy = scratch_copy(ROOT)
    try:
        if not imports_the_copy(copy):
            print("the scratch copy is not what Python imports: is the package installed non-editable?")
            return 2
        union = ["tests"] if full else sorted({t for m in mutants for t in m.tests})
        baseline, seconds = pytest(copy, union, timeout * 4)
        print(f"baseline ({len(union)} test paths, no mutant): {baseline} in {seconds:.0f} s", flush=True)
        if baseline != "passed":
            print("the tests fail without any mutant: fix that first")
            return 2
        rows = []
        for mutant in mutants:
            path = copy / mutant.path
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(mutant.original, mutant.replacement, 1), encoding="utf-8")
            try:
                outcome, seconds = pytest(copy, ["tests"] if full else list(mutant.tests), timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            rows.append((mutant, VERDICT[outcome], seconds))
            print(f"{mutant.name}: {VERDICT[outcome]} ({seconds:.0f} s)", flush=True)
    finally:
        if keep:
            print(f"scratch copy kept at {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)
    print()
    print("| mutant | file | result | seconds | fault |")
    print("|---|---|---|---|---|")
    for mutant, verdict, seconds in rows:
        print(f"| {mutant.name} | {mutant.path} | {verdict} | {seconds:.0f} | {mutant.description} |")
    survivors = [m.name for m, verdict, _ in rows if verdict == "SURVIVED"]
    print(
        f"\n{len(rows) - len(survivors)} of {len(rows)} killed"
        + (f"; survived: {', '.join(survivors)}" if survivors else "")
    )
    return 1 if survivors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="run only these mutants (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that every snippet is found once")
    parser.add_argument("--full", action="store_true", help="run the whole suite (-x) against each mutant")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant run (default 600)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    options = parser.parse_args(argv)

    known = {m.name: m for m in MUTANTS}
    unknown = [name for name in options.names if name not in known]
    if unknown:
        parser.error(f"unknown mutants: {', '.join(unknown)} (see --list)")
    chosen = [known[name] for name in options.names] or list(MUTANTS)
    if options.list:
        for mutant in chosen:
            print(f"{mutant.name:30} {mutant.path:42} {mutant.description}")
        return 0
    problems = check_snippets(ROOT, chosen)
    if problems:
        print("The code has moved; update these entries of MUTANTS in tools/mutants.py:")
        print("\n".join(f"  {problem}" for problem in problems))
        return 2
    if options.check:
        print(f"all {len(chosen)} snippets found exactly once")
        return 0
    return run(chosen, full=options.full, timeout=options.timeout, keep=options.keep)


if __name__ == "__main__":
    sys.exit(main())
