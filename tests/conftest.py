"""Shared fixtures: tiny synthetic data so the suite stays fast on 2 CPU cores."""
import pytest
import torch

from beta_core.data import make_synthetic

# One thread per test process keeps timings and parallel-process tests predictable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_splits():
    return make_synthetic(n_train=400, n_test=200, seed=0)


@pytest.fixture
def store(tmp_path):
    from beta_core.store import Store

    return Store(tmp_path / "runs")
