"""StreamNotifications tells a user when their jobs end and their exports are ready.

Alerts of running strategies reach the same stream (tests/integration/live); here the
other sources, and resuming the stream with after_sequence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import export_pb2_grpc as epbg
from stratopt.v1 import optimization_pb2_grpc as opbg
from stratopt.v1 import system_pb2 as spb
from stratopt.v1 import system_pb2_grpc as spbg

from tests.conftest import LiveServer, start_server, stop_server
from tests.integration.jobs.helpers import make_dataset, start, wait_done
from tests.integration.security.support import login, new_user


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(Path(tmp_path_factory.mktemp("notify")))
    yield server
    stop_server(server)


def collect(
    ch: grpc.Channel,
    md: list[tuple[str, str]],
    after: int,
    want: int,
    *,
    include_stored: bool = False,
) -> tuple[list[spb.Notification], threading.Thread, threading.Event]:
    """Reads the stream in a thread until `want` notifications arrived."""
    got: list[spb.Notification] = []
    ready = threading.Event()
    stub = spbg.SystemServiceStub(ch)
    request = spb.StreamNotificationsRequest(after_sequence=after, include_stored=include_stored)
    call = stub.StreamNotifications(request, metadata=md, timeout=60)

    def read() -> None:
        ready.set()
        try:
            for msg in call:
                got.append(msg.notification)
                if len(got) >= want:
                    call.cancel()
                    return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:  # cancelled: we stopped reading
                raise

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    ready.wait()
    return got, thread, ready


def test_job_end_and_export_ready_are_notified_and_resumable(srv: LiveServer) -> None:
    md = srv.md("trader")
    with srv.channel() as ch:
        got, thread, _ = collect(ch, md, after=0, want=2)
        time.sleep(0.5)  # the stream is open before anything happens
        dataset = make_dataset(ch, md, bars=2_000)
        job = start(opbg.OptimizationServiceStub(ch), md, dataset_id=dataset, trials=6)
        wait_done(opbg.OptimizationServiceStub(ch), md, job.id)
        # The job's notification is written just after it reads as done: let it land before
        # the export, whose notification would otherwise race it on a loaded machine.
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        epbg.ExportServiceStub(ch).ExportPineScript(
            epb.ExportPineScriptRequest(strategy_type="sma_crossover"), metadata=md
        )
        thread.join(30)
        kinds = [n.kind for n in got]
        assert kinds == ["job.succeeded", "export.ready"], kinds
        assert got[0].resource == f"jobs/{job.id}" and "6/6 trials" in got[0].message
        assert got[1].resource.startswith("exports/")
        assert got[1].sequence == got[0].sequence + 1

        again, thread, _ = collect(ch, md, after=got[0].sequence, want=1)
        thread.join(30)
        assert [n.sequence for n in again] == [got[1].sequence]
        assert again[0].kind == "export.ready"

        others, thread, _ = collect(ch, srv.md("analyst"), after=1, want=1)
        thread.join(1.5)
        assert others == []  # notifications are per user


def _export(ch: grpc.Channel, md: list[tuple[str, str]]) -> None:
    """One "export.ready" notification for the caller."""
    epbg.ExportServiceStub(ch).ExportPineScript(
        epb.ExportPineScriptRequest(strategy_type="sma_crossover"), metadata=md
    )


def test_the_list_is_newest_first_paged_and_a_stream_after_it_misses_nothing(
    srv: LiveServer,
) -> None:
    md = srv.md("viewer")  # nobody else writes the viewer's notifications in this module
    with srv.channel() as ch:
        system = spbg.SystemServiceStub(ch)
        empty = system.ListNotifications(spb.ListNotificationsRequest(), metadata=md)
        assert (list(empty.notifications), empty.newest_sequence) == ([], 0)
        for _ in range(5):
            _export(ch, srv.md("trader"))  # the trader's, never listed for the viewer
        admin = srv.md("admin")
        before = system.ListNotifications(spb.ListNotificationsRequest(), metadata=admin)
        for _ in range(5):
            _export(ch, admin)
        pages, token = [], ""
        while True:
            page = system.ListNotifications(
                spb.ListNotificationsRequest(page_size=2, page_token=token), metadata=admin
            )
            pages.append(page)
            if not page.next_page_token:
                break
            token = page.next_page_token
            if len(pages) == 1:
                _export(ch, admin)  # written mid-listing: not on a later page
        listed = [n.sequence for p in pages for n in p.notifications]
        top = before.newest_sequence
        assert listed == list(range(top + 5, 0, -1)), "newest first, each once"
        assert {p.newest_sequence for p in pages} == {top + 5}, "the first page's newest"
        assert all(len(p.notifications) <= 2 for p in pages)

        got, thread, _ = collect(ch, admin, after=pages[0].newest_sequence, want=1)
        thread.join(30)
        assert [n.sequence for n in got] == [top + 6], "the one written while listing"

        viewer = system.ListNotifications(spb.ListNotificationsRequest(), metadata=md)
        assert list(viewer.notifications) == [], "notifications are per user"


def test_a_user_with_none_listed_streams_from_the_first_with_include_stored(
    srv: LiveServer,
) -> None:
    """ListNotifications answers newest_sequence 0 for a user with none; one written before
    the stream opens comes with include_stored, and not with after_sequence 0 alone (only
    new ones)."""
    username, password, _ = new_user(srv, c.ROLE_TRADER, "firsts")  # none stored yet
    md = [("authorization", f"Bearer {login(srv, username, password).access_token}")]
    with srv.channel() as ch:
        system = spbg.SystemServiceStub(ch)
        listed = system.ListNotifications(spb.ListNotificationsRequest(), metadata=md)
        assert listed.newest_sequence == 0
        _export(ch, md)  # between the listing and the stream
        all_of_them, first, _ = collect(ch, md, after=0, want=2, include_stored=True)
        only_new, second, _ = collect(ch, md, after=0, want=1)
        time.sleep(0.5)  # both streams are open
        _export(ch, md)
        first.join(30)
        second.join(30)
        assert [n.sequence for n in all_of_them] == [1, 2]
        assert [n.sequence for n in only_new] == [2]


@pytest.mark.parametrize(
    "request_",
    [
        spb.ListNotificationsRequest(page_size=-1),
        spb.ListNotificationsRequest(page_token="not-a-token"),
    ],
    ids=["negative-page-size", "malformed-token"],
)
def test_bad_list_requests_are_invalid_arguments(
    srv: LiveServer, request_: spb.ListNotificationsRequest
) -> None:
    with srv.channel() as ch, pytest.raises(grpc.RpcError) as e:
        spbg.SystemServiceStub(ch).ListNotifications(request_, metadata=srv.md("trader"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
