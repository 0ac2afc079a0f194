"""REST/JSON through the real Envoy transcoder: CRUD, JSON conventions, errors, CORS, streaming."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import grpc
import pytest
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

from stratopt.server.gateway import Gateway
from tests.conftest import DEMO_PASSWORDS, LiveServer
from tests.e2e.conftest import access_log
from tests.e2e.rest_client import Response, Rest

pytestmark = pytest.mark.e2e


def unique(prefix: str = "rest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def detail(resp: Response, type_name: str) -> dict[str, object]:
    """The google.rpc detail of the given type from a JSON error body."""
    for d in resp.json()["details"]:
        if d["@type"] == f"type.googleapis.com/{type_name}":
            return dict(d)
    raise AssertionError(f"no {type_name} in {resp.json()}")


def rfc3339(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def test_lists_strategy_types_as_proto3_json(rest: Rest) -> None:
    r = rest.get("/v1/strategyTypes")
    assert r.status == 200, r.body
    assert r.header("content-type") == "application/json"
    types = r.json()["strategyTypes"]
    sma = next(t for t in types if t["name"] == "sma_crossover")
    assert sma["displayName"]  # lowerCamelCase names
    assert sma["category"].startswith("STRATEGY_CATEGORY_")  # enums as names
    fast = next(p for p in sma["parameters"] if p["name"] == "fast")
    assert isinstance(fast["defaultValue"]["intValue"], str)  # int64 as a JSON string
    # always_print_primitive_fields: zeros, false and [] are present, not omitted.
    params = [p for t in types for p in t["parameters"]]
    assert all("logScale" in p and "choices" in p for p in params)
    assert any(p["logScale"] is False for p in params) and fast["choices"] == []


def test_strategy_crud(rest: Rest) -> None:
    name = unique()
    created = rest.post(
        "/v1/strategies",
        {
            "strategy": {
                "name": name,
                "strategyType": "sma_crossover",
                "parameters": {"fast": {"intValue": "12"}},
                "tags": ["Trend"],
            }
        },
    )
    assert created.status == 200, created.body
    s = created.json()["strategy"]
    sid = s["id"]
    assert s["name"] == name and s["ownerUsername"] == "trader" and s["version"] == "1"
    assert s["parameters"]["fast"] == {"intValue": "12"}
    assert rfc3339(s["createTime"]) == rfc3339(s["updateTime"])

    got = rest.get(f"/v1/strategies/{sid}")
    assert got.status == 200 and got.json()["strategy"] == s

    # Only the masked fields change, even though the body also carries a new name.
    patched = rest.patch(
        f"/v1/strategies/{sid}?updateMask=description,tags",
        {"name": unique("ignored"), "description": "over REST", "tags": ["rest"]},
    )
    assert patched.status == 200, patched.body
    p = patched.json()["strategy"]
    assert p["name"] == name and p["description"] == "over REST" and p["tags"] == ["rest"]
    assert p["version"] == "2" and rfc3339(p["updateTime"]) > rfc3339(s["updateTime"])

    deleted = rest.delete(f"/v1/strategies/{sid}")
    assert deleted.status == 200 and deleted.json() == {}

    gone = rest.get(f"/v1/strategies/{sid}")
    assert gone.status == 404
    assert gone.header("content-type") == "application/json"
    assert gone.json()["code"] == 5 and sid in gone.json()["message"]
    assert detail(gone, "google.rpc.ErrorInfo")["reason"] == "NOT_FOUND"


def test_invalid_create_returns_field_violations(rest: Rest) -> None:
    r = rest.post("/v1/strategies", {"strategy": {"name": "", "strategyType": "no_such_type"}})
    assert r.status == 400
    assert r.json()["code"] == 3
    violations = detail(r, "google.rpc.BadRequest")["fieldViolations"]
    assert isinstance(violations, list)
    fields = {v["field"]: v["description"] for v in violations}
    assert set(fields) == {"strategy.name", "strategy.strategy_type"}
    assert "no_such_type" in fields["strategy.strategy_type"]


def test_credentials_are_required(gateway: Gateway) -> None:
    anonymous = Rest(gateway.url)
    r = anonymous.get("/v1/strategyTypes")
    assert r.status == 401 and r.json()["code"] == 16
    forged = anonymous.get("/v1/strategyTypes", token="not-a-jwt")
    assert forged.status == 401
    assert forged.json()["message"] == "invalid or expired credentials"


def test_login_and_api_key_over_rest(gateway: Gateway) -> None:
    anonymous = Rest(gateway.url)
    wrong = anonymous.post("/v1/auth:login", {"username": "analyst", "password": "nope-nope"})
    assert wrong.status == 401
    login = anonymous.post(
        "/v1/auth:login", {"username": "analyst", "password": DEMO_PASSWORDS["analyst"]}
    )
    assert login.status == 200, login.body
    session = login.json()
    assert session["tokenType"] == "Bearer" and session["user"]["username"] == "analyst"
    rfc3339(session["accessTokenExpireTime"])
    token = session["accessToken"]
    me = anonymous.get("/v1/auth/me", token=token)
    assert me.status == 200 and me.json()["user"]["role"] == "ROLE_ANALYST"

    key = anonymous.post("/v1/apiKeys", {"displayName": unique("key")}, token=token)
    assert key.status == 200, key.body
    by_key = anonymous.get("/v1/auth/me", headers={"x-api-key": key.json()["secret"]})
    assert by_key.status == 200 and by_key.json()["user"]["username"] == "analyst"


def test_envoy_own_errors_are_json_too(rest: Rest) -> None:
    unknown = rest.get("/v1/noSuchCollection")
    assert unknown.status == 404  # not 503: reject_unknown_method
    assert unknown.json() == {
        "code": 5,
        "message": "Could not resolve /v1/noSuchCollection to a method.",
        "details": [],
    }
    typo = rest.get("/v1/strategies?pageSise=5")
    assert typo.status == 400 and "pageSise" in typo.json()["message"]
    json_type = {"content-type": "application/json"}
    broken = rest.call("POST", "/v1/strategies", raw=b'{"strategy": {', headers=json_type)
    assert broken.status == 400 and broken.json()["code"] == 3


def test_cors_preflight_and_exposed_headers(rest: Rest) -> None:
    origin = "http://localhost:5173"
    pre = rest.call(
        "OPTIONS",
        "/v1/strategies",
        token="",
        headers={
            "origin": origin,
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "authorization,content-type,x-grpc-web",
        },
    )
    assert pre.status == 200
    assert pre.header("access-control-allow-origin") == origin
    assert "PATCH" in pre.header("access-control-allow-methods")
    allowed = {h.strip() for h in pre.header("access-control-allow-headers").split(",")}
    need = {"authorization", "x-api-key", "content-type", "x-grpc-web", "x-user-agent"}
    assert need | {"grpc-timeout", "connect-protocol-version"} <= allowed
    actual = rest.get("/v1/strategyTypes", headers={"origin": origin})
    assert actual.header("access-control-allow-origin") == origin
    exposed = {h.strip() for h in actual.header("access-control-expose-headers").split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= exposed


@pytest.fixture()
def dataset_id(rest: Rest) -> Iterator[str]:
    """A 250-bar synthetic dataset of the trader's, made and removed over REST."""
    spec = {"name": unique("bars"), "barCount": "250", "seed": "3"}
    made = rest.post("/v1/datasets:generate", spec)
    assert made.status == 200, made.body
    yield made.json()["dataset"]["id"]
    rest.delete(f"/v1/datasets/{made.json()['dataset']['id']}")


def test_server_streaming_arrives_as_a_json_array(rest: Rest, dataset_id: str) -> None:
    r = rest.get(f"/v1/datasets/{dataset_id}/bars?pageSize=100")
    assert r.status == 200, r.body
    # Delivered as it is produced, not buffered into one Content-Length body.
    assert r.header("transfer-encoding") == "chunked"
    pages = r.json()
    assert [p["offset"] for p in pages] == ["0", "100", "200"]
    assert {p["total"] for p in pages} == {"250"}
    times = [rfc3339(b["time"]) for p in pages for b in p["bars"]]
    assert len(times) == 250 and times == sorted(set(times))
    bar = pages[0]["bars"][0]
    assert bar["low"] <= min(bar["open"], bar["close"]) <= bar["high"]


def test_set_fields_lets_a_json_zero_override_a_stored_strategy(
    rest: Rest, dataset_id: str
) -> None:
    created = rest.post(
        "/v1/strategies",
        {
            "strategy": {
                "name": unique(),
                "strategyType": "sma_crossover",
                "execution": {"commission": 0.001, "stopLoss": 0.05},
            }
        },
    )
    assert created.status == 200, created.body
    sid = created.json()["strategy"]["id"]
    # A FieldMask is a comma-separated string of lowerCamelCase names in JSON.
    zeros = {"commission": 0, "stopLoss": 0, "setFields": "commission,stopLoss"}
    run = rest.post(
        "/v1/backtests:run",
        {"strategyId": sid, "datasetId": dataset_id, "execution": zeros, "dryRun": True},
    )
    assert run.status == 200, run.body
    echoed = run.json()["backtest"]["execution"]
    assert echoed["commission"] == 0 and echoed["stopLoss"] == 0
    assert echoed["direction"] == "TRADE_DIRECTION_LONG_ONLY"
    assert {"commission", "stopLoss", "initialCash"} <= set(echoed["setFields"].split(","))
    stored = rest.post(
        "/v1/backtests:run",
        {
            "strategyId": sid,
            "datasetId": dataset_id,
            "execution": {"commission": 0},
            "dryRun": True,
        },
    )
    assert stored.status == 200, stored.body
    assert stored.json()["backtest"]["execution"]["commission"] == 0.001
    rest.delete(f"/v1/strategies/{sid}")


def test_stream_error_before_first_message_keeps_its_http_status(rest: Rest) -> None:
    """Holds only while the server sends no headers before a stream's first message: once
    headers are out, HTTP/1.1 can no longer say 404 (see docs/rest.md)."""
    missing = rest.get(f"/v1/datasets/{uuid.uuid4().hex}/bars")
    assert missing.json()["code"] == 5
    assert missing.status == 404, "the server sent headers before failing the stream"


def test_native_grpc_passes_through_the_same_port(
    gateway: Gateway, live_server: LiveServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
        r = pbg.StrategyServiceStub(ch).GetStrategyType(
            pb.GetStrategyTypeRequest(name="sma_crossover"), metadata=live_server.md("viewer")
        )
    assert r.strategy_type.name == "sma_crossover"


def test_rate_limit_headers_reach_rest_clients(rest: Rest, live_server: LiveServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{rest.port}") as ch:
        _, call = pbg.StrategyServiceStub(ch).ListStrategyTypes.with_call(
            pb.ListStrategyTypesRequest(), metadata=live_server.md("trader")
        )
    # gRPC through the gateway: the values ride in the trailers, with no separate send of
    # initial metadata for them.
    expected = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
    trailing = {k for k, _ in call.trailing_metadata() if k.startswith("x-ratelimit-")}
    initial = {k for k, _ in call.initial_metadata() if k.startswith("x-ratelimit-")}
    assert trailing == expected and not initial
    # REST: Envoy drops a successful unary call's trailers, so the server sends them as
    # headers for calls the transcoder forwards.
    r = rest.get("/v1/strategyTypes")
    assert r.status == 200
    assert expected <= {k for k in r.headers if k.startswith("x-ratelimit-")}
    assert r.header("x-request-id")


def test_access_log_is_json_without_credentials(rest: Rest, gateway: Gateway) -> None:
    marker = unique("log")
    assert rest.get(f"/v1/strategies?query={marker}").status == 200
    deadline = time.monotonic() + 5  # Envoy flushes access logs every second
    while not (entries := [line for line in access_log(gateway) if marker in line]):
        assert time.monotonic() < deadline, "no access log entry"
        time.sleep(0.1)
    assert len(entries) == 1
    entry = json.loads(entries[0])
    assert entry["method"] == "GET" and entry["status"] == 200 and entry["grpc_status"] == "OK"
    assert entry["rpc"] == "/stratopt.v1.StrategyService/ListStrategies"
    assert rest.token and all(rest.token not in line for line in access_log(gateway))
