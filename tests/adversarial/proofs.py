"""What the DPoP proof tests share: the request a proof is checked against, and how a check is
made and a refusal asserted (a 401 whose description never repeats the proof)."""

from __future__ import annotations

from typing import Any

import pytest

from resource_server.dpop import DPoPVerifier, InvalidDPoPProof
from resource_server.tokens.errors import InvalidToken

URL = "https://api.test/orgs/acme/projects"
TOKEN = "access-token-value"


def check(
    verifier: DPoPVerifier, proof: str, *, method: str = "GET", url: str = URL, token: str | None = TOKEN
) -> Any:
    return verifier.verify(proof, method=method, url=url, access_token=token)


def refuse(verifier: DPoPVerifier, proof: Any, fragment: str, **request: Any) -> InvalidDPoPProof:
    with pytest.raises(InvalidDPoPProof) as caught:
        check(verifier, proof, **request)
    assert fragment in caught.value.description
    assert isinstance(caught.value, InvalidToken)  # an InvalidToken: every adapter answers 401
    if isinstance(proof, str) and len(proof) > 20:
        assert proof not in caught.value.description
    return caught.value
