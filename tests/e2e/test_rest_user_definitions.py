"""User strategy types over REST/JSON through the real Envoy transcoder (rules.proto)."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.e2e.rest_client import Rest
from tests.e2e.test_rest import detail

pytestmark = pytest.mark.e2e

SOURCE = """\
param n: int = 20 in [5, 60]
long_entry: close > sma(close, n)
long_exit: close < sma(close, n)
"""


def test_validate_create_and_errors_with_positions(rest: Rest) -> None:
    ok = rest.post(
        "/v1/userDefinitions:validate", {"kind": "USER_DEFINITION_KIND_STRATEGY", "source": SOURCE}
    )
    assert ok.status == 200, ok.body
    assert ok.json()["valid"] is True and ok.json()["parameters"][0]["name"] == "n"
    bad = rest.post(
        "/v1/userDefinitions:validate",
        {"kind": "USER_DEFINITION_KIND_STRATEGY", "source": "long_entry: close >\n"},
    )
    assert bad.status == 200 and bad.json()["valid"] is False
    assert bad.json()["problems"][0]["line"] == 1

    name = f"rest_{uuid.uuid4().hex[:8]}"
    created = rest.post(
        "/v1/userDefinitions",
        {"kind": "USER_DEFINITION_KIND_STRATEGY", "name": name, "source": SOURCE},
    )
    assert created.status == 200, created.body
    d = created.json()["definition"]
    assert d["strategyType"] == f"user_{d['id']}" and d["version"] == "1"
    got = rest.get(f"/v1/userDefinitions/{d['id']}").json()
    assert got["definition"] == d and got["strategyType"]["parameters"][0]["name"] == "n"

    refused = rest.post(
        "/v1/userDefinitions",
        {"kind": "USER_DEFINITION_KIND_STRATEGY", "name": name + "x", "source": "x = (\n"},
    )
    assert refused.status == 400 and refused.json()["code"] == 3
    (v,) = detail(refused, "google.rpc.BadRequest")["fieldViolations"]  # type: ignore[misc]
    assert v["field"] == "definition.source" and re.match(r"^\d+:\d+: ", v["description"])
