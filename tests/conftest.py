"""Shared fixtures: tiny synthetic data so the suite stays fast on 2 CPU cores."""
from pathlib import Path

import pytest
import torch

from beta_core.data import make_synthetic

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"

# One thread per test process keeps timings and parallel-process tests predictable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_splits():
    return make_synthetic(n_train=400, n_test=200, seed=0)


def tiny_config(**kw):
    """A run that takes about a second: synthetic 400/200 images, width-4 CNN."""
    from beta_core.engine import resolve_config

    base = dict(dataset="synthetic", synthetic_train=400, synthetic_test=200, model="small_cnn", width=4,
                epochs=1, batch_size=50, device="cpu", thresholds=(0.2, 0.3))
    method = kw.pop("method", "sgd-beta")
    return resolve_config(method, **{**base, **kw})


@pytest.fixture
def store(tmp_path):
    from beta_core.store import Store

    return Store(tmp_path / "runs")
