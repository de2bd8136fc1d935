"""Fixtures the DPoP proof tests share: one client key, a fake clock and a verifier on it."""

from __future__ import annotations

import pytest

from resource_server.dpop import DPoPVerifier
from tests.support import NOW, FakeClock, ProofSigner, dpop_key


@pytest.fixture(scope="module")
def key() -> ProofSigner:
    return dpop_key("ES256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def verifier(clock: FakeClock) -> DPoPVerifier:
    return DPoPVerifier(clock=clock)
