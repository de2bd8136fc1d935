"""Which RSA public keys this package verifies with (RFC 7518 §3.3, §6.3.1): a modulus of 2048
to 8192 bits, an odd public exponent from 3 to 2**32 - 1, and not a weak Infineon key (ROCA).

Used by :func:`resource_server.tokens.keys.load_key` for every RSA key the package loads: those
of a configured or fetched JWK Set and those of DPoP proofs.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["MAX_RSA_BITS", "MIN_RSA_BITS", "rsa_key_problem"]

#: RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used".
MIN_RSA_BITS = 2048
# Verifying costs grow with the modulus (about quadratically) and with the exponent's length
# (one modular squaring per bit): with a 2048-bit key, one check took 23 µs for e = 65537, 72 µs
# for a 32-bit exponent and 2.8 ms for a 2040-bit one (one core), for every token or DPoP proof
# that names the key. 8192 bits is twice the largest size authorization servers and DPoP clients
# use; in practice they use e = 65537 (or 3, long ago), none more than 32 bits (Windows
# CryptoAPI stores it in 32). An even exponent is no RSA key at all (2 divides (p-1)(q-1)).
MAX_RSA_BITS = 8192
_MIN_EXPONENT, _EXPONENT_BOUND = 3, 2**32


def rsa_key_problem(numbers: rsa.RSAPublicNumbers) -> str | None:
    """Why this package does not verify with this RSA public key (a phrase that follows the
    key's name), or None when it does."""
    bits = numbers.n.bit_length()
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        return f"has a {bits}-bit modulus; RSA keys need {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
    e = numbers.e
    if e % 2 == 0 or not _MIN_EXPONENT <= e < _EXPONENT_BOUND:
        even = ", even" if e % 2 == 0 else ""
        return (
            f"has an unusable public exponent ({e.bit_length()} bits{even}); RSA keys need an odd"
            " one from 3 to 2**32 - 1 (65537 is usual)"
        )
    if _has_roca_fingerprint(numbers.n):
        return (
            "is a known-weak Infineon RSA key (ROCA, CVE-2017-15361): its private key can be"
            " computed from the public one; replace it"
        )
    return None


# ROCA (CVE-2017-15361; Nemec et al., "The Return of Coppersmith's Attack", ACM CCS 2017): an
# Infineon library made RSA primes p = k*M + (65537**a mod M), M a primorial, so for each small
# prime r below, both primes, and hence the modulus, are congruent mod r to a power of 65537. A
# modulus outside that subgroup for any r is not such a key; a random modulus lies inside it for
# all of them with negligible probability. This is the "moduli" test of the published detector
# (github.com/crocs-muni/roca, roca/detect.py, has_fingerprint_moduli, MIT), whose bitmasks are
# exactly the subgroups computed here.
_ROCA_PRIMES = tuple(r for r in range(3, 168) if all(r % d for d in range(2, r)))  # odd primes to 167
_ROCA_SUBGROUPS = tuple((r, frozenset(pow(65537, k, r) for k in range(r))) for r in _ROCA_PRIMES)


def _has_roca_fingerprint(modulus: int) -> bool:
    """Whether an RSA modulus has the structure of the weak Infineon keys (CVE-2017-15361)."""
    return all(modulus % r in powers for r, powers in _ROCA_SUBGROUPS)
