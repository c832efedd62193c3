"""From Launch to the first plotted step and to all done, on a warm app, against pure compute.

The Train page's default comparison (quick-cpu: sgd-constant, sgd-beta, sgd-hybrid, seed 0)
is submitted to a JobManager as the page does (one worker at a time, BETA_MAX_JOBS=1), after a
warm-up run has started its warm worker. Measured in the same run:
- wall: Launch to all three done (each run's end read from the store, where it is written as
  the run finishes); first step: Launch to the first step record in the store (what the live
  chart reads), polled every 20 ms until seen, then no more often than a page refreshes (1 s);
- compute: the same three configs trained in this process (``Training.run()``, evaluation
  included, data already loaded), the limit no job system can beat; measured before and after
  the jobs, the mean of the two (one sample read the machine's ~0.5 s run-to-run noise as overhead);
- per-run overhead after the first: the time between one run finishing and the next finishing,
  less that run's compute.
Targets (issue 20): wall / compute <= 1.2; first step <= 2 s; overhead <= 0.5 s per run.

Run: python benchmarks/bench_latency.py [--epochs 5] [--images 6000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.config import plan_runs  # noqa: E402
from beta_core.engine import Training  # noqa: E402
from beta_core.jobs.manager import JobManager  # noqa: E402
from beta_core.presets import preset_methods  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--images", type=int, default=6000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latency-"))
    over = {"dataset": "synthetic", "synthetic_train": args.images + 1000, "epochs": args.epochs,
            "train_subset": args.images, "device": "cpu"}
    configs = plan_runs(preset_methods("quick-cpu"), [0], "quick-cpu", over)

    def compute_pass() -> list[float]:
        out = []
        for c in configs:
            t = Training(c, str(tmp / "data"))
            t.setup()
            s = time.perf_counter()
            for _ in t.run():
                pass
            out.append(time.perf_counter() - s)
        return out

    # Pure compute is measured before and after the jobs and averaged: identical runs vary by
    # ~0.5 s on this machine, and one sample against one job read that noise as overhead.
    before = compute_pass()
    jm = JobManager(tmp / "runs", str(tmp / "data"), max_parallel=1)  # the app's own settings
    warm = jm.submit(plan_runs(["sgd-beta"], [9], "quick-cpu", {**over, "epochs": 1})[0].to_dict())
    jm.wait([warm], timeout=600)  # the app is warm: a worker with torch imported and the data decoded

    t0, t0_wall = time.perf_counter(), time.time()
    ids = [jm.submit(c.to_dict()) for c in configs]
    first = None
    while first is None:  # fine polling only until the first point: it is what this times
        if jm.store.step_counts(ids[0])[ids[0]] > 0:
            first = time.perf_counter() - t0
        time.sleep(0.02)
    # Then look no more often than a live page does: polling every 50 ms from here took CPU from
    # the 2-core machine's training and was measured as job overhead. When each run ended is
    # read from the store afterwards (a run's ``updated`` is written as it finishes).
    while any(jm.store.get_run(i)["status"] in ("queued", "running") for i in ids):
        time.sleep(1.0)
    finished = {i: jm.store.get_run(i)["updated"] - t0_wall for i in ids}
    wall = max(finished.values())
    assert all(jm.store.get_run(i)["status"] == "done" for i in ids)
    jm.close()

    compute = [(a + b) / 2 for a, b in zip(before, compute_pass())]
    ends = [finished[i] for i in ids]
    overheads = [ends[k] - ends[k - 1] - compute[k] for k in range(1, len(ids))]
    # The same gap less the run's own recorded wall clock (training and evaluation in the worker):
    # what the job system adds (hand-over, setup, writing), free of compute noise between processes.
    own = [jm.store.get_run(i)["summary"]["wall_seconds"] for i in ids]
    system = [ends[k] - ends[k - 1] - own[k] for k in range(1, len(ids))]
    print(f"three runs of quick-cpu ({args.epochs} epochs, {args.images} synthetic images), one worker, warm app")
    print(f"first step visible after Launch : {first:6.2f} s   target <= 2 s -> {'MET' if first <= 2 else 'NOT MET'}")
    print(f"Launch to all done (wall)       : {wall:6.2f} s")
    print(f"pure compute of the same runs   : {sum(compute):6.2f} s  ({', '.join(f'{c:.2f}' for c in compute)})")
    print(f"wall / compute                  : {wall / sum(compute):6.3f}   target <= 1.2 -> "
          f"{'MET' if wall / sum(compute) <= 1.2 else 'NOT MET'}")
    print(f"overhead per run after the first: {', '.join(f'{o:.2f}' for o in overheads)} s   target <= 0.5 s -> "
          f"{'MET' if max(overheads) <= 0.5 else 'NOT MET'}")
    print(f"  of which the job system (gap less the run's own wall clock): {', '.join(f'{o:.2f}' for o in system)} s")


if __name__ == "__main__":
    main()
