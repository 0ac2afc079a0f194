"""`stratopt overview`, `notifications` and `webhooks` against a real server: the overview's
counts move with what the user creates, webhooks go round trip with their secret shown
once, and real notifications (exports being ready) are listed as lines and as JSON, the
newest or those after a sequence, and followed from where the listing ended, across a
network cut, until Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import export_pb2_grpc as epbg
from stratopt.v1 import system_pb2 as spb
from stratopt.v1 import system_pb2_grpc as spbg

from stratopt import __version__
from tests.conftest import LiveServer, free_port
from tests.integration.test_cli_commands import STRATOPT, Run, cli, env, run_json, srv

_ = (cli, env, srv)  # fixtures shared with the other CLI tests

HOOK = "https://hooks.example.com/stratopt"


def open_streams(srv: LiveServer) -> int:
    """The trader's server streams open right now (the overview counts them)."""
    with srv.channel() as ch:
        view = spbg.SystemServiceStub(ch).GetOverview(
            spb.GetOverviewRequest(), metadata=srv.md("trader")
        )
    return int(view.open_stream_count)


def export_pine(srv: LiveServer) -> str:
    """A real notification for the trader: an export is ready. Returns its resource."""
    with srv.channel() as ch:
        reply = epbg.ExportServiceStub(ch).ExportPineScript(
            epb.ExportPineScriptRequest(strategy_type="sma_crossover"), metadata=srv.md("trader")
        )
    return f"exports/{reply.file.id}"


def when_listening(srv: LiveServer, then: Callable[[], None], timeout: float = 15.0) -> None:
    """Runs `then` once one more stream of the trader's is open than now (the command's)."""
    before = open_streams(srv)
    deadline = time.monotonic() + timeout
    while open_streams(srv) <= before:
        assert time.monotonic() < deadline, "the command never opened its stream"
        time.sleep(0.05)
    then()


class Relay:
    """A TCP relay in front of the real server that can cut its connections and refuse new
    ones for a while: a network cut, with nothing about the server faked."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.up = True
        self.relayed = 0  # connections carried through to the server
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.relayed += 1
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def cut(self) -> None:
        self.up = False
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.open.clear()

    def restore(self) -> None:
        self.up = True

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self.listener.close()


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- overview --------------------------------------------------------------------------------


def test_overview_counts_what_the_user_creates(cli: Run) -> None:
    before = run_json(cli, "overview")
    assert isinstance(before, dict)
    assert before["version"] == __version__ and before["database_backend"] == "sqlite"
    assert isinstance(before["dataset_count"], int)  # 64-bit counts as numbers

    out, _ = cli("datasets", "generate", "overview-synth", "--bars", "300", "--seed", "4")
    dataset = out.split()[2].rstrip(":")
    strategy = cli(
        "strategies", "create", "overview", "--type", "sma_crossover", "-p", "fast=5",
        "-p", "slow=20", "-q",
    )[0].strip()  # fmt: skip
    try:
        after = run_json(cli, "overview")
        assert isinstance(after, dict)
        assert after["dataset_count"] == before["dataset_count"] + 1
        assert after["strategy_count"] == before["strategy_count"] + 1
        assert after["server_time"] >= before["server_time"]

        out, _ = cli("overview")
        rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines())
        assert rows["datasets"] == f"{after['dataset_count']:,}", out
        assert rows["strategies"] == f"{after['strategy_count']:,} (0 running)", out
        assert rows["server"].endswith(f"stratopt {__version__}") and rows["database"] == "sqlite"
        assert rows["jobs"].endswith("running") and rows["paper portfolio"][-3] == "."
        assert re.fullmatch(r"[\d.]+ (s|min|hours|days)", rows["up for"]), out
        assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC", rows["server time"]), out
    finally:
        cli("strategies", "rm", strategy)
        cli("datasets", "rm", dataset)


# -- webhooks --------------------------------------------------------------------------------


def test_webhooks_create_ls_rm_show_the_secret_once(cli: Run) -> None:
    out, _ = cli("webhooks", "create", HOOK)
    hook = re.search(r"created webhook (\S+) for " + re.escape(HOOK), out)
    assert hook, out
    secret = re.search(r"^signing secret: (\S+)$", out, re.M)
    assert secret and len(secret.group(1)) >= 32, out
    assert "shown this once; the server never shows it again" in out
    assert "X-Stratopt-Signature: v1=HMAC-SHA256(secret" in out
    assert "sends: strategy.alert (default)" in out

    out, _ = cli("webhooks", "ls")
    assert hook.group(1) in out and HOOK in out and "strategy.alert (default)" in out, out
    assert secret.group(1) not in out  # never shown again
    listed = run_json(cli, "webhooks", "ls")
    assert isinstance(listed, list)
    mine = next(h for h in listed if h["id"] == hook.group(1))
    assert mine["secret"] == "" and mine["delivered_count"] == 0 and mine["kinds"] == []

    out, _ = cli("webhooks", "rm", hook.group(1))
    assert f"deleted webhook {hook.group(1)}" in out
    assert hook.group(1) not in cli("webhooks", "ls")[0]
    _, err = cli("webhooks", "rm", hook.group(1), code=1)
    assert "NOT_FOUND" in err


def test_webhooks_json_with_kinds(cli: Run) -> None:
    out, err = cli(
        "webhooks", "create", HOOK + "/jobs", "--kind", "job.succeeded", "--kind", "export.ready",
        "--json",
    )  # fmt: skip
    created = json.loads(out)
    assert created["url"] == HOOK + "/jobs" and len(created["secret"]) >= 32
    assert created["kinds"] == ["export.ready", "job.succeeded"]
    assert "secret is in this output only" in err and created["secret"] not in err
    listed = run_json(cli, "webhooks", "ls")
    assert isinstance(listed, list) and created["id"] in [h["id"] for h in listed]
    assert run_json(cli, "webhooks", "rm", created["id"]) == {"deleted": [created["id"]]}


def test_webhook_bad_urls_and_kinds_say_what_is_wrong(cli: Run) -> None:
    _, err = cli("webhooks", "create", "hooks.example.com/x", code=2)  # caught locally
    assert "starts with http:// or https://, e.g. https://hooks.example.com/x" in err, err
    _, err = cli("webhooks", "create", "ftp://hooks.example.com/x", code=2)
    assert "e.g. https://hooks.example.com/x" in err, err
    _, err = cli("webhooks", "create", "https://user:pw@hooks.example.com/x", code=1)
    assert "INVALID_ARGUMENT" in err and "credentials" in err, err
    _, err = cli("webhooks", "create", HOOK, "--kind", "dataset.deleted", code=1)
    assert "INVALID_ARGUMENT" in err and "webhook.kinds[0]" in err and "job.succeeded" in err
    assert HOOK not in cli("webhooks", "ls")[0]  # nothing half-created


# -- notifications ---------------------------------------------------------------------------


def test_notifications_lists_the_newest_and_those_after_a_sequence(
    cli: Run, srv: LiveServer
) -> None:
    resources = [export_pine(srv), export_pine(srv)]
    out, _ = cli("notifications", "--last", "2", "--json")
    got = json_lines(out)
    assert [n["resource"] for n in got] == resources, out  # oldest first
    first, n = got
    assert n["kind"] == "export.ready" and n["severity"] == "NOTIFICATION_SEVERITY_INFO"
    assert isinstance(first["sequence"], int) and n["sequence"] == first["sequence"] + 1
    assert n["title"] and n["message"] and str(n["time"]).startswith("20")

    # Every one after the first's sequence, as a line a person reads.
    out, _ = cli("notifications", "--after", str(first["sequence"]))
    assert len(out.splitlines()) == 1, out
    cells = re.split(r"\s{2,}", out.strip())
    assert re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)?", cells[0]), out
    assert cells[1:4] == ["info", "export.ready", n["title"]], out
    assert cells[4] == " ".join(str(n["message"]).split()), out
    assert cells[5:] == [resources[1], f"#{n['sequence']}"], out


def test_notifications_says_when_there_are_none(
    cli: Run, srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATOPT_TOKEN", srv.token("viewer"))  # never notified here
    out, err = cli("notifications")
    assert out == "" and "no notifications yet" in err
    out, err = cli("notifications", "--json")
    assert out == "" and err == ""


def test_notifications_bad_input(cli: Run) -> None:
    _, err = cli("notifications", "--after", "-1", code=2)
    assert "--after -1: a sequence number is 0 or more" in err
    _, err = cli("notifications", "--last", "-1", code=2)
    assert "--last -1: give 0 or more" in err


def test_follow_starts_where_the_listing_ended(srv: LiveServer, env: dict[str, str]) -> None:
    """What is written between the listing and the stream is neither lost nor repeated."""
    listed = export_pine(srv)
    proc = subprocess.Popen(
        [*STRATOPT, "notifications", "--last", "1", "--follow", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=20))["resource"] == listed
        written = export_pine(srv)  # perhaps before the stream opened: it comes either way
        assert json.loads(lines.get(timeout=20))["resource"] == written
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
        assert lines.empty()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_follow_fails_fast_without_a_server(cli: Run) -> None:
    start = time.monotonic()
    _, err = cli("notifications", "--follow", "--server", f"127.0.0.1:{free_port()}", code=1)
    assert "UNAVAILABLE" in err and "stratopt serve" in err, err
    assert time.monotonic() - start < 15  # the call's retries, not the reconnect window


def test_follow_reconnects_after_a_network_cut_and_ends_on_ctrl_c(
    srv: LiveServer, env: dict[str, str]
) -> None:
    with Relay(srv.addr) as relay:
        proc = subprocess.Popen(
            [
                *STRATOPT,
                "notifications",
                "--last",
                "0",
                "--follow",
                "--json",
                "--server",
                relay.addr,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True
        ).start()
        try:
            when_listening(srv, lambda: None, timeout=30)
            first = export_pine(srv)
            one = json.loads(lines.get(timeout=10))
            assert one["resource"] == first

            # The connection is cut and new ones refused while a notification is written:
            # the follow subscribes again after the last sequence it printed, so that one
            # still comes, once.
            relay.cut()
            connections = relay.relayed
            second = export_pine(srv)
            time.sleep(0.3)
            relay.restore()
            two = json.loads(lines.get(timeout=15))
            assert two["resource"] == second and two["sequence"] == one["sequence"] + 1
            assert relay.relayed > connections  # over a new connection

            proc.send_signal(signal.SIGINT)
            assert proc.wait(15) == 130
            assert lines.empty()  # nothing twice
            err = proc.stderr.read() if proc.stderr else ""
            assert "interrupted" in err and "Traceback" not in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
