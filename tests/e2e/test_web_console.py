"""The web console (web/) in Debian's Chromium, driven by Playwright, against a real server
behind the real Envoy gateway that serves the console's build at `/`.

Every test fails on a console error, an uncaught page error, or an error banner or toast left
on the page. Screenshots at 1280x800 and on a 390-pixel-wide phone go to build/web-screenshots/
(a CI artifact). Playwright never downloads a browser here: it is pointed at /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from stratopt.v1 import auth_pb2 as auth_pb
from stratopt.v1 import auth_pb2_grpc as auth_grpc
from stratopt.v1 import common_pb2 as c_pb
from stratopt.v1 import export_pb2 as exp_pb
from stratopt.v1 import export_pb2_grpc as exp_grpc
from stratopt.v1 import optimization_pb2 as opt_pb
from stratopt.v1 import optimization_pb2_grpc as opt_grpc
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spb_grpc
from stratopt.v1 import system_pb2 as sys_pb
from stratopt.v1 import system_pb2_grpc as sys_grpc

from stratopt.server.gateway import Gateway
from tests.conftest import DEMO_PASSWORDS, ROOT, LiveServer, login
from tests.integration.jobs.helpers import make_dataset
from tests.tools import CHROMIUM, unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Download, Page, Request, Route

pytestmark = pytest.mark.e2e

WEB = ROOT / "web"
DIST = WEB / "dist"
SHOTS = ROOT / "build" / "web-screenshots"
BUNDLE_LIMIT_BYTES = 400 * 1024
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def web_dist() -> Path:
    """The console's build, made (or refreshed) by `make web` like `make serve` does."""
    if shutil.which("npm") is None:
        unavailable("npm is not installed: cannot build the web console")
    subprocess.run(["make", "-s", "web"], cwd=ROOT, check=True, timeout=300)
    assert (DIST / "index.html").is_file()
    return DIST


@pytest.fixture(scope="module")
def console_url(
    web_dist: Path, live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A gateway of its own whose static server serves `web_dist` at `/`."""
    work = tmp_path_factory.mktemp("console-gateway")
    gw = Gateway(
        "127.0.0.1:0", live_server.addr, work, web_dir=web_dist, log_file=work / "envoy.log"
    )
    gw.start()
    yield gw.url
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} missing: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Console:
    """One browser tab on the console, with every console error and page error it saw."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)

    def go(self, route: str) -> None:
        self.page.goto(f"{self.url}/#/{route}")

    def login(self, username: str, password: str | None = None) -> None:
        self.go("login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password or DEMO_PASSWORDS[username])
        self.page.click("[data-testid=login]")
        self.page.wait_for_selector("[data-testid=role]")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def assert_clean(self) -> None:
        """No console or page errors, and nothing on the page that reports a failure."""
        assert self.errors == []
        banners = self.page.locator(".form-error, .toast.error, .field-error")
        texts = [banners.nth(i).inner_text() for i in range(banners.count())]
        assert texts == []


@pytest.fixture()
def console(browser: Browser, console_url: str) -> Iterator[Console]:
    ctx = browser.new_context(
        viewport=DESKTOP,  # type: ignore[arg-type]
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = ctx.new_page()
    c = Console(page, console_url)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            c.errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: c.errors.append(f"pageerror: {exc}"))
    page.set_default_timeout(20_000)
    yield c
    c.assert_clean()
    ctx.close()


PAINTED = """([sel, rgb]) => [...document.querySelectorAll(sel + ' canvas')].some((c) => {
    if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1])
            + Math.abs(d[i + 2] - rgb[2]) < 12) return true;
    }
    return false;
})"""
BLUE = "#1e88e5"  # strategy equity (web/src/charts.ts)
RED = "#ef5350"  # falling candles, drawdown
GREEN = "#26a69a"  # rising candles


def wait_painted(page: Page, selector: str, color: str) -> None:
    """Waits until a canvas under `selector` holds pixels of the series color `color`: the
    data was drawn, not only the axes and grid. Times out, failing the test, otherwise."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    page.wait_for_function(PAINTED, arg=[selector, rgb], timeout=15_000)


def progress_values(page: Page, until: str, timeout: float = 90) -> list[str]:
    """Every distinct text the progress counter shows until it reads `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator("[data-testid=progress]").inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        if text == until:
            return seen
        page.wait_for_timeout(40)
    raise AssertionError(f"progress never read {until}; saw {seen}")


def counted(text: str) -> int:
    done, _, _ = text.partition("/")
    return int(done) if done.isdigit() else -1


def start_job(live_server: LiveServer, dataset_id: str, trials: int) -> str:
    stub = opt_grpc.OptimizationServiceStub(live_server.channel())
    spec = opt_pb.OptimizationSpec(
        strategy_type="sma_crossover", dataset_id=dataset_id, trials=trials, seed=7
    )
    reply: Any = stub.StartOptimization(
        opt_pb.StartOptimizationRequest(spec=spec), metadata=live_server.md("trader")
    )
    return str(reply.job.id)


def test_bundle_gzipped_is_at_most_400_kb(web_dist: Path) -> None:
    files = [p for p in web_dist.rglob("*") if p.is_file() and p.suffix in {".js", ".css", ".html"}]
    assert any(p.suffix == ".js" for p in files)
    total = sum(len(gzip.compress(p.read_bytes(), compresslevel=9)) for p in files)
    assert total <= BUNDLE_LIMIT_BYTES, f"{total} bytes gzipped"


def test_login_rotates_the_refresh_token_and_logout_ends_the_session(console: Console) -> None:
    page = console.page
    console.go("datasets")
    page.wait_for_selector("[data-testid=login-form]")  # signed out: the login page
    # A wrong password is refused beside the form, and leaves no session behind.
    page.fill("input[name=username]", "trader")
    page.fill("input[name=password]", "not-the-password")
    page.click("[data-testid=login]")
    page.wait_for_selector(".form-error")
    assert page.evaluate("localStorage.getItem('stratopt.refreshToken')") is None
    page.locator(".form-error").evaluate("e => e.remove()")

    console.login("trader")
    assert page.locator("[data-testid=role]").inner_text() == "trader"
    assert page.url.endswith("#/datasets")
    first = page.evaluate("localStorage.getItem('stratopt.refreshToken')")
    assert first
    # A reload resumes the session by refreshing, which rotates the refresh token.
    page.reload()
    page.wait_for_selector("[data-testid=role]")
    page.wait_for_function("(t) => localStorage.getItem('stratopt.refreshToken') !== t", arg=first)
    assert page.evaluate("localStorage.getItem('stratopt.refreshToken')")

    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-form]")
    assert page.evaluate("localStorage.getItem('stratopt.refreshToken')") is None
    page.reload()
    page.wait_for_selector("[data-testid=login-form]")


def test_two_tabs_refreshing_at_once_take_turns(console: Console) -> None:
    """Both tabs find their access token refused at the same moment and refresh. The tabs
    share one refresh token, which is good for one use: presented twice, the server ends
    the session. Each refresh is held for a second: a second tab that did not wait its
    turn would send the same token meanwhile."""
    page = console.page
    console.login("trader")
    other = page.context.new_page()
    other_errors: list[str] = []
    other.on("console", lambda m: other_errors.append(m.text) if m.type == "error" else None)
    other.goto(f"{console.url}/#/datasets")
    other.wait_for_selector("[data-testid=role]")
    held: list[Route] = []
    bodies: list[bytes] = []

    def hold(route: Route) -> None:
        bodies.append(route.request.post_data_buffer or b"")
        held.append(route)

    for tab in (page, other):
        tab.route("**/stratopt.v1.AuthService/RefreshToken", hold)
    for tab in (page, other):
        tab.evaluate(
            "() => { sessionStorage.setItem('stratopt.accessToken', 'x.y.z');"
            " setTimeout(() => location.reload(), 0); }"
        )
    start = time.monotonic()
    while (len(bodies) < 2 or held) and time.monotonic() - start < 15:
        page.wait_for_timeout(100)
        if held and time.monotonic() - start > 1.0 * len(bodies):
            held.pop(0).continue_()
    assert len(bodies) == 2, "each tab refreshed once"
    assert bodies[0] != bodies[1], "the second tab used the token the first one stored"
    for tab in (page, other):
        tab.wait_for_selector("[data-testid=role]")
    assert other_errors == []
    other.close()


def test_generate_a_dataset_and_preview_its_candles(console: Console) -> None:
    page = console.page
    console.login("trader")
    name = f"web-gen-{time.time_ns()}"
    # A server-side validation error lands beside the field it names.
    page.fill("[data-testid=generate-form] input[name=name]", name)
    page.fill("[data-testid=generate-form] input[name=bar_count]", "-5")
    page.click("[data-testid=generate]")
    err = page.locator("[data-testid=generate-form] .field-error")
    err.wait_for()
    assert err.get_attribute("data-error-for") == "bar_count"
    assert page.locator("[data-field=bar_count][aria-invalid=true]").count() == 1

    page.fill("[data-testid=generate-form] input[name=bar_count]", "1500")
    page.click("[data-testid=generate]")
    page.wait_for_selector(f"[data-dataset='{name}']")
    page.wait_for_function("() => location.hash.startsWith('#/datasets/')")
    wait_painted(page, "[data-testid=dataset-chart]", GREEN)
    wait_painted(page, "[data-testid=dataset-chart]", RED)
    console.shot("datasets-desktop")


def upload(page: Page, csv: Path, symbol: str) -> None:
    """Imports `csv` through the datasets page's upload form; waits for it in the list."""
    name = f"web-{symbol.lower()}-{time.time_ns()}"
    form = "[data-testid=upload-form]"
    page.set_input_files(f"{form} input[name=file]", str(csv))
    page.fill(f"{form} input[name=name]", name)
    page.fill(f"{form} input[name=symbol]", symbol)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f"[data-dataset='{name}']")


def test_import_a_csv_file_over_rest(console: Console, tmp_path: Path) -> None:
    rows = ["time,open,high,low,close,volume"]
    for i in range(120):
        price = 100 + (i % 17) - (i % 5)
        stamp = f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z"
        rows.append(f"{stamp},{price},{price + 2},{price - 2},{price + 1},{10 + i}")
    csv = tmp_path / "bars.csv"
    csv.write_text("\n".join(rows) + "\n")
    page = console.page
    console.login("trader")
    upload(page, csv, "CSVX")
    page.wait_for_function("() => location.hash.startsWith('#/datasets/')")
    page.wait_for_selector("text=120 bars; the first 120 shown.")


def test_an_upload_refused_for_its_token_is_sent_again_after_a_refresh(
    console: Console, tmp_path: Path
) -> None:
    """The server refuses the first upload's token for real (the request's token is swapped
    for an invalid one on the way); the console refreshes the session and sends it again."""
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "time,open,high,low,close,volume\n"
        + "".join(f"2024-02-01T{h:02d}:00:00Z,10,11,9,10.5,{h + 1}\n" for h in range(24))
    )
    page = console.page
    console.login("trader")
    tokens: list[str] = []

    def expire_the_first(route: Route) -> None:
        tokens.append(route.request.headers.get("authorization", ""))
        if len(tokens) == 1:
            route.continue_(headers={**route.request.headers, "authorization": "Bearer x.y.z"})
        else:
            route.continue_()

    page.route("**/v1/datasets:import", expire_the_first)
    upload(page, csv, "RTRY")
    assert len(tokens) == 2 and tokens[1].startswith("Bearer ") and tokens[1] != tokens[0], (
        "sent again once, with the refreshed access token"
    )
    # Chromium logs the refused request itself; that one error is the point of the test.
    refused = [e for e in console.errors if "401" in e]
    assert len(refused) == 1, console.errors
    console.errors.remove(refused[0])


def test_leaving_a_page_mid_read_reports_nothing(console: Console, live_server: LiveServer) -> None:
    """A page's reads end with it. The read the user walked away from must not come back as
    a "Canceled" error on the next page."""
    dataset_id = make_dataset(live_server.channel(), live_server.md("trader"), bars=300, seed=16)
    page = console.page
    console.login("trader")
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/stratopt.v1.MarketDataService/ReadBars", hold)
    console.go(f"datasets/{dataset_id}")
    start = time.monotonic()
    while not held and time.monotonic() - start < 15:
        page.wait_for_timeout(50)
    assert held, "the preview's read was sent"
    console.go("strategies")
    page.wait_for_selector("text=Type library")
    page.wait_for_timeout(500)
    assert page.locator(".toast.error").count() == 0
    page.unroute("**/stratopt.v1.MarketDataService/ReadBars")


def test_backtest_draws_equity_drawdown_and_trades(
    console: Console, live_server: LiveServer
) -> None:
    dataset_id = make_dataset(live_server.channel(), live_server.md("trader"), bars=1500, seed=11)
    page = console.page
    console.login("trader")
    console.go(f"backtest?dataset={dataset_id}")
    page.select_option("[data-testid=backtest-form] select[name=strategy]", "t:sma_crossover")
    page.fill("[data-testid=backtest-form] input[name=commission]", "0.001")
    page.click("[data-testid=run-backtest]")
    page.wait_for_function("() => /^#\\/backtest\\/[^/?]+$/.test(location.hash)")
    page.wait_for_selector("[data-testid=trades] tbody tr")
    for chart, color in (("equity", BLUE), ("drawdown", RED), ("candles", GREEN)):
        wait_painted(page, f"[data-testid={chart}]", color)
    metrics = page.locator("[data-testid=metrics]").inner_text()
    assert "Total return" in metrics and "Buy & hold" in metrics
    console.shot("backtest-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    wait_painted(page, "[data-testid=equity]", BLUE)
    console.shot("backtest-phone")


def test_optimization_progress_arrives_live_to_200_of_200(
    console: Console, live_server: LiveServer
) -> None:
    dataset_id = make_dataset(live_server.channel(), live_server.md("trader"), bars=3000, seed=12)
    page = console.page
    console.login("trader")
    console.go("optimize")
    form = "[data-testid=optimize-form]"
    page.select_option(f"{form} select[name=strategy]", "t:sma_crossover")
    page.select_option(f"{form} select[name=dataset_id]", dataset_id)
    page.fill(f"{form} input[name=trials]", "200")
    page.fill(f"{form} input[name=seed]", "3")
    # A range the server refuses is reported beside the control that set it.
    page.click(f"{form} summary:has-text('Search space')")
    page.fill(f"{form} input[name='fast.min']", "60")
    page.fill(f"{form} input[name='fast.max']", "10")
    page.click("[data-testid=start-optimization]")
    err = page.locator(f"{form} .field-error")
    err.first.wait_for()
    assert (err.first.get_attribute("data-error-for") or "").startswith("spec.search_space[")
    page.fill(f"{form} input[name='fast.min']", "2")
    page.fill(f"{form} input[name='fast.max']", "40")
    page.click("[data-testid=start-optimization]")
    page.wait_for_function("() => /^#\\/optimize\\/[^/?]+$/.test(location.hash)")
    seen = progress_values(page, "200/200")
    # Live: the counter moved through values between the start and the end, without a reload.
    middle = [s for s in seen if 0 < counted(s) < 200]
    assert middle, seen
    assert [counted(s) for s in seen] == sorted(counted(s) for s in seen)
    page.wait_for_selector("[data-testid=importances] .bar-row")
    page.wait_for_selector("[data-testid=heatmap] canvas")
    assert page.locator("[data-testid=job-state]").inner_text() == "succeeded"
    assert float(page.locator("[data-testid=rate]").inner_text().replace(",", "")) > 0
    console.shot("optimize-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.wait_for_timeout(200)
    console.shot("optimize-phone")


def test_reload_mid_job_resumes_the_progress(console: Console, live_server: LiveServer) -> None:
    dataset_id = make_dataset(live_server.channel(), live_server.md("trader"), bars=3000, seed=13)
    page = console.page
    console.login("trader")
    job_id = start_job(live_server, dataset_id, trials=200)
    console.go(f"optimize/{job_id}")
    page.wait_for_function(
        "() => { const n = parseInt(document.querySelector('[data-testid=progress]')"
        "?.textContent ?? ''); return n > 0; }",
        timeout=60_000,  # a busy queue may hold the job back a while
    )
    before = counted(page.locator("[data-testid=progress]").inner_text())
    assert 0 < before < 200  # mid-job
    page.reload()
    # The snapshot that opens the stream puts the counter back at once, never below.
    page.wait_for_function(
        "() => /^\\d+\\/200$/.test(document.querySelector('[data-testid=progress]')"
        "?.textContent ?? '')"
    )
    after = counted(page.locator("[data-testid=progress]").inner_text())
    assert after >= before
    progress_values(page, "200/200")


def test_live_strategy_streams_signals_and_equity(
    console: Console, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    dataset_id = make_dataset(live_server.channel(), md, bars=2000, seed=14)
    stub = spb_grpc.StrategyServiceStub(live_server.channel())
    fast_slow = {"fast": c_pb.ParameterValue(int_value=3), "slow": c_pb.ParameterValue(int_value=8)}
    strategy = spb.Strategy(
        name=f"web-live-{time.time_ns()}", strategy_type="sma_crossover", parameters=fast_slow
    )
    strategy_id = stub.CreateStrategy(
        spb.CreateStrategyRequest(strategy=strategy), metadata=md
    ).strategy.id
    page = console.page
    console.login("trader")
    console.go("live")
    page.select_option("select[name=strategy_id]", strategy_id)
    page.select_option("select[name=dataset_id]", dataset_id)
    page.fill("input[name=bars_per_second]", "100")
    try:
        page.click("[data-testid=start-live]")
        page.wait_for_function(f"() => location.hash === '#/live/{strategy_id}'")
        # Signals arrive over the stream while the page is open, and the equity line grows.
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=signals] tbody tr').length >= 2"
        )
        wait_painted(page, "[data-testid=live-equity]", BLUE)
        console.shot("live-desktop")
        page.click("[data-testid=stop]")
        page.wait_for_function("() => location.hash === '#/live'")
        page.wait_for_selector("text=Running strategies")
        # In the page's list (a notification's toast may link to it too).
        assert page.locator(f"#page a[href='#/live/{strategy_id}']").count() == 0
    finally:
        # Stopped by the page already, unless the test failed before.
        with contextlib.suppress(grpc.RpcError):
            stub.StopStrategy(spb.StopStrategyRequest(strategy_id=strategy_id), metadata=md)


def test_pine_script_is_copied_to_the_clipboard(console: Console) -> None:
    page = console.page
    console.login("trader")
    console.go("strategies/new/sma_crossover")
    name = f"web-pine-{time.time_ns()}"
    page.fill("[data-testid=strategy-form] input[name=name]", name)
    page.click("[data-testid=save-strategy]")
    page.wait_for_function("() => /^#\\/strategies\\/[^/]+$/.test(location.hash)")
    strategy_id = page.evaluate("location.hash.split('/')[2]")
    console.go(f"exports?strategy={strategy_id}")
    page.click("[data-testid=export-pine]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=pine-script]').value.length > 0"
    )
    script = page.locator("[data-testid=pine-script]").input_value()
    assert "strategy(" in script
    page.click("[data-testid=copy-pine]")
    page.wait_for_selector(".toast:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == script
    with page.expect_download() as download:
        page.click("[data-testid=download-pine]")
    assert download.value.suggested_filename.endswith(".pine")


def test_strategy_create_edit_and_share(console: Console) -> None:
    page = console.page
    console.login("trader")
    console.go("strategies")
    page.click("[data-type=sma_crossover] a.button")
    form = "[data-testid=strategy-form]"
    # The parameter form comes from the type's ParameterSpec list.
    page.locator(f"{form} [data-field='strategy.parameters.fast']").wait_for()
    assert page.locator(f"{form} [data-field='strategy.parameters.slow']").count() == 1
    page.fill(f"{form} input[name=name]", "")
    page.click("[data-testid=save-strategy]")
    err = page.locator(f"{form} .field-error")
    err.first.wait_for()
    assert "strategy.name" in [
        err.nth(i).get_attribute("data-error-for") for i in range(err.count())
    ]
    name = f"web-edit-{time.time_ns()}"
    page.fill(f"{form} input[name=name]", name)
    page.fill(f"{form} input[name=fast]", "7")
    page.click("[data-testid=save-strategy]")
    page.wait_for_function("() => /^#\\/strategies\\/[^/]+$/.test(location.hash)")
    page.wait_for_selector("text=version 1")
    page.fill(f"{form} input[name=description]", "edited in the console")
    page.click("[data-testid=save-strategy]")
    page.wait_for_selector("text=version 2")
    assert page.locator(f"{form} input[name=fast]").input_value() == "7"
    page.fill("input[name=username]", "analyst")
    page.click("button:text-is('Share')")
    page.wait_for_selector("td:has-text('analyst')")
    page.click("button:has-text('Unshare')")
    page.wait_for_selector("text=Not shared.")


def open_reports_of_a_backtest(console: Console, live_server: LiveServer, bars: int) -> Page:
    """Signs in as trader, runs a backtest on a new dataset and follows its report link."""
    dataset_id = make_dataset(live_server.channel(), live_server.md("trader"), bars=bars, seed=15)
    page = console.page
    console.login("trader")
    console.go(f"backtest?dataset={dataset_id}")
    page.select_option("[data-testid=backtest-form] select[name=strategy]", "t:sma_crossover")
    page.click("[data-testid=run-backtest]")
    page.wait_for_function("() => /^#\\/backtest\\/[^/?]+$/.test(location.hash)")
    page.click("a:has-text('report')")
    return page


def create_and_download(page: Page, extension: str) -> Download:
    page.click("text=Create report")
    row = page.locator(f"[data-testid=export-files] tr:has-text('{extension}')")
    row.first.wait_for()
    with page.expect_download() as download:
        row.first.locator("button:has-text('Download')").click()
    return download.value


def test_report_is_created_and_listed(console: Console, live_server: LiveServer) -> None:
    page = open_reports_of_a_backtest(console, live_server, bars=800)
    page.select_option("select[name=format]", label="html")
    assert create_and_download(page, ".html").suggested_filename.endswith(".html")


def test_a_csv_report_of_the_equity_by_bar(console: Console, live_server: LiveServer) -> None:
    """CSV reports ask which table: a backtest's trades or its equity by bar."""
    page = open_reports_of_a_backtest(console, live_server, bars=600)
    assert not page.locator("select[name=csv_table]").is_visible(), "only CSV reports have tables"
    page.select_option("select[name=format]", label="csv")
    page.select_option("select[name=csv_table]", label="equity by bar")
    lines = Path(create_and_download(page, ".csv").path()).read_text().splitlines()
    assert lines[0].startswith("time,equity,drawdown"), lines[0]
    assert len(lines) == 601, "one row per bar"


def test_viewer_sees_no_write_buttons(console: Console) -> None:
    page = console.page
    console.login("viewer")
    assert page.locator("[data-testid=role]").inner_text() == "viewer"
    page.wait_for_selector("[data-testid=dataset-list] table, [data-testid=dataset-list] p")
    write_controls = (
        "[data-testid=generate], [data-testid=upload-form], [data-testid=run-backtest], "
        "[data-testid=start-optimization], [data-testid=export-pine], "
        "[data-testid=save-strategy], a.button"
    )
    assert page.locator(write_controls).count() == 0
    for route, ready in [
        ("strategies", "text=Type library"),
        ("backtest", "text=Recent backtests"),
        ("optimize", "text=Recent jobs"),
        ("live", "text=Running strategies"),
        ("exports", "text=Your role cannot export"),
    ]:
        console.go(route)
        page.wait_for_selector(ready)
        assert page.locator(write_controls).count() == 0, route
        assert page.locator("form").count() == 0, route
    console.shot("viewer-desktop")
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    console.go("strategies")
    page.wait_for_selector("text=Type library")
    console.shot("viewer-phone")


# -- notifications ---------------------------------------------------------------------------

NOTIFICATION_STREAM = "**/stratopt.v1.SystemService/StreamNotifications"
TOAST = "[data-testid=notification-toast]"
COUNT = "[data-testid=notification-count]"
PAST_A_POLL_MS = 1500  # a notification stream polls storage every second (live/notify.py)


Metadata = list[tuple[str, str]]


def trader_streams(
    live_server: LiveServer, username: str = "trader", md: Metadata | None = None
) -> int:
    """The server streams trader (or `username`, or the caller of `md`) has open
    (GetOverview counts the caller's)."""
    with live_server.channel() as ch:
        reply: Any = sys_grpc.SystemServiceStub(ch).GetOverview(
            sys_pb.GetOverviewRequest(), metadata=md or live_server.md(username)
        )
    return int(reply.open_stream_count)


def wait_trader_streams(
    live_server: LiveServer,
    n: int,
    timeout: float = 15,
    username: str = "trader",
    md: Metadata | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while (seen := trader_streams(live_server, username, md)) != n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{username} has {seen} streams open, not {n}")
        time.sleep(0.1)


def notify_trader(live_server: LiveServer, md: Metadata | None = None) -> str:
    """A notification for trader (or the caller of `md`) written by the server: a Pine
    Script export says "Export ready: <file>" (services/exports.py). Returns the file's name."""
    with live_server.channel() as ch:
        reply: Any = exp_grpc.ExportServiceStub(ch).ExportPineScript(
            exp_pb.ExportPineScriptRequest(
                strategy_type="sma_crossover", title=f"web-note-{time.time_ns()}"
            ),
            metadata=md or live_server.md("trader"),
        )
    return str(reply.file.file_name)


def stored_notifications(live_server: LiveServer, md: Metadata | None = None) -> Any:
    """The newest page of trader's (or `md`'s caller's) stored notifications."""
    with live_server.channel() as ch:
        return sys_grpc.SystemServiceStub(ch).ListNotifications(
            sys_pb.ListNotificationsRequest(page_size=50),
            metadata=md or live_server.md("trader"),
        )


def sequence_of(live_server: LiveServer, file_name: str, md: Metadata | None = None) -> int:
    """The sequence of the notification about `file_name`, from the stored ones."""
    found = [
        n.sequence
        for n in stored_notifications(live_server, md).notifications
        if file_name in n.title
    ]
    assert len(found) == 1, file_name
    return int(found[0])


def new_trader(live_server: LiveServer) -> tuple[str, str, Metadata]:
    """A trader created for the test (by the demo admin): no notification stored yet.
    Returns its username, password and call metadata."""
    username = f"web-{time.time_ns()}"
    password = f"correct horse battery {time.time_ns() % 1_000_000}"
    with live_server.channel() as ch:
        auth_grpc.AuthServiceStub(ch).CreateUser(
            auth_pb.CreateUserRequest(
                user=auth_pb.User(username=username, role=c_pb.ROLE_TRADER), password=password
            ),
            metadata=live_server.md("admin"),
        )
    token = login(live_server.addr, username, password)
    return username, password, [("authorization", f"Bearer {token}")]


def held_request(route: Route) -> sys_pb.StreamNotificationsRequest:
    """A held StreamNotifications request (one gRPC-Web frame)."""
    body = route.request.post_data_buffer or b""
    return sys_pb.StreamNotificationsRequest.FromString(body[5:])


def held_after_sequence(route: Route) -> int:
    return int(held_request(route).after_sequence)


def wait_held(held: list[Route], page: Page, timeout: float = 20) -> Route:
    deadline = time.monotonic() + timeout
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "no StreamNotifications request"
    return held[0]


def menu_entries(page: Page) -> list[tuple[str, bool]]:
    """The open bell menu's entries, in order: (their text, whether marked unread)."""
    entries = page.locator("[data-testid=notification]")
    return [
        (
            entries.nth(i).inner_text(),
            "unread" in (entries.nth(i).get_attribute("class") or "").split(),
        )
        for i in range(entries.count())
    ]


def sign_in_with_the_feed_open(console: Console, live_server: LiveServer) -> None:
    """Signs in as trader and waits until the server holds the console's notification
    stream. The console lists what is stored (history, no toasts) before it subscribes after
    the newest listed, so a notification the test writes from then on is a new one. The
    server sends nothing (not even headers) before the first one, so the server's count of
    trader's streams (none before: earlier tests' tabs are closed) is what says so."""
    wait_trader_streams(live_server, 0)
    console.login("trader")
    wait_trader_streams(live_server, 1)
    # The stream reads the user's last sequence right after it is counted.
    console.page.wait_for_timeout(200)


def another_tab(console: Console) -> Console:
    """A second tab in the console's browser context: the same profile (storage, Web Locks,
    BroadcastChannels), so it shares the session. Not yet on any page."""
    tab = Console(console.page.context.new_page(), console.url)
    tab.page.on(
        "console", lambda m: tab.errors.append(f"console: {m.text}") if m.type == "error" else None
    )
    tab.page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    tab.page.set_default_timeout(20_000)
    return tab


def wait_requests(seen: list[Request], n: int, page: Page, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(seen) >= n, [r.url for r in seen]


def stream_requests(page: Page) -> list[Request]:
    """Every StreamNotifications request the tab sends from now on."""
    seen: list[Request] = []
    page.on(
        "request",
        lambda r: seen.append(r) if r.url.endswith(".SystemService/StreamNotifications") else None,
    )
    return seen


def test_a_notification_is_a_toast_and_a_bell_entry_linking_to_its_page(
    console: Console, live_server: LiveServer
) -> None:
    page = console.page
    sign_in_with_the_feed_open(console, live_server)
    bell = page.locator("[data-testid=notifications]")
    assert bell.get_attribute("aria-expanded") == "false"
    assert not page.locator(COUNT).is_visible()

    file_name = notify_trader(live_server)
    toast = page.locator(TOAST)
    toast.wait_for()
    assert f"Export ready: {file_name}" in toast.inner_text()
    assert toast.get_attribute("role") == "status"  # an info notification
    assert toast.locator("a").get_attribute("href") == "#/exports"
    assert page.locator(COUNT).inner_text() == "1"
    assert bell.get_attribute("aria-label") == "Notifications, 1 unread"

    bell.click()
    assert bell.get_attribute("aria-expanded") == "true"
    entries = page.locator("[data-testid=notification]")
    shown = menu_entries(page)
    assert f"Export ready: {file_name}" in shown[0][0]
    # Marked while the menu is open; below it what was stored before the sign-in, read.
    assert [unread for _, unread in shown] == [True] + [False] * (len(shown) - 1)
    assert not page.locator(COUNT).is_visible(), "opening the menu read it"
    console.shot("notifications-desktop")
    entries.first.locator("a").click()
    page.wait_for_function("() => location.hash === '#/exports'")
    page.wait_for_selector(f"[data-testid=export-files] td:text-is('{file_name}')")
    assert bell.get_attribute("aria-expanded") == "false", "following a link closes the menu"
    assert not page.locator(COUNT).is_visible()
    # On the page a notification is about, the page shows it: the list gets the file, and
    # there is no toast and nothing unread.
    second = notify_trader(live_server)
    page.wait_for_selector(f"[data-testid=export-files] td:text-is('{second}')")
    assert page.locator(f"{TOAST}:has-text('{second}')").count() == 0
    assert not page.locator(COUNT).is_visible()

    # On a phone the menu fits the screen, and Escape closes it.
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    bell.click()
    menu = page.locator("#notification-menu")
    menu.wait_for()
    box = menu.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    console.shot("notifications-phone")
    page.keyboard.press("Escape")
    assert menu.is_hidden()
    assert bell.get_attribute("aria-expanded") == "false"


def test_one_notification_stream_outlives_page_changes_and_ends_at_logout(
    console: Console, live_server: LiveServer
) -> None:
    page = console.page
    opened = stream_requests(page)
    sign_in_with_the_feed_open(console, live_server)
    for route, ready in [
        ("strategies", "text=Type library"),
        ("optimize", "text=Recent jobs"),
        ("backtest", "text=Recent backtests"),
        ("exports", "[data-testid=export-files]"),
        ("datasets", "[data-testid=dataset-list]"),
    ]:
        console.go(route)
        page.wait_for_selector(ready)
    file_name = notify_trader(live_server)
    page.locator(TOAST).wait_for()
    # Pages change while it is shown; a second stream would deliver it again within its poll.
    console.go("strategies")
    page.wait_for_selector("text=Type library")
    console.go("datasets")
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 1
    assert file_name in page.locator(TOAST).inner_text()
    assert page.locator(COUNT).inner_text() == "1"
    assert len(opened) == 1, [r.url for r in opened]
    assert trader_streams(live_server) == 1

    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-form]")
    wait_trader_streams(live_server, 0)
    assert page.evaluate("sessionStorage.getItem('stratopt.notifications')") is None


def test_a_reload_does_not_show_a_notification_again_and_misses_none(
    console: Console, live_server: LiveServer
) -> None:
    page = console.page
    sign_in_with_the_feed_open(console, live_server)
    first = notify_trader(live_server)
    page.locator(TOAST).wait_for()

    page.reload()
    page.wait_for_selector("[data-testid=role]")
    wait_trader_streams(live_server, 1)
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 0, "not new again"
    assert page.locator(COUNT).inner_text() == "1", "still listed, still unread"

    # Written while the tab is elsewhere: it comes, once, when the tab is back.
    page.goto("about:blank")
    wait_trader_streams(live_server, 0)
    second = notify_trader(live_server)
    console.go("strategies")
    page.locator(TOAST).wait_for()
    assert second in page.locator(TOAST).inner_text()
    assert page.locator(COUNT).inner_text() == "2"
    page.click("[data-testid=notifications]")
    shown = menu_entries(page)
    assert second in shown[0][0], "newest first"
    assert first in shown[1][0]
    assert [unread for _, unread in shown] == [True, True] + [False] * (len(shown) - 2)
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 1


def test_a_refused_or_broken_notification_stream_is_opened_again(
    console: Console, live_server: LiveServer
) -> None:
    """The first subscription fails on the network, the second is refused for its token
    (the server refuses it for real: the token is swapped for an invalid one on the way);
    the console refreshes the session and subscribes a third time, which delivers."""
    page = console.page
    tokens: list[str] = []
    refreshes: list[Request] = []
    page.on(
        "request",
        lambda r: refreshes.append(r) if r.url.endswith(".AuthService/RefreshToken") else None,
    )

    def break_then_refuse(route: Route) -> None:
        tokens.append(route.request.headers.get("authorization", ""))
        if len(tokens) == 1:
            route.abort()
        elif len(tokens) == 2:
            route.continue_(headers={**route.request.headers, "authorization": "Bearer x.y.z"})
        else:
            route.continue_()

    page.route(NOTIFICATION_STREAM, break_then_refuse)
    wait_trader_streams(live_server, 0)
    console.login("trader")
    deadline = time.monotonic() + 20
    while len(tokens) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(tokens) == 3, tokens
    assert len(refreshes) == 1, "one refresh, after the refusal"
    assert tokens[2].startswith("Bearer ") and tokens[2] != tokens[0], "the refreshed token"
    wait_trader_streams(live_server, 1)
    page.wait_for_timeout(200)
    file_name = notify_trader(live_server)
    page.locator(TOAST).wait_for()
    assert file_name in page.locator(TOAST).inner_text()
    page.unroute(NOTIFICATION_STREAM)
    # Chromium logs the request that failed on the network; that one error is the point.
    failed = [e for e in console.errors if "ERR_FAILED" in e]
    assert len(failed) == 1, console.errors
    console.errors.remove(failed[0])


def toasts_of(page: Page, file_name: str) -> int:
    return page.locator(f"{TOAST}:has-text('{file_name}')").count()


def test_the_tabs_of_a_user_share_one_notification_stream(
    console: Console, live_server: LiveServer
) -> None:
    """Over HTTP/1.1 each open stream holds one of the browser's six connections to the
    gateway: the tabs of a user share one stream, run by the tab holding a Web Lock, which
    passes each notification on to the others. When it closes, another takes over after the
    last notification seen; a sign-out in any tab ends it."""
    page = console.page
    sign_in_with_the_feed_open(console, live_server)  # the first tab leads
    other = another_tab(console)
    other_opened = stream_requests(other.page)
    other.go("datasets")
    other.page.wait_for_selector("[data-testid=dataset-list]")
    other.page.wait_for_timeout(PAST_A_POLL_MS)  # time to open a stream of its own (it must not)
    assert other_opened == []
    assert trader_streams(live_server) == 1, "one stream between the two tabs"

    # One notification: a toast in each tab, once.
    first = notify_trader(live_server)
    for tab in (page, other.page):
        tab.locator(f"{TOAST}:has-text('{first}')").wait_for()
    page.wait_for_timeout(PAST_A_POLL_MS)
    for tab in (page, other.page):
        assert toasts_of(tab, first) == 1
        assert tab.locator(COUNT).inner_text() == "1"

    # The leader closes: the other tab takes over, after the last sequence any tab saw. Its
    # subscription is held until a notification has been written meanwhile, which it then
    # gets from storage; one written after the takeover comes live. Each once.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    other.page.route(NOTIFICATION_STREAM, hold)
    console.assert_clean()
    page.close()
    console.page, console.errors = other.page, other.errors  # the fixture checks this one now
    wait_requests(other_opened, 1, other.page)
    meanwhile = notify_trader(live_server)
    while not held:
        other.page.wait_for_timeout(50)
    held[0].continue_()
    other.page.unroute(NOTIFICATION_STREAM)
    wait_trader_streams(live_server, 1)
    other.page.locator(f"{TOAST}:has-text('{meanwhile}')").wait_for()
    other.page.wait_for_timeout(200)
    after = notify_trader(live_server)
    other.page.locator(f"{TOAST}:has-text('{after}')").wait_for()
    other.page.wait_for_timeout(PAST_A_POLL_MS)
    assert toasts_of(other.page, meanwhile) == 1
    assert toasts_of(other.page, after) == 1
    assert other.page.locator(COUNT).inner_text() == "3"
    assert len(other_opened) == 1, [r.url for r in other_opened]
    assert trader_streams(live_server) == 1

    # Log out in a tab that follows: every tab signs out, and the leader's stream ends.
    third = another_tab(console)
    third_opened = stream_requests(third.page)
    third.go("strategies")
    third.page.wait_for_selector("text=Type library")
    third.page.click("[data-testid=logout]")
    third.page.wait_for_selector("[data-testid=login-form]")
    other.page.wait_for_selector("[data-testid=login-form]")
    wait_trader_streams(live_server, 0)
    assert third_opened == []
    # The tabs' menus are forgotten; only trader's last sequence stays, for the next sign-in.
    keys = other.page.evaluate("Object.keys(localStorage)")
    kept = [k for k in keys if k.startswith("stratopt.notifications")]
    assert len(kept) == 1 and kept[0].startswith("stratopt.notifications."), keys
    assert other.page.evaluate(f"localStorage.getItem('{kept[0]}')") == str(
        sequence_of(live_server, after)
    )
    assert other.page.evaluate("sessionStorage.getItem('stratopt.notifications')") is None
    third.assert_clean()


def test_a_tab_signed_in_as_another_user_gets_none_of_its_notifications(
    console: Console, live_server: LiveServer
) -> None:
    """The lock, the channel's messages and the stored sequence are the user's: a tab of the
    same browser signed in as viewer runs viewer's stream and shows none of trader's."""
    page = console.page
    sign_in_with_the_feed_open(console, live_server)
    wait_trader_streams(live_server, 0, username="viewer")
    other = another_tab(console)
    other.login("viewer")
    wait_trader_streams(live_server, 1, username="viewer")
    assert trader_streams(live_server) == 1
    file_name = notify_trader(live_server)
    page.locator(f"{TOAST}:has-text('{file_name}')").wait_for()
    other.page.wait_for_timeout(PAST_A_POLL_MS)
    assert other.page.locator(TOAST).count() == 0
    assert not other.page.locator(COUNT).is_visible()
    other.assert_clean()
    other.page.close()


SUMMARY = "[data-testid=notification-summary]"


def test_stored_notifications_are_history_and_those_written_while_away_unread(
    console: Console, live_server: LiveServer
) -> None:
    """At sign-in the bell lists what is stored: newest first, read, and no toasts. After a
    sign-out, those written meanwhile are unread, summed up in one toast, and the stream goes
    on after them."""
    page = console.page
    username, password, md = new_trader(live_server)
    files = [notify_trader(live_server, md) for _ in range(3)]
    console.login(username, password)
    wait_trader_streams(live_server, 1, md=md)
    bell = page.locator("[data-testid=notifications]")
    bell.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=notification]').length === 3")
    shown = menu_entries(page)
    for (text, unread), name in zip(shown, reversed(files), strict=True):
        assert name in text and not unread
    entries = page.locator("[data-testid=notification]")
    assert [entries.nth(i).get_attribute("data-sequence") for i in range(3)] == ["3", "2", "1"]
    page.keyboard.press("Escape")
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 0, "history is no news"
    assert page.locator(SUMMARY).count() == 0
    assert not page.locator(COUNT).is_visible()

    # Written while signed out: unread at the next sign-in, with one toast for both.
    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-form]")
    wait_trader_streams(live_server, 0, md=md)
    away = [notify_trader(live_server, md) for _ in range(2)]
    console.login(username, password)
    page.locator(SUMMARY).wait_for()
    assert "2 notifications while you were away" in page.locator(SUMMARY).inner_text()
    assert page.locator(COUNT).inner_text() == "2"
    wait_trader_streams(live_server, 1, md=md)
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 0, "no toast of each"
    bell.click()
    shown = menu_entries(page)
    expected = [*reversed(away), *reversed(files)]
    assert len(shown) == len(expected)
    for (text, unread), name in zip(shown, expected, strict=True):
        assert name in text and unread == (name in away), shown
    page.keyboard.press("Escape")

    # The stream continues after the newest listed: a new one is a toast, once.
    live = notify_trader(live_server, md)
    page.locator(f"{TOAST}:has-text('{live}')").wait_for()
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert page.locator(TOAST).count() == 1
    assert page.locator(COUNT).inner_text() == "1"


def test_a_first_sign_in_streams_notifications_after_the_listing(
    console: Console, live_server: LiveServer
) -> None:
    """With nothing stored in the browser the console lists trader's notifications, then
    subscribes after the newest listed, not for new ones only (after_sequence 0): one written
    after the listing but before the stream opens arrives, once."""
    page = console.page
    stored = notify_trader(live_server)  # trader has one at least
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(NOTIFICATION_STREAM, hold)
    wait_trader_streams(live_server, 0)
    console.login("trader")
    request = wait_held(held, page)
    assert held_after_sequence(request) >= sequence_of(live_server, stored) > 0
    meanwhile = notify_trader(live_server)
    request.continue_()
    page.unroute(NOTIFICATION_STREAM)
    page.locator(f"{TOAST}:has-text('{meanwhile}')").wait_for()
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert toasts_of(page, meanwhile) == 1
    assert toasts_of(page, stored) == 0, "listed before: history"
    assert page.locator(COUNT).inner_text() == "1"
    page.click("[data-testid=notifications]")
    shown = menu_entries(page)
    assert meanwhile in shown[0][0] and shown[0][1]
    old = [unread for text, unread in shown if stored in text]
    assert old == [False]
    keys = page.evaluate("Object.keys(localStorage)")
    kept = [k for k in keys if k.startswith("stratopt.notifications.")]
    assert len(kept) == 1, keys
    assert page.evaluate(f"localStorage.getItem('{kept[0]}')") == str(
        sequence_of(live_server, meanwhile)
    )


def test_a_user_with_no_notifications_misses_none_written_as_the_stream_opens(
    console: Console, live_server: LiveServer
) -> None:
    """A user with none stored streams after 0 with include_stored (0 alone asks for new
    ones only): one written between the listing and the stream's start arrives, once."""
    page = console.page
    username, password, md = new_trader(live_server)
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(NOTIFICATION_STREAM, hold)
    console.login(username, password)
    request = wait_held(held, page)
    assert held_after_sequence(request) == 0 and held_request(request).include_stored
    meanwhile = notify_trader(live_server, md)
    request.continue_()
    page.unroute(NOTIFICATION_STREAM)
    wait_trader_streams(live_server, 1, md=md)
    later = notify_trader(live_server, md)
    for name in (meanwhile, later):
        page.locator(f"{TOAST}:has-text('{name}')").wait_for()
    page.wait_for_timeout(PAST_A_POLL_MS)
    assert toasts_of(page, meanwhile) == 1
    assert toasts_of(page, later) == 1
    assert page.locator(COUNT).inner_text() == "2"
    page.click("[data-testid=notifications]")
    shown = menu_entries(page)
    assert len(shown) == 2
    assert later in shown[0][0] and meanwhile in shown[1][0]
