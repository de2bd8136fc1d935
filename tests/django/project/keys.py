"""The test project's signing key: made once per test run and handed to the servers the tests start
(gunicorn runs in another process) through the environment, so every process verifies the tokens
the tests mint. Nothing is stored in the repository."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import Signer

_ENV = "RS_TEST_DJANGO_SIGNING_KEY"


def _private_key() -> ec.EllipticCurvePrivateKey:
    pem = os.environ.get(_ENV)
    if pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        os.environ[_ENV] = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return key
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return loaded


SIGNER = Signer("django-1", "ES256", _private_key())
#: The capability tokens' secret, the same in every process.
CAPABILITY_KEY = "c" * 32
#: The viewer contexts' secrets, by kid: two, as during a rotation.
VIEWER_KEYS = {"old": "o" * 32, "new": "n" * 32}
