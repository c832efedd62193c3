"""How long ``beta-core runs list`` takes on a 3,000-run store, against ``python -c pass`` and
against the full command line's imports (what every command paid before listing read the store
without torch: issue 30 measured 9 s, 8.4 s of it importing torch and torchvision).

Prints the median of 5 runs of each, and the ratios. Run: python benchmarks/bench_cli_start.py [--runs 3000]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store_scale import fill, real_attribution  # noqa: E402


def timed(cmd: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3000)
    n = ap.parse_args().runs
    tmp = Path(tempfile.mkdtemp())
    fill(tmp / "runs", n, real_attribution(tmp))
    py = sys.executable
    base = timed([py, "-c", "pass"])
    listing = timed([py, "-m", "beta_core", "--runs-dir", str(tmp / "runs"), "runs", "list"])
    full = timed([py, "-c", "import beta_core.cli.commands"])
    print(f"{n:,} runs in the store")
    print(f"python -c pass:                         {base:6.2f} s")
    print(f"beta-core runs list:                    {listing:6.2f} s  ({listing / base:.1f}x python -c pass)")
    print(f"import of the full CLI (torch included): {full:6.2f} s  (runs list takes {listing / full:.2f}x of it)")


if __name__ == "__main__":
    main()
