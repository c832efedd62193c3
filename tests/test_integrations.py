"""The Lightning callback: the rule's momentum after every step, the run in the store."""
import math
import subprocess
import sys

import pytest
import torch

from beta_core.store import Store

pl = pytest.importorskip("lightning.pytorch", reason="Lightning is an optional extra")


class Tiny(pl.LightningModule):
    def __init__(self, lr=0.04):
        super().__init__()
        self.net, self.lr = torch.nn.Linear(8, 3), lr

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, 8),
                                                   "interval": "step"}}


def _loader(n=64):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def test_callback_sets_the_rules_momentum_and_logs_the_run(tmp_path):
    from beta_core.integrations.lightning import BetaMomentum
    pl.seed_everything(5)
    cb = BetaMomentum(rule="beta", test_metric="val_acc", runs_dir=str(tmp_path / "runs"))
    trainer = pl.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=tmp_path)
    trainer.fit(Tiny(), _loader(), _loader(32))
    store = Store(tmp_path / "runs")
    (run,) = store.runs()
    assert run["kind"] == "external" and run["status"] == "done" and run["method"] == "sgd-beta"
    assert run["config"]["seed"] == 5 and run["config"]["framework"] == "lightning"
    steps = store.steps(run["id"])
    assert len(steps) == 8 and steps["step"].tolist() == list(range(8))
    # every step after the first ran with the rule's momentum for its LR: mu = 1 - 2 sqrt(lr)
    for lr, mu in zip(steps["lr"][1:], steps["momentum"][1:]):
        assert mu == pytest.approx(max(0.0, min(0.99, 1 - 2 * math.sqrt(lr))))
    assert steps["lr"].is_monotonic_decreasing  # cosine, stepped by Lightning before the momentum is set
    epochs = store.epochs(run["id"])
    assert len(epochs) == 2 and epochs["test_acc"].between(0, 1).all()
    assert run["summary"]["epochs_completed"] == 2


def test_a_missing_metric_is_one_line(tmp_path):
    from beta_core.integrations.lightning import BetaMomentum
    cb = BetaMomentum(rule="beta", test_metric="test_acc", runs_dir=str(tmp_path / "runs"))
    trainer = pl.Trainer(max_epochs=1, callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="no 'test_acc' in the logged metrics.*test_metric=NAME"):
        trainer.fit(Tiny(), _loader(), _loader(32))
    (run,) = Store(tmp_path / "runs").runs()
    assert run["status"] == "failed" and "test_acc" in run["error"]


def test_importing_without_lightning_says_what_to_install():
    code = ("import sys; sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None; "
            "sys.modules['pytorch_lightning'] = None\n"
            "try:\n    import beta_core.integrations.lightning\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip()
    assert out == ("beta_core.integrations.lightning needs Lightning, which is not installed "
                   "(expected pip install 'beta-core[lightning]')")
