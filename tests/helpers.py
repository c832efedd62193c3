"""Helpers shared by the tests (imported as ``from helpers import ...``; fixtures live in conftest)."""
from pathlib import Path

from beta_core.config import resolve_config

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
