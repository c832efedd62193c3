"""Helpers shared by the tests (imported as ``from helpers import ...``; fixtures live in conftest)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from beta_core.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
OLD_STORE = Path(__file__).resolve().parent / "data" / "store_v0"  # written by the code of commit 538c45b


def tiny_config(**kw):
    """A run that takes about a second: synthetic 400/200 images, width-4 CNN."""
    base = dict(dataset="synthetic", synthetic_train=400, synthetic_test=200, model="small_cnn", width=4,
                epochs=1, batch_size=50, device="cpu", thresholds=(0.2, 0.3))
    method = kw.pop("method", "sgd-beta")
    return resolve_config(method, **{**base, **kw})


def finished_sweep(root: Path, epochs: int = 1) -> tuple:
    """(store, sweep id) of a finished two-method, two-seed sweep of tiny runs (a few seconds)."""
    from beta_core.cli import main
    from beta_core.store import Store
    tiny = ["--dataset", "synthetic", "--synthetic-train", "200", "--synthetic-test", "100", "--model", "small_cnn",
            "--width", "4", "--epochs", str(epochs), "--batch-size", "50", "--device", "cpu", "--quiet"]
    assert main(["--runs-dir", str(root / "runs"), "--data-dir", str(root / "data"), "sweep", "--methods",
                 "sgd-constant,sgd-beta", "--seeds", "0,1", "--grid", "lr=0.05", "--no-tune", "--target", "0.2",
                 *tiny]) == 0
    store = Store(root / "runs")
    (sweep,) = store.runs(kind="sweep")
    return store, sweep["id"]


# ------------------------------------------------------------------ browser tests
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium(what: str) -> None:
    """At a browser test module's top: skip it without Debian's Chromium, unless
    BETA_REQUIRE_BROWSER=1 (set by CI), where a missing browser is a failure."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("BETA_REQUIRE_BROWSER") == "1":
            raise RuntimeError("BETA_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip(f"Chromium not installed (apt-get install chromium); {what} skipped", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(tmp: Path, **env_extra: str):
    """``streamlit run app.py`` on a free port, its store and data in ``tmp``; yields its URL and
    stops it after (its log in ``tmp/streamlit.log``)."""
    env = {**os.environ, "BETA_RUNS_DIR": str(tmp / "runs"), "BETA_DATA_DIR": str(tmp / "data"),
           "PYTHONUNBUFFERED": "1", **env_extra}
    env.pop("BETA_DATA_PATH", None)
    port = _free_port()
    with open(tmp / "streamlit.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.headless", "true", "--server.address", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail(f"streamlit did not start; log: {(tmp / 'streamlit.log').read_text()[-2000:]}")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_idle(page, timeout: float = 60) -> None:
    """Wait until Streamlit reports no running script."""
    end = time.time() + timeout
    time.sleep(0.3)
    while time.time() < end:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.2)
