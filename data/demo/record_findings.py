"""How data/demo/findings.zip was recorded: the runs behind docs/findings.md (`beta-core findings`).

Real runs on the CIFAR-10 JPEG pack, on 2 CPU cores (about 45 minutes):
1. claims 1 and 4: the sweep-cpu design with the paper's five methods, LRs tuned on validation
   (2 tuning seeds), then 12 fresh seeds per method. Targets and margins fixed here, before the
   runs: test accuracy 45%, 50% and 55% (sweep-cpu's tuned runs end near 58-60%, so every target
   is one the runs can reach); equivalence within 1 point of accuracy and 10% of speed.
2. claim 2: attribution of the sgd-beta and the adam run of every test seed (same data, same
   seed), both scores (the paper's gradient score and the probe) stored on each run.
3. claim 3: surgery with controls on every sgd-beta run, on the three groups the paper's
   gradient score flags (the paper's choice of groups).
Usage: python data/demo/record_findings.py PATH/TO/cifar10-jpeg.tar.gz
"""
import sys
import tempfile
from pathlib import Path

from record import cli_for  # data/demo/record.py, beside this script

from beta_core.bundles import pack
from beta_core.findings import FINDINGS_SWEEP, gradient_top
from beta_core.queries import sweep_members
from beta_core.store import Store

archive = sys.argv[1]
store_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp())
cli = cli_for(store_dir)
store = Store(store_dir / "runs")
if not store.runs(kind="sweep"):
    cli("sweep", *FINDINGS_SWEEP, "--data-path", archive, "--parallel", "2", "--yes", "--quiet")
sweep = store.runs(kind="sweep")[0]["id"]
test = [(c, r) for c, r in sweep_members(store, sweep) if c.stage == "test" and r["status"] == "done"]
for c, r in test:
    if c.method in ("sgd-beta", "adam") and not store.results(r["id"], "attribution"):
        cli("attribute", r["id"])
for c, r in test:
    done = [s for s in store.runs(kind="surgery") if s["parent"] == r["id"] and s["status"] == "done"]
    if c.method == "sgd-beta" and not done:
        cli("surgery", r["id"], "--groups", ",".join(gradient_top(store.results(r["id"], "attribution")[-1])),
            "--controls", "--quiet")
# One bundle without checkpoints: the findings read records and results only.
print(pack(store, [sweep] + [s["id"] for s in store.runs(kind="surgery")], Path(__file__).parent / "findings.zip",
           checkpoints=False))
