"""Every page of the app at 1,000 and 10,000 finished runs in the store.

Fills two stores with realistic finished training runs (400 step and 8 epoch records each,
their config and summary as the engine writes them), 1% of them with an attribution result,
1% repaired by a surgery, and sweeps of 20 members; then renders every page through
Streamlit's AppTest (app.py, as a browser session would) and prints the seconds per page and
the growth from 1,000 to 10,000 runs; "runs explorer" is the Runs page with a filter, a sort and
a grouping set (issue 33). Targets (issue 20): every page <= 1 s at 10,000 runs;
growth under 2x. The page time is the median of 3 renders after one warm-up render.

Run: python benchmarks/bench_store_scale.py [--sizes 1000,10000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.config import resolve_config  # noqa: E402
from beta_core.records import EPOCH_FIELDS, STEP_FIELDS  # noqa: E402
from beta_core.store import Store  # noqa: E402

PAGES = ["theory", "schedules", "train", "compare", "attribution", "surgery", "runs", "runs explorer"]
# The Runs page as a researcher uses it (issue 33): a filter, a sort and a grouping.
EXPLORER = {"rf": "lr > 0.05; method in sgd-beta,sgd-hybrid", "rsort": "final_test_acc", "group-by": "method"}
METHODS = ("sgd-constant", "sgd-beta", "sgd-hybrid")


def real_attribution(tmp: Path) -> str:
    """One attribution result as the pipeline stores it (a tiny run, attributed), as JSON."""
    from beta_core.attribution import AttributionConfig
    from beta_core.jobs.bodies import attribute_run, execute_run
    store = Store(tmp / "seed-runs")
    cfg = resolve_config("sgd-beta", dataset="synthetic", synthetic_train=400, synthetic_test=200, width=4, epochs=1,
                         batch_size=50, device="cpu")
    rid = store.create_run(cfg.to_dict())
    execute_run(store, rid, str(tmp / "data"))
    return json.dumps(attribute_run(store, rid, AttributionConfig(probe_steps=2), str(tmp / "data")))


def fill(runs_dir: Path, n: int, attribution: str) -> float:
    """``n`` finished runs written straight into the store's tables (the shape the engine
    writes); returns the seconds it took."""
    t0 = time.perf_counter()
    Store(runs_dir)  # the schema
    db = sqlite3.connect(runs_dir / "runs.db")
    now = time.time() - n
    rows, steps, epochs, results = [], [], [], []
    sweeps = max(1, n // 500)
    for s in range(sweeps):
        sid = f"20260101-000000-sweep-{s:06d}"
        rows.append((sid, now, now, "done", "sweep", "sweep", "small_cnn", "synthetic", None,
                     json.dumps({"method": "sweep", "sweep": {"methods": list(METHODS), "seeds": [0, 1, 2],
                                                              "grid": {"*": {"lr": [0.1]}}}}), json.dumps({}),
                     None, None, 0, None, None))
    for i in range(n):
        method = METHODS[i % 3]
        rid = f"20260101-{i // 3600:02d}{i % 3600 // 60:02d}{i % 60:02d}-{method}-{i:06d}"
        cfg = resolve_config(method, seed=i % 5, dataset="synthetic").to_dict()
        acc = [0.3 + 0.05 * e + 0.001 * (i % 7) for e in range(8)]
        summary = {"status": "done", "epochs_completed": 8, "wall_seconds": 60.0, "step_seconds": 50.0,
                   "final_test_acc": acc[-1], "best_test_acc": acc[-1], "final_val_acc": acc[-1],
                   "best_val_acc": acc[-1], "n_train": 5000, "n_val": 500, "n_test": 1000,
                   "time_to_accuracy": {"0.5": {"epoch": 4, "step": 250, "time": 30.0}, "0.6": None},
                   "device": "cpu", "steps_per_epoch": 50, "data": "synthetic (seed 0)", "synthetic": True,
                   "regimes": ["underdamped"] * 8, "groups": [["conv1", 432], ["fc", 1290]]}
        parent = f"20260101-000000-sweep-{i % sweeps:06d}" if i % 10 == 0 else None
        label = f"test/{method}/lr=0.1/seed={i % 5}" if parent else None
        rows.append((rid, now + i, now + i, "done", "train", method, "small_cnn", "synthetic", label,
                     json.dumps(cfg), json.dumps(summary), parent, None, 0, None, None))
        steps += [(rid, s, s // 50, 0.1, 0.9, 0.16, 1.0, 2.3 - s / 400, 0.5, 0.1 * s) for s in range(400)]
        epochs += [(rid, e, 50 * (e + 1), 1.0, 0.5, 1.0, acc[e], "underdamped", 0.16, 0.1, 0.9, 6.0 * (e + 1),
                    1.0, acc[e], "{}") for e in range(8)]
        if i % 100 == 7:
            results.append((rid, "attribution", now + i, attribution))
        if len(steps) > 200_000:
            _flush(db, rows, steps, epochs, results)
            rows, steps, epochs, results = [], [], [], []
    _flush(db, rows, steps, epochs, results)
    db.close()
    return time.perf_counter() - t0


def _flush(db, rows, steps, epochs, results) -> None:
    with db:
        db.executemany("INSERT INTO runs (id, created, updated, status, kind, method, model, dataset, label, config, "
                       "summary, parent, group_id, pid, pid_start, error) VALUES "
                       "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.executemany(f"INSERT INTO steps (run_id, {', '.join(STEP_FIELDS)}) VALUES "
                       f"(?, {', '.join('?' * len(STEP_FIELDS))})", steps)
        db.executemany(f"INSERT INTO epochs (run_id, {', '.join(EPOCH_FIELDS)}, extra) VALUES "
                       f"(?, {', '.join('?' * len(EPOCH_FIELDS))}, ?)", epochs)
        db.executemany("INSERT INTO results VALUES (?, ?, ?, ?)", results)


def render(runs_dir: Path, data_dir: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds per page render (after a warm-up render of each)."""
    from streamlit.testing.v1 import AppTest
    os.environ["BETA_RUNS_DIR"], os.environ["BETA_DATA_DIR"] = str(runs_dir), str(data_dir)
    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        at.switch_page(f"pages/views/{page.split()[0]}.py")
        if page == "runs explorer":
            at.run()
            at.text_input(key="rf").set_value(EXPLORER["rf"])
            at.selectbox(key="rsort").set_value(EXPLORER["rsort"])
            at.selectbox(key="group-by").set_value(EXPLORER["group-by"])
        times = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].value}")
        out[page] = statistics.median(times[1:])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--keep", help="build the stores in this folder and keep them")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="store-scale-"))
    results = {}
    attribution = real_attribution(base)
    for n in sizes:
        runs_dir = base / f"runs-{n}"
        if not (runs_dir / "runs.db").exists():
            secs = fill(runs_dir, n, attribution)
            mb = (runs_dir / "runs.db").stat().st_size / 1e6
            print(f"filled {n:,} runs in {secs:.0f} s ({mb:,.0f} MB)", flush=True)
        results[n] = render(runs_dir, base / "data")
        print(f"{n:>6,} runs: " + ", ".join(f"{p} {s:.2f} s" for p, s in results[n].items()), flush=True)
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        print(f"\npage          {lo:>7,}  {hi:>7,}  growth  target <= 1 s at {hi:,}")
        for p in PAGES:
            a, b = results[lo][p], results[hi][p]
            print(f"{p:<12} {a:7.2f}s {b:7.2f}s  {b / a:5.2f}x  {'MET' if b <= 1.0 else 'NOT MET'}")


if __name__ == "__main__":
    main()
