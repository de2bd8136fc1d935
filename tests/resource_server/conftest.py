"""Signing keys shared by the resource_server tests: generated once per session (RSA is slow)."""

from __future__ import annotations

import pytest

from tests.support import Signer, eddsa, es256, rs256


@pytest.fixture(scope="session")
def es() -> Signer:
    return es256("es-1")


@pytest.fixture(scope="session")
def rs() -> Signer:
    return rs256("rs-1")


@pytest.fixture(scope="session")
def ed() -> Signer:
    return eddsa("ed-1")
