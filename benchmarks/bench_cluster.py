"""The same 12-run tiny sweep on the local backend and on the ray backend (a local Ray
instance on this machine), in one run.

Both run two at a time (2 local worker processes; Ray places 2 one-CPU tasks). Prints the
wall-clock ratio ray / local (target <= 1.2), the per-run overhead of each backend beyond the
run's own training time (ms: process or task start, data, record streaming, checkpoint), and
the throughput model runs/hour = N_slots x 3600 / (run_seconds + overhead) for a cluster.

Run: python benchmarks/bench_cluster.py [--epochs 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_core.jobs.bodies import execute_run  # noqa: E402
from beta_core.jobs.ray_backend import connect  # noqa: E402
from beta_core.queries import sweep_members  # noqa: E402
from beta_core.store import Store  # noqa: E402
from beta_core.sweeps import SweepPlan, sweep_run_config  # noqa: E402

SLOTS = 2


def sweep(tmp: Path, backend: str, epochs: int) -> tuple[float, list[float]]:
    store = Store(tmp / f"{backend}-{time.monotonic_ns()}")
    plan = SweepPlan(methods=["sgd-constant", "sgd-beta", "sgd-hybrid"], seeds=[0, 1, 2, 3],
                     overrides={"dataset": "synthetic", "synthetic_train": 1000, "synthetic_test": 200, "width": 8,
                                "epochs": epochs, "batch_size": 50, "device": "cpu", "lr": 0.05})
    sid = store.create_run({**sweep_run_config(plan), "options": {"parallel": SLOTS, "backend": backend}},
                           kind="sweep")
    t0 = time.perf_counter()
    run = execute_run(store, sid, str(tmp / "data"))
    wall = time.perf_counter() - t0
    assert run["status"] == "done", run["error"]
    members = sweep_members(store, sid)
    assert len(members) == 12 and all(r["status"] == "done" for _, r in members)
    return wall, [r["summary"]["wall_seconds"] for _, r in members]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    connect(None)
    start = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sweep(tmp, "local", 1)  # the data cache, once for both
        walls = {"local": [], "ray": []}
        runs = {"local": [], "ray": []}
        for backend in ("local", "ray", "ray", "local"):
            w, r = sweep(tmp, backend, args.epochs)
            walls[backend].append(w)
            runs[backend] += r
    print(f"12 tiny runs ({args.epochs} epochs, 1,000 synthetic images, width-8 CNN), {SLOTS} at a time, "
          "mean of 2 alternating passes; Ray instance start (once):", f"{start:.1f} s")
    for b in ("local", "ray"):
        wall, run = statistics.mean(walls[b]), statistics.mean(runs[b])
        over = wall * SLOTS / 12 - run
        print(f"  {b:<5}: {wall:6.2f} s wall, a run trains for {run:5.2f} s; overhead per run {1000 * over:6.0f} ms")
    ratio = statistics.mean(walls["ray"]) / statistics.mean(walls["local"])
    print(f"wall-clock ratio ray / local: {ratio:.3f}   target <= 1.2 -> {'MET' if ratio <= 1.2 else 'NOT MET'}")
    over = statistics.mean(walls["ray"]) * SLOTS / 12 - statistics.mean(runs["ray"])
    for n, t in ((8, 60.0), (8, 600.0), (64, 60.0)):
        print(f"model: {n} GPUs, {t:.0f}-s runs -> {n * 3600 / (t + over):,.0f} runs/hour")


if __name__ == "__main__":
    main()
