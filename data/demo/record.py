"""How data/demo/demo.zip was recorded; the dashboard's "Load demo runs" button unpacks it
with data/demo/findings.zip (recorded by record_findings.py: the tuned sweep behind
docs/findings.md, with its attributions and surgeries).

Real runs on the CIFAR-10 JPEG pack, on 2 CPU cores: the quick-cpu comparison (three methods),
attribution, surgery (with controls) and the localisation benchmark of its sgd-beta run, with
their weights (a user can attribute or repair them again).
Usage: python data/demo/record.py PATH/TO/cifar10-jpeg.tar.gz   (about 10 minutes on 2 cores)
"""
import sys
import tempfile
import time
from pathlib import Path

from beta_core.bundles import pack
from beta_core.cli import main
from beta_core.store import Store


def cli_for(store_dir: Path):
    """``cli(*argv)``: beta-core on the store in ``store_dir``, timed; a failure ends the script."""
    common = ["--runs-dir", str(store_dir / "runs"), "--data-dir", str(store_dir / "data")]

    def cli(*argv: str) -> None:
        t = time.perf_counter()
        if main([*common, *argv]) != 0:
            sys.exit(f"failed: beta-core {' '.join(argv)}")
        print(f"# {time.perf_counter() - t:.0f} s: beta-core {' '.join(argv)}", flush=True)
    return cli


def record(archive: str) -> None:
    store_dir = Path(tempfile.mkdtemp())
    cli = cli_for(store_dir)
    cli("compare", "--preset", "quick-cpu", "--data-path", archive, "--quiet")
    store = Store(store_dir / "runs")
    beta = next(r["id"] for r in store.runs(kind="train") if r["method"] == "sgd-beta")
    cli("attribute", beta)
    cli("surgery", beta, "--controls", "--quiet")
    cli("localise-bench", beta, "--quiet")  # how often each score finds a planted fault (about 7 minutes)
    print(pack(store, [r["id"] for r in store.runs()], Path(__file__).parent / "demo.zip"))


if __name__ == "__main__":
    record(sys.argv[1])
