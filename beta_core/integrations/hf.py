"""A Hugging Face Trainer callback: momentum from a rule after every optimizer step, the run
logged to the store.

With :class:`BetaMomentumCallback` imported from here (README, "Bring your runs")::

    trainer = Trainer(model, args, train_dataset=..., eval_dataset=..., compute_metrics=...,
                      optimizers=(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), None),
                      callbacks=[BetaMomentumCallback(rule="beta")])

After each optimizer step the Trainer steps its LR scheduler; the callback then writes the
rule's momentum for the next step (SGD's ``momentum``, AdamW's beta1) from the LR the
scheduler set, as :class:`~beta_core.schedules.MomentumScheduler` does in a plain loop. With
``track=True`` the run is logged through :mod:`beta_core.track` (kind ``external``): at each
of the Trainer's logging steps (``logging_steps``) its loss with the LR and momentum that step
ran with, and at each evaluation the accuracy named by ``test_metric`` (``eval_accuracy``
when ``compute_metrics`` returns ``accuracy``). Needs transformers and accelerate:
``pip install 'beta-core[hf]'``.
"""
from __future__ import annotations

from dataclasses import replace

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError("beta_core.integrations.hf needs transformers, which is not installed (expected pip install "
                      "'beta-core[hf]')") from None

from .. import track as tracking
from ..schedules import MomentumRule, MomentumScheduler
from ..track import optimizer_state

__all__ = ["BetaMomentumCallback"]


class BetaMomentumCallback(TrainerCallback):
    """``rule``: a momentum rule name (``beta``, ``hybrid``, ``constant``, ...; see
    ``MomentumRule``), with ``rule_kwargs`` for its fields. ``method`` names the run's arm
    (default ``sgd-<rule>`` or ``adam-<rule>``), ``seed`` its seed (default the Trainer's)."""

    def __init__(self, rule: str = "beta", track: bool = True, method: str | None = None, seed: int | None = None,
                 test_metric: str = "eval_accuracy", val_metric: str | None = None, runs_dir: str | None = None,
                 config: dict | None = None, mirror: str | None = None, **rule_kwargs) -> None:
        self.rule = MomentumRule(rule, **rule_kwargs)  # a bad rule fails here, before training
        self.track, self.method, self.seed, self.mirror = track, method, seed, mirror
        self.test_metric, self.val_metric = test_metric, val_metric
        self.runs_dir, self.config = runs_dir, dict(config or {})
        self.scheduler, self.run, self.used, self.evaluations = None, None, {}, 0

    def on_train_begin(self, args, state, control, optimizer=None, model=None, **kwargs) -> None:
        if optimizer is None:
            raise ValueError("BetaMomentumCallback: the Trainer passed no optimizer (expected a Trainer that has "
                             "created one, or optimizers=(torch.optim.SGD(...), None))")
        rule = self.rule if self.rule.total_steps or not state.max_steps else replace(
            self.rule, total_steps=int(state.max_steps))  # hybrid's fractional switch and onecycle need it
        self.scheduler = MomentumScheduler(optimizer, rule)  # step 0's momentum, from the first LR
        if self.track:
            adam = optimizer_state(optimizer)[2]
            self.run = tracking.start(
                self.method or f"{'adam' if adam else 'sgd'}-{rule.name}",
                seed=self.seed if self.seed is not None else int(args.seed), runs_dir=self.runs_dir, mirror=self.mirror,
                config={"lam": rule.lam, **self.config, "momentum_rule": rule.name,
                        "optimizer": type(getattr(optimizer, "optimizer", optimizer)).__name__,
                        "epochs": args.num_train_epochs, "model": type(model).__name__ if model is not None else None,
                        "framework": "transformers"})

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs) -> None:
        if optimizer is not None:
            self.used[state.global_step] = optimizer_state(optimizer)[:2]  # what this step runs with

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.scheduler is not None:
            self.scheduler.step()  # the Trainer stepped its LR scheduler: the next step's momentum

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        step = state.global_step - 1
        if self.run is None or not logs or "loss" not in logs or step not in self.used:
            return
        lr, mu = self.used[step]
        self.run.log_step(step, loss=float(logs["loss"]), lr=lr, momentum=mu)
        self.used = {s: v for s, v in self.used.items() if s > step}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs) -> None:
        if self.run is None or not metrics:
            return
        if self.test_metric not in metrics:
            raise ValueError(f"BetaMomentumCallback: no {self.test_metric!r} in the evaluation's metrics "
                             f"{sorted(metrics)} (expected compute_metrics returning 'accuracy' in [0, 1], or "
                             "BetaMomentumCallback(test_metric=NAME))")
        val = metrics.get(self.val_metric) if self.val_metric else None
        self.run.log_epoch(self.evaluations, test_acc=float(metrics[self.test_metric]),
                           val_acc=None if val is None else float(val),
                           test_loss=float(metrics["eval_loss"]) if "eval_loss" in metrics else None)
        self.evaluations += 1

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.run is not None:
            self.run.finish("done")
