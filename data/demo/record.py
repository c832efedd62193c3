"""How data/demo/demo.zip was recorded; the dashboard's "Load demo runs" button unpacks it
with data/demo/findings.zip (recorded by record_findings.py: the tuned sweep behind
docs/findings.md, with its attributions and surgeries).

Real runs on the CIFAR-10 JPEG pack, on 2 CPU cores: the quick-cpu comparison (three methods),
attribution, surgery (with controls) and the localisation benchmark of its sgd-beta run, with
their weights (a user can attribute or repair them again); then the same sgd-beta run with a
planted fault (after training, noise of 1x its weights' RMS in ``block2``: the localisation
benchmark's fault), attributed and repaired, so a lecture shows both outcomes: the clean run,
where the diagnosis may find nothing, and the broken one, where it has something to find.
Usage: python data/demo/record.py PATH/TO/cifar10-jpeg.tar.gz   (about 15 minutes on 2 cores)
       python data/demo/record.py PATH/TO/cifar10-jpeg.tar.gz --fault-only   (adds the planted
       fault to the shipped demo.zip: its first part unchanged, about 5 minutes)
"""
import sys
import tempfile
import time
from pathlib import Path

from beta_core.bundles import pack, unpack
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


FAULT = "block2"  # a middle block of small_cnn; the benchmark beside it says how often the probe finds such a fault


def planted_fault(cli, store: Store, beta: str) -> None:
    """The clean sgd-beta run trained again (same seed), FAULT damaged after training; attributed and repaired."""
    cli("train", "--from", beta, "--set", f"planted_fault={FAULT}", "--quiet")
    faulty = next(r["id"] for r in store.runs(kind="train") if r["config"].get("planted_fault") == FAULT)
    cli("attribute", faulty, "-k", "1")  # one planted fault: the probe's top-1, the rate its benchmark measures
    cli("surgery", faulty, "-k", "1", "--controls", "--quiet")  # flags from training errors: no test leakage


def record(archive: str, fault_only: bool = False) -> None:
    store_dir = Path(tempfile.mkdtemp())
    cli = cli_for(store_dir)
    store = Store(store_dir / "runs")
    demo = Path(__file__).parent / "demo.zip"
    if fault_only:
        unpack(store, demo)
    else:
        cli("compare", "--preset", "quick-cpu", "--data-path", archive, "--quiet")
    beta = next(r["id"] for r in store.runs(kind="train") if r["method"] == "sgd-beta" and not
                r["config"].get("planted_fault"))
    if not fault_only:
        cli("attribute", beta)
        cli("surgery", beta, "--controls", "--quiet")
        cli("localise-bench", beta, "--quiet")  # how often each score finds a planted fault (about 7 minutes)
    planted_fault(cli, store, beta)
    print(pack(store, [r["id"] for r in store.runs()], demo))


if __name__ == "__main__":
    record(sys.argv[1], "--fault-only" in sys.argv[2:])
