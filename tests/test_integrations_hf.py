"""The Hugging Face Trainer callback: the rule's momentum at every step of a two-epoch run of a
tiny model built here (no download), and the run in the store."""
import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from beta_core.integrations.hf import BetaMomentumCallback
from beta_core.schedules import MomentumRule, momentum_at
from beta_core.store import Store


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class Spy(TrainerCallback):
    """What each optimizer step ran with, read from the optimizer itself."""

    def __init__(self):
        self.seen = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        g = optimizer.param_groups[0]
        self.seen.append((state.global_step, g["lr"], g[self.key]))


def _train(tmp_path, opt_class, key, rule="beta"):
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    data = [{"x": x[i], "labels": (x[i, 0] > 0).long()} for i in range(128)]
    model = Tiny()
    opt = opt_class(model.parameters(), lr=0.05, **({"momentum": 0.9} if key == "momentum" else {}))
    spy = Spy()
    spy.key = key
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=16,
                             logging_steps=1, eval_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=5)
    cb = BetaMomentumCallback(rule=rule, runs_dir=str(tmp_path / "runs"))
    Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:32], optimizers=(opt, None),
            compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
            callbacks=[cb, spy]).train()
    return spy.seen, cb


def test_sgd_momentum_is_the_rule_at_every_step_and_the_run_is_stored(tmp_path):
    seen, cb = _train(tmp_path, torch.optim.SGD, "momentum")
    assert len(seen) == 16 and [s for s, _, _ in seen] == list(range(16))
    rule = MomentumRule("beta")
    assert all(mu == momentum_at(rule, s, lr) for s, lr, mu in seen)
    assert len({lr for _, lr, _ in seen}) == 16  # the Trainer's linear schedule moved the LR every step
    store = Store(tmp_path / "runs")
    run = store.get_run(cb.run.id)
    assert run["kind"] == "external" and run["status"] == "done" and run["method"] == "sgd-beta"
    assert run["config"]["seed"] == 5 and run["config"]["framework"] == "transformers"
    steps = store.steps(run["id"])
    assert list(steps["momentum"]) == [mu for _, _, mu in seen] and list(steps["lr"]) == [lr for _, lr, _ in seen]
    assert len(store.epochs(run["id"])) == 2 and run["summary"]["regimes"] == ["critical", "critical"]


def test_adamw_beta1_follows_the_rule(tmp_path):
    seen, cb = _train(tmp_path, torch.optim.AdamW, "betas", rule="beta")
    rule = MomentumRule("beta")
    assert all(betas[0] == momentum_at(rule, s, lr) for s, lr, betas in seen)
    assert Store(tmp_path / "runs").get_run(cb.run.id)["method"] == "adam-beta"


def test_the_readmes_hf_script_runs_as_pasted(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from beta_core import trackers

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Bring your runs", 1)[1]
    (tmp_path / "hf_beta.py").write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    env = {**os.environ, "BETA_RUNS_DIR": str(tmp_path / "runs")}
    p = subprocess.run([sys.executable, "hf_beta.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (run,) = Store(tmp_path / "runs").runs()
    assert run["status"] == "done" and run["summary"]["epochs_completed"] == 3
    (src,) = trackers.read_tensorboard(tmp_path / "tb_logs")
    assert [v for _, v, _ in src.scalars["opt/momentum"]] == pytest.approx(
        list(Store(tmp_path / "runs").steps(run["id"])["momentum"]), rel=1e-6)  # event files hold float32
