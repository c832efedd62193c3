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
