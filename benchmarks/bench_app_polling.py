"""Training time with the dashboard open and polling vs the same runs from the CLI.

1. CLI: `python -m beta_core compare` of the Train page's default methods (sequential).
2. App: `streamlit run app.py`, headless Chromium on the Train page, Launch with the same
   settings; the live fragment polls the store every second while the runs train.
3. CLI again (brackets drift in machine load).
Prints the ratio of summed training-step seconds, app / mean(CLI). Target: <= 1.10.

Needs Chromium (/usr/bin/chromium) and playwright. Run: python benchmarks/bench_app_polling.py
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, IMAGES = 3, 4000
METHODS = ["sgd-constant", "sgd-beta", "sgd-hybrid"]


def step_seconds(runs_dir: Path, ids=None) -> float:
    sys.path.insert(0, str(ROOT))
    from beta_core.store import Store

    runs = [r for r in Store(runs_dir).runs() if ids is None or r["id"] in ids]
    assert all(r["status"] == "done" for r in runs), [(r["id"], r["status"], r["error"]) for r in runs]
    return sum(r["summary"]["step_seconds"] for r in runs)


def cli(tmp: Path, name: str) -> float:
    runs = tmp / name
    subprocess.run([sys.executable, "-m", "beta_core", "--runs-dir", str(runs), "--data-dir", str(tmp / "data"),
                    "compare", "--preset", "quick-cpu", "--dataset", "synthetic", "--epochs", str(EPOCHS),
                    "--train-subset", str(IMAGES), "--methods", ",".join(METHODS), "--quiet"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return step_seconds(runs)


def cpu_seconds(match) -> float:
    """utime+stime of every live process whose command line satisfies ``match``."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if match(cmd):
                rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(rest[11]) + int(rest[12])) / tick
        except OSError:
            continue
    return total


CPU = {}


def app(tmp: Path) -> float:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "BETA_RUNS_DIR": str(tmp / "app"), "BETA_DATA_DIR": str(tmp / "data"), "BETA_MAX_JOBS": "1"}
    env.pop("BETA_DATA_PATH", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Train & compare").first.click()
            page.locator("h1", has_text="Train & compare").wait_for(timeout=60000)
            time.sleep(1)
            page.get_by_label("Epochs").fill(str(EPOCHS))
            page.get_by_label("Training images (0 = all)").fill(str(IMAGES))
            page.get_by_role("button", name="Launch").click()
            page.get_by_text("Launched 3 run(s)").wait_for(timeout=30000)
            polls = 0
            while True:  # the page stays open and polling until every run is finished
                time.sleep(1)
                polls += 1
                if page.locator('[data-testid="stProgress"]').count() == 0 and polls > 5:
                    try:
                        result = step_seconds(tmp / "app")
                        CPU["streamlit server"] = cpu_seconds(lambda c: "streamlit run app.py" in c)
                        CPU["chromium"] = cpu_seconds(lambda c: "chromium" in c or "chrome" in c)
                        CPU["seconds polled"] = polls
                        return result
                    except AssertionError:
                        continue
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cli(tmp, "warmup")  # builds the synthetic cache, warms the page cache
        c1 = cli(tmp, "cli1")
        a = app(tmp)
        c2 = cli(tmp, "cli2")
    base = (c1 + c2) / 2
    print(f"training-step seconds, 3 runs x {EPOCHS} epochs x {IMAGES} images:")
    print(f"  CLI (before)          : {c1:7.2f} s")
    print(f"  app open and polling  : {a:7.2f} s")
    print(f"  CLI (after)           : {c2:7.2f} s")
    print(f"CPU seconds used by the UI while it polled: {CPU}")
    print(f"ratio app / CLI mean    : {a / base:7.3f}   target <= 1.10 -> {'MET' if a / base <= 1.10 else 'NOT MET'}")


if __name__ == "__main__":
    main()
