"""End to end in headless Chromium: the app as a user drives it.

Starts ``streamlit run app.py`` on a free port with a temporary runs directory, opens every
page, launches a tiny run on synthetic data and watches it train and finish, runs
attribution and surgery through the pages. Fails on any Streamlit exception element; saves a
screenshot of the page when a step fails (in the test's tmp folder, path printed).

Needs Debian's Chromium (/usr/bin/chromium); skips without it unless BETA_REQUIRE_BROWSER=1
(set by CI), where a missing browser is a failure.
"""
import re
import time
from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, require_chromium, served_app, wait_idle

pytestmark = pytest.mark.browser

require_chromium("end-to-end tests")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    with served_app(tmp, BETA_MAX_JOBS="2", BETA_POLL_SECONDS="1") as url:
        yield url, tmp


@pytest.fixture(scope="module")
def page(app):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        # The first session after a server start should enter through the app's root: Streamlit
        # only knows the st.navigation routes once some session has run app.py.
        _open(pg, app[0])
        yield pg
        browser.close()


class Step:
    """Context for one user step: on failure, save a screenshot and say where."""

    def __init__(self, page, tmp: Path, name: str) -> None:
        self.page, self.path = page, tmp / f"fail-{name}.png"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.page.screenshot(path=str(self.path), full_page=True)
            print(f"screenshot of the failed step: {self.path}")
        return False


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60000)
    # A deep link into a fresh session can raise Streamlit's "Page not found" notice before
    # st.navigation has routed it (the page itself is right underneath): dismiss it.
    if page.get_by_text("Page not found").count():
        page.keyboard.press("Escape")
    wait_idle(page)


def _nav(page, title: str, heading: str) -> None:
    """Go to a page the way a user does: the sidebar link. Once in nine runs of this file on a
    loaded 2-core machine a click was not followed within 60 s; a user clicks again, so does this."""
    link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    for attempt in range(2):
        link.click()
        try:
            page.locator("h1", has_text=heading).first.wait_for(timeout=30000 * (attempt + 1))
            break
        except Exception:  # playwright's TimeoutError; the second attempt raises it
            if attempt:
                raise
    wait_idle(page)


def _no_exceptions(page) -> None:
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, exc.first.inner_text()


@pytest.mark.parametrize("path,title", [("", "Heavy ball"), ("theory", "Heavy ball"), ("schedules", "LR schedules"),
                                        ("train", "Train & compare"), ("compare", "Compare"),
                                        ("attribution", "Per-layer attribution"), ("surgery", "Layer surgery"),
                                        ("runs", "Runs")])
def test_every_page_opens_on_an_empty_store(app, page, path, title):
    url, tmp = app
    with Step(page, tmp, f"open-{path or 'theory'}"):
        _open(page, f"{url}/{path}")
        assert title in page.locator("h1").first.inner_text()
        assert page.url.rstrip("/").endswith(f"/{path or 'theory'}")  # a page's own link keeps its address
        _no_exceptions(page)


def test_launch_watch_attribute_operate(app, page):
    url, tmp = app
    with Step(page, tmp, "launch"):
        _nav(page, "Train & compare", "Train & compare")
        # The app's data folder is empty and BETA_DATA_PATH unset: "auto" means synthetic here.
        page.get_by_text("synthetic (no CIFAR-10 in data/)").wait_for()
        page.get_by_label("Epochs").fill("3")
        page.get_by_label("Training images (0 = all)").fill("2000")
        page.get_by_role("button", name="Launch").click()
        page.get_by_text("Launched 3 runs").wait_for(timeout=30000)
        _no_exceptions(page)
    with Step(page, tmp, "live"):
        # The live fragment's progress text moves while the jobs train.
        seen = set()
        end = time.time() + 120
        while time.time() < end and len(seen) < 3:
            for text in page.locator('[data-testid="stProgress"]').all_inner_texts():
                m = re.search(r"(\d+)/(\d+) steps", text)
                if m and int(m.group(1)) > 0:
                    seen.add(text)
            time.sleep(0.3)
        assert len(seen) >= 3, f"progress did not move: {seen}"
        assert page.locator('[data-testid="stPlotlyChart"]').count() >= 2
        _no_exceptions(page)
    with Step(page, tmp, "finish"):
        page.locator('[data-testid="stProgress"]').first.wait_for(state="detached", timeout=240000)
        page.get_by_role("heading", name="Time to accuracy").first.wait_for()  # a fragment rerun may briefly show two
        table = page.locator('[data-testid="stDataFrame"]:visible').first  # the groups table sits in a closed expander
        table.wait_for()
        _no_exceptions(page)
        page.screenshot(path=str(tmp / "train.png"), full_page=True)
    with Step(page, tmp, "attribution"):
        _nav(page, "Attribution", "Per-layer attribution")
        page.get_by_role("button", name="Run attribution").first.click()
        page.get_by_text("Group × true class").first.wait_for(timeout=120000)
        assert page.get_by_text("Flagged by").count() >= 1 and page.get_by_text("How often").count() >= 1
        _no_exceptions(page)
        page.screenshot(path=str(tmp / "attribution.png"), full_page=True)
    with Step(page, tmp, "surgery"):
        _nav(page, "Surgery", "Layer surgery")
        page.get_by_role("button", name="Launch surgery").click()
        page.get_by_text("Repaired model: run").wait_for(timeout=240000)
        assert page.get_by_text("Repaired model: run").count() == 1
        assert page.locator('[data-testid="stDataFrame"]').count() >= 1  # the before/after table
        _no_exceptions(page)
        page.screenshot(path=str(tmp / "surgery.png"), full_page=True)
    with Step(page, tmp, "runs"):
        _nav(page, "Runs", "Runs")
        assert page.locator('[data-testid="stDataFrame"]').count() == 1
        _no_exceptions(page)


@pytest.mark.slow  # 17 s; the Compare page's grid and verdicts are covered by AppTest in the default suite
def test_tiny_sweep_fills_the_grid_and_gives_verdicts(app, page):
    url, tmp = app
    with Step(page, tmp, "sweep-launch"):
        _nav(page, "Compare (sweeps)", "Compare")
        # Not a form (the plan's size follows every change): each field applies with Enter and reruns.
        box = lambda name: page.get_by_role("textbox", name=name)  # noqa: E731 - a `?` button shares the label
        number = lambda name: page.get_by_role("spinbutton", name=name)  # noqa: E731
        for field, value in ((box("LR grid (SGD methods)"), "0.05,0.1"), (box("Tuning seeds"), "100"),
                             (box("Test seeds (fresh)"), "0,1"), (box("Target test accuracies"), "0.2"),
                             (number("Epochs"), "1"), (number("Training images (0 = all)"), "500")):
            field.fill(value)
            field.press("Enter")
            wait_idle(page)
        page.get_by_text("This sweep plans 12 runs (6 to tune on validation").wait_for()
        page.get_by_role("button", name="Launch sweep").click()
        page.get_by_text("Launched sweep").wait_for(timeout=30000)
        _no_exceptions(page)
    with Step(page, tmp, "sweep-grid"):
        page.get_by_text("Stage 1: tuning").first.wait_for(timeout=120000)
        page.get_by_text("Verdicts", exact=True).wait_for(timeout=240000)
        assert page.get_by_text("no detectable difference").count() + page.get_by_text("faster").count() \
            + page.get_by_text("slower").count() + page.get_by_text("undetermined").count() \
            + page.get_by_text("equivalent").count() >= 1
        assert page.get_by_text("Reported stage (test accuracy)").count() >= 1
        _no_exceptions(page)
        page.screenshot(path=str(tmp / "compare.png"), full_page=True)


def test_a_malformed_bundle_upload_is_one_line_and_adds_nothing(app, page, tmp_path):
    """Issue 29: the Runs page's upload gave a JSONDecodeError traceback for a non-JSON config."""
    import json
    import zipfile

    from beta_core.store import Store
    src, bad = Path(__file__).resolve().parents[1] / "data" / "demo" / "demo.zip", tmp_path / "bad.zip"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(bad, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename.endswith("run.json"):
                d = json.loads(data)
                d["run"]["config"] = "{not json"
                data = json.dumps(d).encode()
            out.writestr(info.filename, data)
    before = len(Store(app[1] / "runs").runs())
    _open(page, f"{app[0]}/runs")
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    wait_idle(page)
    page.keyboard.press("Escape")  # the uploader's dialog holds the page inert until closed
    page.get_by_role("button", name="Unpack").click()
    alert = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Refused bundle 'bad.zip'")
    alert.wait_for(timeout=30000)
    assert "run.config: expected a JSON object" in alert.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert len(Store(app[1] / "runs").runs()) == before


def test_a_clicked_row_is_selected_in_the_url_and_survives_a_reload(app, page):
    """The Runs table: click a row's box, the URL names the run, a reload reopens it selected."""
    from beta_core import importer
    from beta_core.store import Store
    from beta_core.trackers import Source

    url, tmp = app
    scalars = {"train/lr": [(s, 0.05, None) for s in range(20)], "opt/momentum": [(s, 0.9, None) for s in range(20)],
               "train/loss": [(s, 1 - s / 40, None) for s in range(20)], "test/acc": [(20, 0.4, None)]}
    src = Source("tensorboard", str(tmp), "e2e-explorer", scalars)
    importer.import_sources(Store(tmp / "runs"), [importer.plan(src, importer.guess_map(scalars))])
    with Step(page, tmp, "runs-select"):
        _open(page, f"{url}/runs")
        page.get_by_role("textbox", name="Filter").fill("kind = imported")
        page.keyboard.press("Enter")
        page.get_by_text("1 run match").wait_for()
        box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
        page.mouse.click(box["x"] + 16, box["y"] + 35 + 17)  # the first row's checkbox (rows are 35 px)
        page.get_by_text("1 run selected").wait_for()
        assert "runs=" in page.url and "imported" in page.url
        page.reload()
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60000)
        wait_idle(page)
        page.get_by_text("1 run selected").wait_for()
        _no_exceptions(page)
