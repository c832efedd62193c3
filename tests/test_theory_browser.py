"""The Theory page on a 1280x720 projector, in headless Chromium.

A teacher projects the page at 1280x720: the sliders and the first plot must both be on the
first screen, without scrolling. Screenshots go to /tmp/theory_1280.png (default setting, first
screen), /tmp/theory_1280_full.png (the whole page) and /tmp/theory_1280_diverging.png (a
diverging setting) for a person to look at.

Needs Debian's Chromium (/usr/bin/chromium); skips without it unless BETA_REQUIRE_BROWSER=1
(set by CI), where a missing browser is a failure (the same rule as test_e2e_browser.py).
"""
import re
import time

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium, served_app, wait_idle

SCREEN = {"width": 1280, "height": 720}
pytestmark = pytest.mark.browser

require_chromium("browser tests")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("theory")
    with served_app(tmp) as url:
        yield url


@pytest.fixture(scope="module")
def page(app):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport=SCREEN)
        browser.close()


def _open(page, url: str) -> None:
    """Open the Theory page (the app's default page) and wait until its charts are drawn."""
    page.goto(url)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60000)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=60000)
    _wait_idle(page)


def _wait_idle(page, timeout: float = 60) -> None:
    wait_idle(page, timeout)
    time.sleep(0.5)  # plotly lays out after the script ends


def _slider(page, label: str):
    return page.locator('[data-testid="stSlider"]').filter(has_text=re.compile(f"^{re.escape(label)}")).first


def _no_exceptions(page) -> None:
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, exc.first.inner_text()


def test_sliders_and_first_plot_fit_one_1280x720_screen(app, page):
    _open(page, app)
    _no_exceptions(page)
    page.screenshot(path="/tmp/theory_1280.png")
    assert page.evaluate("window.scrollY") == 0
    shown = {label: _slider(page, label).bounding_box()
             for label in ("Learning rate", "Curvature λ", "Steps", "Step: move the balls")}
    shown["first plot"] = page.locator('[data-testid="stPlotlyChart"]').first.bounding_box()
    for name, box in shown.items():
        assert box is not None, f"{name} not shown"
        assert box["y"] >= 0 and box["y"] + box["height"] <= SCREEN["height"], (name, box)
    # Controls beside the plots, not above them.
    assert shown["Learning rate"]["x"] + shown["Learning rate"]["width"] <= shown["first plot"]["x"]
    # The whole page, 2-D section included: Streamlit scrolls an inner element, so a full-page
    # screenshot would be the first screen again; a tall window shows it all.
    page.set_viewport_size({"width": SCREEN["width"], "height": 1600})
    _wait_idle(page)
    page.screenshot(path="/tmp/theory_1280_full.png")
    page.set_viewport_size(SCREEN)


def test_a_diverging_setting_is_cut_and_labelled(app, page):
    _open(page, f"{app}/?th_lr=1&th_lam=4&th_lam2=50")
    _no_exceptions(page)
    first = page.locator('[data-testid="stPlotlyChart"]').first
    assert first.get_by_text(re.compile(r"diverges: \|x\| > 10 at step \d+")).count() >= 1
    assert page.get_by_text("clamped to 0").count() == 1
    page.screenshot(path="/tmp/theory_1280_diverging.png")


def test_moving_a_slider_writes_the_url(app, page):
    _open(page, app)
    thumb = _slider(page, "Learning rate").get_by_role("slider")
    thumb.focus()
    thumb.press("ArrowRight")  # 0.01 -> 0.02
    page.wait_for_url(re.compile(r"th_lr=0\.02"), timeout=30000)
    _wait_idle(page)
    page.reload()  # the URL alone brings the setting back
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=60000)
    _wait_idle(page)
    assert _slider(page, "Learning rate").get_by_role("slider").get_attribute("aria-valuetext") == "0.02"
