"""The offline report: every section for a sweep with verdicts, figures that render with the
network blocked, PNG/SVG files, and the reproduce command."""
import os
import shutil
from pathlib import Path

import pytest
from helpers import finished_sweep

from beta_core.attribution import AttributionConfig
from beta_core.cli import main
from beta_core.html_report import build_report, report_figures, reproduce_command
from beta_core.jobs.bodies import attribute_run
from beta_core.store import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_BROWSER = Path(CHROMIUM).exists()
NEED_BROWSER = os.environ.get("BETA_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A finished two-method, two-seed sweep with verdicts; one member attributed."""
    root = tmp_path_factory.mktemp("report")
    store, sid = finished_sweep(root, epochs=2)
    member = store.runs(kind="train")[0]
    attribute_run(store, member["id"], AttributionConfig(probe_steps=2, max_samples=40), str(root / "data"))
    return root, store, sid


def test_every_section_for_a_sweep_with_verdicts(sweep_store, tmp_path, capsys):
    root, store, sid = sweep_store
    out = tmp_path / "r.html"
    assert main(["--runs-dir", str(root / "runs"), "report", sid, "--out", str(out)]) == 0
    text = out.read_text()
    for section in ("<h2>Outcome</h2>", "<h2>Setting</h2>", "<h2>Figures</h2>", f"<h2>Verdicts of sweep {sid}</h2>",
                    "<h2>Attribution of", "<h2>Environment</h2>", "<h2>Reproduce</h2>"):
        assert section in text, section
    assert "ends with higher test accuracy than sgd-constant" in text  # the verdict table's claims
    assert "beta-core sweep --methods sgd-constant,sgd-beta --seeds 0,1 --grid lr=0.05" in text
    assert "torch" in text and store.runs(kind="train")[0]["summary"]["environment"]["torch"] in text
    assert "<script src=" not in text and text.count("Plotly.newPlot") == len(report_figures(store, [sid]))
    assert set(report_figures(store, [sid])) == {"schedule", "performance", f"mean-curves-{sid}",
                                                f"attribution-{store.runs(kind='train')[0]['id']}"}


def test_reproduce_command_names_only_what_differs(sweep_store):
    _, store, _ = sweep_store
    run = store.runs(kind="train")[0]
    cmd = reproduce_command(run)
    assert cmd.startswith(f"beta-core train --method {run['method']} ")
    assert "--set lr=0.05" in cmd and "--set epochs=2" in cmd and "--set optimizer" not in cmd  # sgd: the default


@pytest.mark.browser
def test_the_report_renders_offline_in_chromium(sweep_store, tmp_path):
    if not HAVE_BROWSER:
        if NEED_BROWSER:
            raise RuntimeError("BETA_REQUIRE_BROWSER=1 but no Chromium found")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    _, store, sid = sweep_store
    path = tmp_path / "r.html"
    path.write_text(build_report(store, [sid]))
    n = len(report_figures(store, [sid]))
    requests = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()

        def block(route):  # the network is off: anything but the file itself is recorded and refused
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                requests.append(route.request.url)
                route.abort()
        page.route("**/*", block)
        page.goto(path.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}",
                               timeout=30000)
        drawn = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(d => d.querySelectorAll("
                              "'.scatterlayer .trace, .heatmaplayer image, .hm').length)")
        browser.close()
    assert requests == []
    assert len(drawn) == n and all(k > 0 for k in drawn), drawn  # every figure has drawn data, none is blank


def test_figure_files_png_and_svg(sweep_store, tmp_path, capsys):
    if not HAVE_BROWSER:
        if NEED_BROWSER:
            raise RuntimeError("BETA_REQUIRE_BROWSER=1 but no Chromium found")
        pytest.skip("kaleido needs a Chromium (apt-get install chromium)")
    root, store, sid = sweep_store
    run = store.runs(kind="train")[-1]["id"]  # one run: two panels, a quick render
    assert main(["--runs-dir", str(root / "runs"), "report", run, "--out", str(tmp_path / "r.html"),
                 "--figures", str(tmp_path / "figs")]) == 0
    files = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert files == ["performance.png", "performance.svg", "schedule.png", "schedule.svg"]
    assert all((tmp_path / "figs" / f).stat().st_size > 1000 for f in files)
    assert (tmp_path / "figs" / "schedule.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_outcome_is_words_first_without_raw_markdown(tmp_path):
    """Issue 31: raw **helped** asterisks in the Outcome; the sweep's verdict summary now leads it."""
    from beta_core import bundles
    store = Store(tmp_path / "runs")
    bundles.unpack(store, Path(__file__).resolve().parents[1] / "data" / "demo" / "demo.zip")
    ids = [r["id"] for r in store.runs(kind="surgery")]
    assert ids
    html = build_report(store, ids)
    outcome = html.split("<h2>Outcome</h2>", 1)[1].split("</ul>", 1)[0]
    assert "**" not in outcome and "<b>" in outcome
