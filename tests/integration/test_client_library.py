"""The Python client library (`stratopt.client.Client` / `AsyncClient`) against real servers.

One server issues 4-second access tokens, so refresh before expiry is observable in a few
seconds; another has tight rate limits, so retries meet a real RESOURCE_EXHAUSTED with
RetryInfo from the server's token buckets.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import system_pb2 as ypb

from stratopt.client import AsyncClient, AuthenticationRequired, Client, RetryPolicy
from stratopt.client.retry import NO_RETRY, error_retry_delay
from tests.conftest import (
    DEMO_PASSWORDS,
    ROOT,
    LiveServer,
    start_server,
    stop_server,
    wait_serving,
)

TTL = 4  # seconds; the client refreshes a fifth of it (0.8 s) before the end
PASSWORD = DEMO_PASSWORDS["trader"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(
        tmp_path_factory.mktemp("client-lib"), {"STRATOPT_ACCESS_TOKEN_SECONDS": str(TTL)}
    )
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(
        tmp_path_factory.mktemp("client-lib-limited"),
        {"STRATOPT_RATE_LIMIT_GENERAL": "2/1s burst 2"},
    )
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def dataset(srv: LiveServer) -> str:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        req = mpb.GenerateSyntheticDatasetRequest(
            name="lib-bars", symbol="LIB", timeframe="1h", bar_count=3_000, seed=5
        )
        return str(client.market_data.GenerateSyntheticDataset(req).dataset.id)


def _me(client: Client) -> str:
    return str(client.auth.GetCurrentUser(apb.GetCurrentUserRequest()).user.username)


# -- sessions ------------------------------------------------------------------------------


def test_login_refreshes_before_expiry_and_keeps_the_rotated_refresh_token(
    srv: LiveServer,
) -> None:
    rotated: list[str] = []
    with Client(srv.addr, on_refresh_token=rotated.append) as client:
        with pytest.raises(grpc.RpcError) as e:
            _me(client)  # no credential yet: the server says so
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        client.login("trader", PASSWORD)
        first_access, first_refresh = client.credentials.metadata()[1], client.refresh_token
        assert rotated == [first_refresh]
        assert _me(client) == "trader"

        time.sleep(TTL - 0.5)  # inside the refresh margin, before the server would refuse
        assert _me(client) == "trader"
        assert client.credentials.metadata()[1] != first_access
        assert client.refresh_token != first_refresh and rotated[-1] == client.refresh_token
        assert client.interceptor.retries == 0, "refreshed ahead, not after a refusal"

        # Using the replaced refresh token again revokes the session on the server (reuse
        # detection); the client then says so instead of failing obscurely.
        thief = Client(srv.addr, refresh_token=first_refresh)
        with thief, pytest.raises(AuthenticationRequired, match="log in again"):
            thief.refresh()
        with pytest.raises(AuthenticationRequired):
            client.refresh()


def test_an_expired_token_is_refreshed_once_on_unauthenticated(srv: LiveServer) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        session = client.credentials.session
        assert session is not None
        session.access_token = "not-a-token"  # the server refuses it: UNAUTHENTICATED
        assert _me(client) == "trader"
        assert client.credentials.metadata()[1] not in ("", "not-a-token")

        # A fixed token cannot be refreshed: the refusal reaches the caller unchanged.
    with Client(srv.addr, access_token="not-a-token") as fixed:
        with pytest.raises(grpc.RpcError) as e:
            _me(fixed)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_stored_refresh_token_is_exchanged_on_first_use(srv: LiveServer) -> None:
    with Client(srv.addr) as first:
        first.login("analyst", DEMO_PASSWORDS["analyst"])
        stored = first.refresh_token
    with Client(srv.addr, refresh_token=stored) as client:
        assert _me(client) == "analyst"
        assert client.refresh_token != stored
        assert client.logout() is True
    stale = Client(srv.addr, refresh_token=stored)
    with stale, pytest.raises(AuthenticationRequired):
        _me(stale)


def test_an_api_key_authenticates_every_call(srv: LiveServer) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        created = client.auth.CreateApiKey(apb.CreateApiKeyRequest(display_name="lib-test"))
    with Client(srv.addr, api_key=created.secret) as keyed:
        assert _me(keyed) == "trader"
        assert keyed.refresh_token == ""
        types = keyed.strategies.ListStrategyTypes(spb.ListStrategyTypesRequest())
        assert any(t.name == "sma_crossover" for t in types.strategy_types)
    with pytest.raises(ValueError):
        Client(srv.addr, api_key="a", access_token="b")


async def test_async_login_refresh_and_api_key(srv: LiveServer) -> None:
    rotated: list[str] = []
    async with AsyncClient(srv.addr, on_refresh_token=rotated.append) as client:
        user = await client.login("trader", PASSWORD)
        assert user.username == "trader"
        reply = await client.auth.GetCurrentUser(apb.GetCurrentUserRequest())
        assert reply.user.username == "trader"
        first = client.credentials.metadata()[1]
        await asyncio.sleep(TTL - 0.5)
        reply = await client.auth.GetCurrentUser(apb.GetCurrentUserRequest())
        assert reply.user.username == "trader" and client.credentials.metadata()[1] != first
        assert len(rotated) == 2

        session = client.credentials.session
        assert session is not None
        session.access_token = "not-a-token"
        reply = await client.auth.GetCurrentUser(apb.GetCurrentUserRequest())
        assert reply.user.username == "trader" and len(rotated) == 3

        key = await client.auth.CreateApiKey(apb.CreateApiKeyRequest(display_name="lib-async"))
    async with AsyncClient(srv.addr, api_key=key.secret) as keyed:
        reply = await keyed.auth.GetCurrentUser(apb.GetCurrentUserRequest())
        assert reply.user.username == "trader"


# -- retries -------------------------------------------------------------------------------


def _token(srv: LiveServer) -> str:
    return srv.token("trader")


def test_rate_limited_calls_wait_as_long_as_retry_info_says(limited: LiveServer) -> None:
    with Client(limited.addr, access_token=_token(limited), retry=NO_RETRY) as bare:
        refusal = None
        for _ in range(10):
            try:
                _me(bare)
            except grpc.RpcError as e:
                refusal = e
                break
        assert refusal is not None and refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        hint = error_retry_delay(refusal)
        assert hint is not None and 0 < hint <= 0.5  # 2 calls/s: a token every 0.5 s

    time.sleep(1.5)  # a full bucket again
    sleeps: list[float] = []
    per_call: list[int] = []
    with Client(
        limited.addr, access_token=_token(limited), retry=RetryPolicy(max_attempts=4)
    ) as client:
        client.interceptor.sleep = lambda s: (sleeps.append(s), time.sleep(s))[1]
        start = time.monotonic()
        for _ in range(6):
            before = client.interceptor.retries
            assert _me(client) == "trader"
            per_call.append(client.interceptor.retries - before)
        elapsed = time.monotonic() - start
    # 2 calls from the burst, then one every 0.5 s: about 2 s for 6, every one OK.
    assert elapsed >= 1.8, elapsed
    assert sum(per_call) >= 3, per_call
    # Each refused call slept what RetryInfo asked (0.3-0.5 s here) and then got through:
    # one retry per refusal. Blind backoff (0.1-0.2 s first) would be refused again.
    assert max(per_call) == 1, (per_call, sleeps)
    assert sum(sleeps) >= 1.2, sleeps


async def test_async_rate_limited_calls_are_retried(limited: LiveServer) -> None:
    await asyncio.sleep(1.5)
    async with AsyncClient(limited.addr, access_token=_token(limited)) as client:
        start = time.monotonic()
        replies = [await client.auth.GetCurrentUser(apb.GetCurrentUserRequest()) for _ in range(5)]
        assert all(r.user.username == "trader" for r in replies)
        assert 3 <= client.interceptor.retries <= 4, "one retry per refusal, as RetryInfo said"
        assert time.monotonic() - start >= 1.3


def test_a_server_that_is_down_fails_fast_and_clearly() -> None:
    from tests.conftest import free_port

    policy = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.1)
    with Client(f"127.0.0.1:{free_port()}", api_key="sk_x", retry=policy) as client:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            client.strategies.ListStrategyTypes(spb.ListStrategyTypesRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert client.interceptor.retries == 2 and time.monotonic() - start < 5


# -- helpers: optimize, export, backtest, streams --------------------------------------------


def _spec(dataset: str) -> opb.OptimizationSpec:
    return opb.OptimizationSpec(strategy_type="sma_crossover", dataset_id=dataset, trials=6, seed=1)


def test_optimize_and_watch_to_completion(srv: LiveServer, dataset: str) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        watch = client.optimize_and_watch(_spec(dataset))
        events = list(watch)
        assert events[0].type == opb.JOB_EVENT_TYPE_SNAPSHOT
        assert events[-1].job.state == opb.JOB_STATE_SUCCEEDED and watch.done
        assert watch.job is not None and watch.job.trials_completed == 6
        result = watch.result()
        assert result.job.id == watch.job_id and result.best_trial.parameters
        assert list(watch) == [], "an ended watch yields nothing more"

        # Watching an ended job: its snapshot, then the end.
        again = list(client.watch_job(watch.job_id))
        assert len(again) == 1 and again[0].job.state == opb.JOB_STATE_SUCCEEDED


async def test_async_optimize_and_watch(srv: LiveServer, dataset: str) -> None:
    async with AsyncClient(srv.addr) as client:
        await client.login("trader", PASSWORD)
        watch = await client.optimize_and_watch(_spec(dataset))
        states = [event.job.state async for event in watch]
        assert states[-1] == opb.JOB_STATE_SUCCEEDED
        result = await watch.result()
        assert result.best_trial.parameters and result.job.trials_completed == 6


def test_stream_errors_are_clean_and_not_retried(srv: LiveServer) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        with pytest.raises(grpc.RpcError) as e:
            list(client.watch_job("0" * 32))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as e:
            client.download_export("0" * 32)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert client.interceptor.retries == 0


def test_export_pine_and_download_the_file(srv: LiveServer, tmp_path: Path) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        reply = client.export_pine(
            strategy_type="sma_crossover", parameters={"fast": 10, "slow": 50}, title="Lib"
        )
        assert "//@version=6" in reply.script and "Lib" in reply.script
        data = client.download_export(reply.file.id)
        assert isinstance(data, bytes) and data.decode() == reply.script
        size = client.download_export(reply.file.id, tmp_path / "lib.pine")
        assert size == len(data) == (tmp_path / "lib.pine").stat().st_size
        assert [p.name for p in tmp_path.iterdir()] == ["lib.pine"], "no partial files left"
        with pytest.raises(ValueError):
            client.export_pine(strategy_type="sma_crossover", job_id="x")


def test_backtest_on_a_local_file_and_a_report(
    srv: LiveServer, dataset: str, tmp_path: Path
) -> None:
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        # ReadBars through the stream helper, written as a CSV the server takes back.
        rows = [
            bar
            for page in client.stream(
                client.market_data.ReadBars, mpb.ReadBarsRequest(dataset_id=dataset)
            )
            for bar in page.bars
        ]
        assert len(rows) == 3_000
        path = tmp_path / "lib_1h.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            for bar in rows:
                w.writerow(
                    [bar.time.ToJsonString(), bar.open, bar.high, bar.low, bar.close, bar.volume]
                )
        from_file = client.backtest(
            bars_file=path, strategy_type="sma_crossover", parameters={"fast": 10, "slow": 50}
        )
        stored = client.backtest(
            dataset, strategy_type="sma_crossover", parameters={"fast": 10, "slow": 50}
        )
        assert from_file.dataset_id != dataset
        assert from_file.metrics.num_trades == stored.metrics.num_trades > 0
        assert from_file.metrics.total_return == pytest.approx(stored.metrics.total_return)

        report = client.create_report(backtest_id=stored.id, format=epb.REPORT_FORMAT_JSON)
        body = client.download_export(report.id)
        assert isinstance(body, bytes) and stored.id.encode() in body


async def test_async_export_import_and_streams(
    srv: LiveServer, dataset: str, tmp_path: Path
) -> None:
    async with AsyncClient(srv.addr) as client:
        await client.login("trader", PASSWORD)
        reply = await client.export_pine(strategy_type="sma_crossover")
        assert (await client.download_export(reply.file.id)).decode() == reply.script
        pages = [p async for p in client.stream(
            client.market_data.ReadBars, mpb.ReadBarsRequest(dataset_id=dataset, page_size=500)
        )]  # fmt: skip
        assert sum(len(p.bars) for p in pages) == 3_000 and len(pages) >= 6
        path = tmp_path / "tiny.csv"
        path.write_text(
            "timestamp,open,high,low,close,volume\n"
            + "".join(
                f"2024-01-01T{h:02d}:00:00Z,{100 + h},{101 + h},{99 + h},{100.5 + h},10\n"
                for h in range(24)
            )
        )
        ds = await client.import_dataset(path, symbol="TINY")
        assert ds.bar_count == 24 and ds.symbol == "TINY"
        names = [d.name async for d in client.pages(
            client.market_data.ListDatasets, mpb.ListDatasetsRequest(page_size=1), "datasets"
        )]  # fmt: skip
        assert "tiny" in names and len(names) >= 2


# -- a watch that outlives its server ---------------------------------------------------------


def _relaunch(srv: LiveServer) -> None:
    """The same server again: same address, data folder and settings (a restart)."""
    srv.proc = subprocess.Popen(
        [sys.executable, "-m", "stratopt.client.cli", "serve", "--dev"],
        env=srv.env,
        stdout=srv.log_path.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    wait_serving(srv)


@pytest.mark.slow
def test_a_watch_reconnects_across_a_server_restart(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    policy = RetryPolicy(max_attempts=100, initial_backoff=0.1, max_backoff=0.5)
    try:
        with Client(srv.addr, retry=policy) as client:
            client.login("trader", PASSWORD)
            req = mpb.GenerateSyntheticDatasetRequest(
                name="restart", symbol="RST", timeframe="1h", bar_count=20_000, seed=5
            )
            ds = client.market_data.GenerateSyntheticDataset(req).dataset.id
            spec = opb.OptimizationSpec(
                strategy_type="sma_crossover", dataset_id=ds, trials=80, seed=11
            )
            watch = client.optimize_and_watch(spec)
            seen_after: list[int] = []
            restarted = False
            for event in watch:
                if restarted:
                    seen_after.append(event.type)
                elif event.job.trials_completed >= 20:
                    srv.proc.kill()  # mid-job, mid-watch
                    srv.proc.wait(10)
                    _relaunch(srv)
                    restarted = True
            assert restarted and watch.reconnects >= 1
            assert seen_after[0] == opb.JOB_EVENT_TYPE_SNAPSHOT, "a reconnect starts over"
            assert watch.job is not None and watch.job.state == opb.JOB_STATE_SUCCEEDED
            assert watch.job.trials_completed == 80
            # The session survived too: the same client keeps working on the new process.
            assert _me(client) == "trader"
    finally:
        stop_server(srv)


# -- the CLI on the library -------------------------------------------------------------------


def test_cli_stored_login_rotates_and_a_revoked_one_says_log_in_again(
    srv: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`stratopt login` keeps a refresh token; each command exchanges it through `Client`
    and stores the rotated one; once revoked, commands say what to do (exit 2)."""
    from stratopt.client.cli import main

    for k in [k for k in os.environ if k.startswith("STRATOPT_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("STRATOPT_SERVER", srv.addr)
    monkeypatch.setenv("STRATOPT_PASSWORD", DEMO_PASSWORDS["viewer"])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    store = tmp_path / "stratopt" / "credentials.json"

    def stored() -> str:
        return str(json.loads(store.read_text())[srv.addr]["refresh_token"])

    assert main(["login", "--username", "viewer"]) == 0
    first = stored()
    assert store.stat().st_mode & 0o777 == 0o600
    assert main(["datasets", "ls", "--json"]) == 0
    second = stored()
    assert second != first, "the rotated refresh token is stored"
    assert main(["types"]) == 0 and stored() != second
    capsys.readouterr()

    # Someone replays an old refresh token: the server revokes the session.
    thief = Client(srv.addr, refresh_token=first)
    with thief, pytest.raises(AuthenticationRequired):
        thief.refresh()
    assert main(["datasets", "ls"]) == 2
    assert "your stored login has expired" in capsys.readouterr().err
    assert main(["datasets", "ls"]) == 2
    assert "not logged in" in capsys.readouterr().err

    assert main(["login", "--username", "viewer"]) == 0
    assert main(["logout"]) == 0 and "logged out" in capsys.readouterr().out
    assert main(["datasets", "ls"]) == 2


# -- docs/client.md --------------------------------------------------------------------------


def test_every_example_in_docs_client_md_runs(srv: LiveServer, tmp_path: Path) -> None:
    """Each ```python block of the guide, run as written against a live server."""
    text = (ROOT / "docs" / "client.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    sample = (ROOT / "examples" / "data" / "btc_1h.csv").read_bytes()
    for name in ("btcusdt_1h.csv", "btc.csv"):
        (tmp_path / name).write_bytes(sample)
    for i, block in enumerate(blocks):
        code = block.replace("127.0.0.1:50051", srv.addr)
        ran = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240
        )
        assert ran.returncode == 0, f"block {i}:\n{block}\n{ran.stderr}"
    assert (tmp_path / "report.html").stat().st_size > 1_000


# -- TLS -----------------------------------------------------------------------------------


def _self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 and its key (PEM), made on the spot."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_tls_channels_verify_the_server(tmp_path: Path) -> None:
    """stratopt serves plaintext behind a TLS proxy; the client's TLS option is checked
    against a real grpc.aio server with a certificate (the health service)."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from tests.conftest import free_port

    cert, key = _self_signed()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    addr = f"127.0.0.1:{free_port()}"
    server.add_secure_port(addr, grpc.ssl_server_credentials([(key, cert)]))
    await server.start()
    try:
        req = health_pb2.HealthCheckRequest()
        async with AsyncClient(addr, api_key="sk_x", root_certificates=cert) as client:
            reply = await client.stub(health_pb2_grpc.HealthStub).Check(req, timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        def sync_check(**kw: object) -> int:
            with Client(addr, api_key="sk_x", retry=NO_RETRY, **kw) as c:  # type: ignore[arg-type]
                return int(c.stub(health_pb2_grpc.HealthStub).Check(req, timeout=5).status)

        assert await asyncio.to_thread(sync_check, root_certificates=cert) == 1
        # Without the CA (system roots) or in plaintext, the call fails: nothing is sent
        # unverified.
        for kw in ({"tls": True}, {}):
            with pytest.raises(grpc.RpcError) as e:
                await asyncio.to_thread(sync_check, **kw)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


# -- paper trading -------------------------------------------------------------------------


async def test_async_follow_live_gets_every_signal_and_alert_once(
    srv: LiveServer, dataset: str
) -> None:
    async with AsyncClient(srv.addr) as client:
        await client.login("trader", PASSWORD)
        strategy = (
            await client.strategies.CreateStrategy(
                spb.CreateStrategyRequest(
                    strategy=spb.Strategy(name="lib-follow", strategy_type="sma_crossover")
                )
            )
        ).strategy
        await client.strategies.StartStrategy(
            spb.StartStrategyRequest(
                strategy_id=strategy.id, dataset_id=dataset, bars_per_second=1_000
            )
        )
        signals, alerts = client.follow_live(strategy.id), client.follow_live(strategy.id, "alerts")

        async def sequences(follow: object) -> list[int]:
            return [e.sequence async for e in follow]  # type: ignore[attr-defined]

        got, got_alerts = await asyncio.gather(sequences(signals), sequences(alerts))
        recorded = (
            await client.strategies.ListSignals(
                spb.ListSignalsRequest(strategy_id=strategy.id, page_size=1000)
            )
        ).signals
        # Subscribed after the start: the first ones may have come before; none after it
        # is missing, none comes twice, and the follow ends with the run.
        assert got and got == [s.sequence for s in recorded][-len(got) :]
        assert got == list(range(got[0], got[-1] + 1))
        listed = await client.strategies.ListAlerts(spb.ListAlertsRequest(strategy_id=strategy.id))
        assert got_alerts and got_alerts[-1] == listed.alerts[-1].sequence
        assert "end of its dataset" in listed.alerts[-1].message
        with pytest.raises(ValueError, match="kind must be one of"):
            client.follow_live(strategy.id, "fills")  # type: ignore[arg-type]


def test_follow_notifications_from_now_each_once(srv: LiveServer) -> None:
    """follow_notifications() starts after the newest stored one: an export made after it
    arrives, nothing stored before it does."""
    with Client(srv.addr) as client:
        client.login("trader", PASSWORD)
        client.export_pine(strategy_type="sma_crossover", parameters={"fast": 5, "slow": 20})
        follow = client.follow_notifications()
        start = follow.after
        reply = client.export_pine(strategy_type="sma_crossover", title="Followed")
        got: list[ypb.Notification] = []
        for n in follow:  # subscribes now, after `start`: the export is among what comes
            got.append(n)
            if n.resource == f"exports/{reply.file.id}":
                break
        follow.close()
        assert got[-1].kind == "export.ready" and got[0].sequence == start + 1
        assert [n.sequence for n in got] == list(range(start + 1, start + 1 + len(got)))


async def test_async_follow_notifications(srv: LiveServer) -> None:
    async with AsyncClient(srv.addr) as client:
        await client.login("trader", PASSWORD)
        follow = await client.follow_notifications()
        reply = await client.export_pine(strategy_type="sma_crossover", title="Async followed")
        async for n in follow:
            if n.resource == f"exports/{reply.file.id}":
                assert n.kind == "export.ready"
                break
        follow.close()
