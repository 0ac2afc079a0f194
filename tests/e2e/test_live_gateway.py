"""Paper trading through Envoy: REST start and signal streaming, REST pushes, gRPC-Web from TS.

- REST: `POST /v1/strategies/{id}:start` with a JSON body, then
  `GET /v1/strategies/{id}/signals:stream?afterSequence=N`, read as it arrives: a JSON array
  whose elements come one by one while the replay runs (docs/rest.md).
- REST client streaming: `POST /v1/feeds/{id}:push` takes a JSON array of PushBarsRequest.
- gRPC-Web: examples/js/src/live_grpc_web.ts (Connect's createGrpcWebTransport) starts a
  strategy, streams its signals after a sequence, hangs up and resumes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from typing import Any

import pytest

from stratopt.server.gateway import Gateway
from tests.client.runner import EXAMPLES, ROOT, base_env, run_ok
from tests.conftest import LiveServer
from tests.e2e.conftest import access_log
from tests.e2e.rest_client import Rest

pytestmark = pytest.mark.e2e

JS = EXAMPLES / "js"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def dataset_id(rest: Rest) -> Iterator[str]:
    """600 synthetic hourly bars: a 3/8 SMA crossover signals about every 9 bars on them."""
    made = rest.post("/v1/datasets:generate", {"name": unique("live"), "barCount": 600, "seed": 5})
    assert made.status == 200, made.body
    yield made.json()["dataset"]["id"]
    rest.delete(f"/v1/datasets/{made.json()['dataset']['id']}")


@pytest.fixture()
def strategy_id(rest: Rest) -> Iterator[str]:
    made = rest.post(
        "/v1/strategies",
        {
            "strategy": {
                "name": unique("live"),
                "strategyType": "sma_crossover",
                "parameters": {"fast": {"intValue": "3"}, "slow": {"intValue": "8"}},
            }
        },
    )
    assert made.status == 200, made.body
    sid = made.json()["strategy"]["id"]
    yield sid
    rest.post(f"/v1/strategies/{sid}:stop", {})  # 400 when it already ended: fine
    rest.delete(f"/v1/strategies/{sid}")


def stored_signals(rest: Rest, sid: str) -> list[dict[str, Any]]:
    r = rest.get(f"/v1/strategies/{sid}/signals?pageSize=1000")
    assert r.status == 200, r.body
    return list(r.json()["signals"])


def wait_for_signals(rest: Rest, sid: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(stored_signals(rest, sid)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} signals after 30 s"
        time.sleep(0.05)


def wait_until_stopped(rest: Rest, sid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        perf = rest.get(f"/v1/strategies/{sid}/performance").json()["performance"]
        if perf["runState"] != "RUN_STATE_RUNNING":
            return dict(perf)
        assert time.monotonic() < deadline, "the replay did not finish"
        time.sleep(0.1)


@dataclass
class JsonArrayStream:
    """A streamed JSON array read as it arrives: each element with the time it was complete."""

    status: int
    headers: dict[str, str]
    elements: list[tuple[float, Any]] = field(default_factory=list)
    reads: int = 0
    raw: str = ""

    @property
    def complete(self) -> bool:
        return self.raw.rstrip().endswith("]")


def stream_json_array(rest: Rest, path: str, timeout: float = 60) -> JsonArrayStream:
    """GET `path` and parse the body incrementally, element by element, until it ends."""
    conn = HTTPConnection(rest.host, rest.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"authorization": f"Bearer {rest.token}"})
        resp = conn.getresponse()
        out = JsonArrayStream(resp.status, {k.lower(): v for k, v in resp.getheaders()})
        decoder = json.JSONDecoder()
        buf, pos = "", 0
        while chunk := resp.read1(65536):
            out.reads += 1
            text = chunk.decode()
            out.raw += text
            buf += text
            while True:  # take every complete element off the front of the buffer
                rest_of = buf[pos:].lstrip()
                if rest_of[:1] in ("[", ","):
                    rest_of = rest_of[1:].lstrip()
                if not rest_of or rest_of[0] == "]":
                    break
                try:
                    value, end = decoder.raw_decode(rest_of)
                except json.JSONDecodeError:
                    break  # the element is still arriving
                out.elements.append((time.monotonic(), value))
                buf, pos = rest_of[end:], 0
        return out
    finally:
        conn.close()


def test_signals_stream_over_rest_as_an_incremental_json_array(
    rest: Rest, dataset_id: str, strategy_id: str
) -> None:
    # The replay starts from a JSON body, at 100 bars/s: about 6 s for the 600 bars.
    started = rest.post(
        f"/v1/strategies/{strategy_id}:start", {"datasetId": dataset_id, "barsPerSecond": 100}
    )
    assert started.status == 200, started.body
    assert started.json()["strategy"]["id"] == strategy_id
    wait_for_signals(rest, strategy_id, 3)

    # Resume after #2: #3.. come from storage, then live ones as the strategy emits them,
    # until the replay ends and the server closes the stream (the array's closing "]").
    s = stream_json_array(rest, f"/v1/strategies/{strategy_id}/signals:stream?afterSequence=2")
    assert s.status == 200, s.raw
    assert s.headers["content-type"] == "application/json"
    assert s.headers.get("transfer-encoding") == "chunked"
    assert s.raw.lstrip().startswith("[") and s.complete, s.raw[-300:]

    perf = wait_until_stopped(rest, strategy_id)
    assert perf["barsProcessed"] == "600"
    stored = stored_signals(rest, strategy_id)
    total = len(stored)
    assert total > 20
    streamed = [e["signal"] for _, e in s.elements]
    # int64 travels as a JSON string; every signal after #2 exactly once, in order.
    assert [sig["sequence"] for sig in streamed] == [str(n) for n in range(3, total + 1)]
    assert streamed == stored[2:]
    assert {e["dropped"] for _, e in s.elements} == {"0"}
    assert all(sig["strategyId"] == strategy_id for sig in streamed)
    actions = {"SIGNAL_ACTION_BUY", "SIGNAL_ACTION_SELL", "SIGNAL_ACTION_CLOSE"}
    assert {sig["action"] for sig in streamed} <= actions

    # Delivered incrementally: many reads, and the elements arrived over the replay's
    # seconds rather than all at once at the end.
    first, last = s.elements[0][0], s.elements[-1][0]
    assert s.reads >= 10, s.reads
    assert last - first > 2.0, f"all elements arrived within {last - first:.2f} s"

    # A reconnect after the run ended reads the rest from storage, and the stream ends.
    again = stream_json_array(
        rest, f"/v1/strategies/{strategy_id}/signals:stream?afterSequence={total - 4}"
    )
    assert again.status == 200 and again.complete
    assert [e["signal"]["sequence"] for _, e in again.elements] == [
        str(n) for n in range(total - 3, total + 1)
    ]
    # Only new signals (afterSequence=0) of a strategy that no longer runs: a plain 400.
    ended = rest.get(f"/v1/strategies/{strategy_id}/signals:stream")
    assert ended.status == 400 and ended.json()["code"] == 9, ended.body


def feed_bar(symbol: str, minute: int, close: float, **override: Any) -> dict[str, Any]:
    ts = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=minute)
    bar = {
        "time": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": close,
        "high": close + 0.5,
        "low": close - 0.5,
        "close": close,
        "volume": 10,
    }
    return {"symbol": symbol, "bar": {**bar, **override}}


def test_push_feed_over_rest_with_a_json_array_body(rest: Rest, strategy_id: str) -> None:
    symbol = f"R{uuid.uuid4().hex[:8].upper()}"
    made = rest.post(
        "/v1/feeds", {"kind": "FEED_KIND_PUSH", "symbols": [symbol], "timeframe": "1m"}
    )
    assert made.status == 200, made.body
    feed_id = made.json()["feed"]["id"]
    try:
        started = rest.post(f"/v1/strategies/{strategy_id}:start", {"feedId": feed_id})
        assert started.status == 200, started.body

        # Client streaming over REST: the body is a JSON array of PushBarsRequest messages
        # (feed_id comes from the path). Bad bars are refused one by one.
        closes = [100 - i for i in range(10)] + [90 + 1.5 * i for i in range(10)]
        bars = [feed_bar(symbol, i, c) for i, c in enumerate(closes)]
        bars.insert(5, feed_bar(symbol, 2, 99.0))  # index 5: out of order
        bars.insert(12, feed_bar(symbol, 50, 95.0, high="NaN"))  # index 12: NaN
        bars.insert(15, feed_bar("NOPE", 51, 95.0))  # index 15: a symbol the feed lacks
        pushed = rest.post(
            f"/v1/feeds/{feed_id}:push",
            [{"bars": bars[:8]}, {"bars": bars[8:16]}, {"bars": bars[16:]}],
        )
        assert pushed.status == 200, pushed.body
        reply = pushed.json()
        assert (reply["accepted"], reply["rejected"]) == ("20", "3")
        rejections = reply["rejections"]
        assert [r["index"] for r in rejections] == ["5", "12", "15"]
        assert "strictly increasing" in rejections[0]["reason"]
        assert rejections[1]["reason"] == "high is NaN"
        assert "unknown symbol 'NOPE'" in rejections[2]["reason"]

        feed = rest.get(f"/v1/feeds/{feed_id}").json()["feed"]
        assert (feed["barsAccepted"], feed["barsRejected"]) == ("20", "3")
        assert feed["runningStrategyCount"] == 1
        perf = rest.get(f"/v1/strategies/{strategy_id}/performance").json()["performance"]
        assert perf["barsProcessed"] == "20" and perf["feedId"] == feed_id
        assert perf["lastBarTime"] == "2024-05-01T00:19:00Z"
        assert stored_signals(rest, strategy_id), "the crossover never signalled"

        # One message alone must still be an array; Envoy says so before the server sees it.
        single = rest.post(f"/v1/feeds/{feed_id}:push", {"bars": []})
        assert single.status == 400 and "array" in single.json()["message"]
        stopped = rest.post(f"/v1/strategies/{strategy_id}:stop", {"closePosition": True})
        assert stopped.status == 200, stopped.body
    finally:
        rest.post(f"/v1/strategies/{strategy_id}:stop", {})
        assert rest.delete(f"/v1/feeds/{feed_id}").status == 200


@pytest.mark.client
def test_ts_client_streams_signals_over_grpc_web(
    gateway: Gateway, live_server: LiveServer, rest: Rest, dataset_id: str
) -> None:
    if (
        not (JS / "node_modules/.bin/tsx").exists()
        or not (ROOT / "generated/js/node_modules/@bufbuild").exists()
    ):
        pytest.fail("examples/js is not installed: run `make js-deps`")
    env = {
        **base_env(),
        "STRATOPT_GATEWAY": gateway.url,
        "STRATOPT_TOKEN": live_server.token("trader"),
    }
    args = ["--dataset", dataset_id, "--after", "2", "--take", "4", "--bars-per-second", "150"]
    out = run_ok(["npx", "--no", "tsx", "src/live_grpc_web.ts", *args], cwd=JS, env=env).stdout
    assert f"gRPC-Web via {gateway.url}" in out
    found = re.search(r"^started strategy (\w+) ", out, re.MULTILINE)
    assert found, out
    sid = found.group(1)
    try:
        printed = [
            (int(n), action, float(price))
            for n, action, price in re.findall(
                r"^signal #(\d+) \S+ \S+ (\w+) @ (\S+) position", out, re.MULTILINE
            )
        ]
        assert "streaming after #2" in out and "hung up after #6; resuming after #6" in out, out
        total = len(stored_signals(rest, sid))
        assert [n for n, _, _ in printed] == list(range(3, total + 1)), out
        assert f"received {total - 2} signals, sequences 3..{total}, no gaps, no repeats" in out
        stored = stored_signals(rest, sid)[2:]
        assert [(a, round(p, 4)) for _, a, p in printed] == [
            (s["action"].removeprefix("SIGNAL_ACTION_"), round(s["price"], 4)) for s in stored
        ]
        # Both streams went through Envoy's grpc_web filter (HTTP/1.1, the gRPC path).
        rpc = "/stratopt.v1.StrategyService/StreamSignals"
        deadline = time.monotonic() + 5  # Envoy flushes access logs every second
        while True:
            web = [
                entry
                for entry in map(json.loads, access_log(gateway))
                if entry.get("path") == rpc and entry.get("protocol") == "HTTP/1.1"
            ]
            if len(web) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # (Envoy logs their grpc_status as Unknown: gRPC-Web carries it in the body.)
        assert len(web) >= 2 and {e["status"] for e in web} == {200}, web
    finally:
        rest.post(f"/v1/strategies/{sid}:stop", {})
        rest.delete(f"/v1/strategies/{sid}")
