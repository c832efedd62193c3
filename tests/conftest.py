"""Shared fixtures: tiny synthetic data so the suite stays fast on 2 CPU cores."""
from pathlib import Path

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


FACTORIES = Path(__file__).resolve().parent / "data" / "user_models.py"


@pytest.fixture
def trust_factories():
    """The test factories (tests/data/user_models.py) trusted in this process, as a user who typed
    them would; forgotten afterwards, so tests of the trust rule start from nothing trusted."""
    import ast

    from beta_core import zoo

    names = [n.name for n in ast.parse(FACTORIES.read_text()).body if isinstance(n, ast.FunctionDef)]
    zoo.trust(*(f"{FACTORIES}:{n}" for n in names))
    yield FACTORIES
    zoo.untrust_all()
