"""End to end in a real headless Chromium: `streamlit run app.py`, every page, a real vote.

The app runs in a subprocess on a free loopback port with `OLLAMA_HOST` pointed at the
project's fake Ollama server (another subprocess). Screenshots of every page land in
`test-output/screenshots/`. Uses Debian's /usr/bin/chromium (never `playwright install`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.net import free_port, stop, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOC_SHOTS = ("data", "clusters", "leaderboard", "route", "vote", "evaluate", "calibrate", "tour",
             "report")
PAGE_TIMEOUT_MS = 600_000  # the first page may embed the demo table on a cold cache


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium "
                    "(bash scripts/setup.sh --test); the browser test is never skipped")
    logs = tmp_path_factory.mktemp("e2e")
    ollama_port, app_port = free_port(), free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_ollama", "--port", str(ollama_port), "--demo"],
        cwd=ROOT, stdout=open(logs / "ollama.log", "wb"), stderr=subprocess.STDOUT)
    env = {**os.environ, "OLLAMA_HOST": f"http://127.0.0.1:{ollama_port}", "AVENGERS_UMAP": "0",
           "AVENGERS_CALIBRATION_DIR": str(logs / "calibration")}  # never the user's cache
    app = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(logs / "app.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{ollama_port}/api/tags")
        wait_http(f"http://127.0.0.1:{app_port}/_stcore/health")
        yield f"http://127.0.0.1:{app_port}"
    finally:
        stop(app)
        stop(fake)


def settle(page) -> None:
    """Wait until the script run is over, then let the browser draw."""
    page.wait_for_timeout(400)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(600)


def visit(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.locator("h1", has_text=title).wait_for(timeout=PAGE_TIMEOUT_MS)
    settle(page)


def map_points(page) -> int:
    """Queries drawn on the page's plotly maps (each has its row index in customdata)."""
    return page.evaluate(
        "() => Math.max(0, ...Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(d => (d.data || []).reduce((n, t) => n + (t.customdata || []).length, 0)))")


def lasso(page) -> None:
    """Draw a lasso around the middle of the cluster map."""
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    cx, cy = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5
    page.mouse.move(cx - 80, cy - 80)
    page.mouse.down()
    for dx, dy in ((80, -80), (80, 80), (-80, 80), (-80, -80)):
        page.mouse.move(cx + dx, cy + dy, steps=6)
    page.mouse.up()


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def star_pixels(page):
    """The 8 × 8 px around the route map's ★ as drawn on the screen (its WebGL and SVG
    layers together), an (8, 8, 3) uint8 array."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    spot = page.evaluate("""() => {
        const gd = Array.from(document.querySelectorAll('.js-plotly-plot')).find(
            d => (d.data || []).some(t => t.marker && t.marker.symbol === 'star'));
        const i = gd.data.findIndex(t => t.marker && t.marker.symbol === 'star');
        const fl = gd._fullLayout, box = gd.getBoundingClientRect();
        return {x: box.left + fl._size.l + fl.xaxis.l2p(gd.data[i].x[0]),
                y: box.top + fl._size.t + fl.yaxis.l2p(gd.data[i].y[0])};
    }""")
    png = page.screenshot(clip={"x": spot["x"] - 4, "y": spot["y"] - 4, "width": 8,
                                "height": 8})
    return np.asarray(Image.open(BytesIO(png)).convert("RGB"))


def trace_names(page, i: int) -> list[str]:
    """The trace names of the page's `i`-th plotly figure (a map's legend entries)."""
    return page.evaluate(f"() => Array.from(document.querySelectorAll('.js-plotly-plot'))[{i}]"
                         ".data.map(t => t.name)")


def known_query() -> str:
    """A query of the demo table: routed, its star sits on its own point of the map."""
    from avengers_core.data.load import load_table

    return next(q for q in load_table("llmrouter").queries if 30 <= len(q) <= 120
                and "\n" not in q)


def route(page, query: str) -> None:
    box = page.get_by_label("Query", exact=True)
    box.fill(query)
    page.get_by_role("button", name="Route", exact=True).click()
    page.locator('[data-testid="stText"]', has_text=query[:40]).wait_for(timeout=120_000)
    settle(page)


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert page.locator('[data-testid="stException"]').count() == 0, name
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def check_report_offline(browser, report: Path) -> None:
    """Open the exported report with every network request refused: its four figures
    render from the file alone."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    context.route("**/*", lambda r: (requests.append(r.request.url), r.continue_())
                  if r.request.url.startswith("file:") else r.abort())
    page = context.new_page()
    page.goto(report.as_uri())
    page.locator(".js-plotly-plot .main-svg").nth(5).wait_for(state="attached", timeout=60_000)
    drawn = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                          ".map(d => (d.data || []).length)")
    assert len(drawn) == 6 and all(n > 0 for n in drawn), drawn  # maps by cluster, best model
    assert page.locator(".js-plotly-plot .heatmaplayer").count() == 2  # raw and effective
    assert page.locator(".js-plotly-plot .gl-container canvas").count() >= 1  # the map
    assert page.locator(".js-plotly-plot .xtick").count() > 0
    assert all(u.startswith("file:") for u in requests)
    page.screenshot(path=str(SHOTS / "report.png"))
    context.close()


def test_every_page_in_chromium(app_url):
    from playwright.sync_api import sync_playwright

    for old in SHOTS.glob("*.png"):
        old.unlink()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{app_url}/clusters")  # a deep link first: it must still run app.py
        page.locator("h1", has_text="Clusters").wait_for(timeout=PAGE_TIMEOUT_MS)
        page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(
            state="attached", timeout=PAGE_TIMEOUT_MS)
        settle(page)
        assert map_points(page) == 5989
        assert page.locator('[data-testid="stSidebarUserContent"]').get_by_text(
            "llmrouter (demo)").count() == 1
        lasso(page)
        page.locator("h3", has_text="selected queries").wait_for(timeout=60_000)
        settle(page)
        shoot(page, "clusters")
        radio = page.get_by_test_id("stRadioGroup").first
        radio.get_by_text("best model", exact=True).click()  # the router's choice per cluster
        settle(page)
        assert len(trace_names(page, 0)) >= 3  # not one model everywhere (issue 19)
        radio.get_by_text("cluster", exact=True).click()
        settle(page)

        visit(page, "Data")
        page.locator('[data-testid="stMetricValue"]', has_text="5,989").wait_for()
        shoot(page, "data")

        visit(page, "Leaderboard")
        page.locator(".js-plotly-plot .heatmaplayer").first.wait_for(
            state="attached", timeout=PAGE_TIMEOUT_MS)
        heatmap = page.locator(".js-plotly-plot").first
        title = heatmap.locator(".gtitle").bounding_box()
        names = heatmap.locator(".xtick text")
        assert names.count() == 9  # the heatmap's title stays clear of the rotated names
        assert not any(boxes_overlap(title, names.nth(i).bounding_box()) for i in range(9))
        cluster = page.get_by_role("combobox", name="Cluster")
        first = cluster.input_value()
        cluster.click()
        cluster.fill("#5 " if not first.startswith("#5 ") else "#6 ")  # filter to one cluster
        page.get_by_role("option").first.click()
        settle(page)
        chosen = cluster.input_value()
        assert chosen != first
        page.get_by_text("best model", exact=True).click()  # reorder the clusters
        settle(page)
        assert cluster.input_value() == chosen  # the chosen cluster survives the reorder
        shoot(page, "leaderboard")

        visit(page, "Route")
        page.locator('[data-testid="stAlert"]', has_text="Route to").wait_for(
            timeout=PAGE_TIMEOUT_MS)
        page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(state="attached")
        first, second = "Write a python function that reverses a list.", "What is 15% of 80?"
        route(page, first)
        route(page, second)  # a second, different query is routed, not the first again
        assert page.get_by_label("Query", exact=True).input_value() == second
        assert page.locator('[data-testid="stText"]').first.inner_text() == second
        assert map_points(page) == 5989  # the map with the query's star
        shoot(page, "route")
        route(page, known_query())  # its star lies on its own point, drawn below it
        page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        shown = star_pixels(page)[2:6, 2:6]  # the star's solid black middle
        page.locator(".js-plotly-plot .legend .traces", has_text="your query").locator(
            ".legendtoggle").click()
        page.wait_for_timeout(800)  # the legend click hides the star trace
        under = star_pixels(page)[2:6, 2:6].min(axis=2) < 230  # the map's points there
        assert under.sum() >= 3, "no map point under the star: the check below is void"
        # the star covers the WebGL points (as an SVG trace it was drawn below them)
        assert (shown[under].max(axis=1) < 60).mean() > 0.9

        visit(page, "Vote")
        page.get_by_role("button", name="Run the vote").click()
        page.locator('[data-testid="stAlert"]', has_text="Answer:").wait_for(timeout=120_000)
        settle(page)
        # one panel per sample drawn: the default early stop settles this vote (mostly 42)
        # after at least 6 of its 10 samples
        assert page.locator('[data-testid="stCode"]').count() >= 6
        page.locator('[data-testid="stAlert"]', has_text="Answer:").evaluate(
            "e => e.scrollIntoView({block: 'start'})")
        shoot(page, "vote")

        visit(page, "Evaluate")
        page.locator(".js-plotly-plot").first.wait_for(state="attached")
        assert page.get_by_text("Evaluation (JSON)").count() == 1  # sidebar download
        shoot(page, "evaluate")
        page.get_by_role("button", name="Run the K sweep").click()
        report_button = page.get_by_role("button", name="Download the report (HTML)")
        report_button.wait_for(timeout=PAGE_TIMEOUT_MS)
        settle(page)
        with page.expect_download() as download:
            report_button.click()
        report = SHOTS.parent / "report.html"
        download.value.save_as(report)
        check_report_offline(browser, report)

        visit(page, "How it works")
        page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(
            state="attached", timeout=PAGE_TIMEOUT_MS)
        page.get_by_text("2 Clustering").click()
        page.locator(".js-plotly-plot .slider-container").first.wait_for(
            state="attached", timeout=PAGE_TIMEOUT_MS)
        settle(page)
        shoot(page, "tour")

        visit(page, "Calibrate")
        page.get_by_role("button", name="Run calibration").wait_for()
        shoot(page, "calibrate")

        start = time.monotonic()  # a page switch after the first visit is quick
        visit(page, "Leaderboard")
        assert time.monotonic() - start < 10

        visit(page, "Calibrate")  # an unreachable host: the page stops, the sidebar stays
        host = page.get_by_label("Ollama host")
        host.fill("http://127.0.0.1:1")
        host.press("Enter")
        warning = page.locator('[data-testid="stAlert"]', has_text="not reachable")
        warning.wait_for(timeout=60_000)
        settle(page)
        assert "http://127.0.0.1:1" in warning.inner_text()  # no stray Markdown escapes
        assert page.get_by_role("button", name="Check again").count() == 1
        assert page.locator('[data-testid="stSidebarUserContent"]').get_by_text(
            "llmrouter (demo)").count() == 1
        shoot(page, "calibrate-no-ollama")
        browser.close()
    if os.environ.get("UPDATE_DOC_SCREENSHOTS") == "1":  # refresh the README's pictures
        from PIL import Image

        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        for name in DOC_SHOTS:  # the pictures the README shows
            shot = SHOTS / f"{name}.png"
            img = Image.open(shot).convert("RGB")
            img.thumbnail((1000, 1000))
            img.quantize(colors=128).save(docs / shot.name, optimize=True)


def test_three_specialists_route_as_shown(app_url, tmp_path):
    """Issue 19 as a new user tries it: a table with three specialists; Clusters coloured
    by best model shows all three, and the Route page's numbers are `route --json`'s."""
    import json
    import re

    from playwright.sync_api import sync_playwright

    from tests.support import specialists

    table = specialists.write_csv(tmp_path / "spec.csv")
    query = "What is 9 times 7?"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(app_url)
        page.locator("h1", has_text="Data").wait_for(timeout=PAGE_TIMEOUT_MS)
        settle(page)
        page.locator('input[type="file"]').first.set_input_files(str(table))
        page.locator('[data-testid="stSidebarUserContent"]').get_by_text("spec").first.wait_for(
            timeout=PAGE_TIMEOUT_MS)
        settle(page)

        visit(page, "Clusters")
        page.get_by_test_id("stRadioGroup").first.get_by_text("best model", exact=True).click()
        settle(page)
        page.locator(".js-plotly-plot .gl-container canvas").first.wait_for(
            state="attached", timeout=PAGE_TIMEOUT_MS)
        assert set(trace_names(page, 0)) == set(specialists.MODELS)
        k = int(page.get_by_test_id("stSliderThumbValue").first.inner_text())  # K

        visit(page, "Route")
        route(page, query)
        shoot(page, "route-specialists")
        reason = page.locator('[data-testid="stAlert"]', has_text="Route to").inner_text()
        fused = page.evaluate("""() => {
            const all = Array.from(document.querySelectorAll('.js-plotly-plot'));
            const gd = all.find(d => (d.data || []).some(t => t.name === 'fused score'));
            if (!gd) return all.map(d => (d.data || []).map(t => t.name));
            const t = gd.data[gd.data.length - 1];
            return Object.fromEntries(Array.from(t.y).map((y, i) => [y, Array.from(t.x)[i]]));
        }""")
        assert isinstance(fused, dict), fused  # else: the figures' trace names
        browser.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "avengers_core.cli"]
    fit = subprocess.run([*cli, "fit", str(table), "--k", str(k), "--seed", "0", "--out",
                          str(tmp_path / "p")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert fit.returncode == 0, fit.stderr
    out = subprocess.run([*cli, "route", str(tmp_path / "p"), query, "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    top = data["models"][0]
    assert reason.startswith(f"Route to {top}.")
    assert re.findall(r"\d+%", reason) == re.findall(r"\d+%", data["reason"])
    assert {y.replace("★ ", ""): x for y, x in fused.items()} == pytest.approx(
        {m: data["scores"][m] for m in list(data["scores"])[:len(fused)]}, abs=1e-6)
