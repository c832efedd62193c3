"""How data/demo/demo.zip was recorded; the dashboard's "Load demo runs" button unpacks it.

Real runs on the CIFAR-10 JPEG pack, on 2 CPU cores: the quick-cpu comparison (three methods),
attribution and surgery (with controls) of its sgd-beta run, and the sweep-cpu tuned sweep.
Usage: python data/demo/record.py PATH/TO/cifar10-jpeg.tar.gz   (about 10 minutes on 2 cores)
"""
import sys
import tempfile
import time
from pathlib import Path

from beta_core.bundles import pack
from beta_core.cli import main
from beta_core.store import Store

archive = sys.argv[1]
store_dir = Path(tempfile.mkdtemp())
common = ["--runs-dir", str(store_dir / "runs"), "--data-dir", str(store_dir / "data")]


def cli(*argv: str) -> None:
    t = time.perf_counter()
    if main([*common, *argv]) != 0:
        sys.exit(f"failed: beta-core {' '.join(argv)}")
    print(f"# {time.perf_counter() - t:.0f} s: beta-core {' '.join(argv)}", flush=True)


cli("compare", "--preset", "quick-cpu", "--data-path", archive, "--quiet")
store = Store(store_dir / "runs")
beta = next(r["id"] for r in store.runs(kind="train") if r["method"] == "sgd-beta")
cli("attribute", beta)
cli("surgery", beta, "--controls", "--quiet")
cli("sweep", "--preset", "sweep-cpu", "--data-path", archive, "--parallel", "2", "--yes", "--quiet")
top = [r["id"] for r in store.runs() if not r.get("parent")]
out = Path(__file__).with_name("demo.zip")
print(pack(store, top, out))
