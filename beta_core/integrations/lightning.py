"""A Lightning callback: momentum from a rule after every optimizer step, the run logged to the store.

With :class:`BetaMomentum` imported from here (README, "Your training loop")::

    trainer = L.Trainer(max_epochs=10, callbacks=[BetaMomentum(rule="beta", test_metric="val_acc")])

After each optimizer step the callback writes the rule's momentum (SGD's ``momentum``, Adam's
beta1) into the optimizer from the LR Lightning's scheduler has just set, exactly as
:class:`~beta_core.schedules.MomentumScheduler` does in a plain loop. With ``track=True`` the
run is logged through :mod:`beta_core.track` (kind ``external``): each step's LR, momentum and
loss, and at each epoch's end the held-out accuracy named by ``test_metric`` (and
``val_metric`` if logged) from ``trainer.callback_metrics``. Needs Lightning:
``pip install 'beta-core[lightning]'``.
"""
from __future__ import annotations

import os
from dataclasses import replace

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name carries the same API
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise ImportError("beta_core.integrations.lightning needs Lightning, which is not installed (expected "
                          "pip install 'beta-core[lightning]')") from None

from .. import track as tracking
from ..schedules import MomentumRule, MomentumScheduler
from ..track import optimizer_state

__all__ = ["BetaMomentum"]


class BetaMomentum(pl.Callback):
    """``rule``: a momentum rule name (``beta``, ``hybrid``, ``constant``, ...; see
    ``MomentumRule``), with ``rule_kwargs`` for its fields (``mu``, ``lam``, ...). ``method``
    names the run's arm (default ``sgd-<rule>`` or ``adam-<rule>``), ``seed`` its seed
    (default Lightning's ``seed_everything`` seed)."""

    def __init__(self, rule: str = "beta", track: bool = True, method: str | None = None, seed: int | None = None,
                 test_metric: str = "test_acc", val_metric: str | None = "val_acc", runs_dir: str | None = None,
                 config: dict | None = None, **rule_kwargs) -> None:
        self.rule = MomentumRule(rule, **rule_kwargs)  # a bad rule fails here, before training
        self.track, self.method, self.seed = track, method, seed
        self.test_metric, self.val_metric = test_metric, val_metric
        self.runs_dir, self.config = runs_dir, dict(config or {})
        self.scheduler, self.run, self.used = None, None, None

    def on_train_start(self, trainer, pl_module) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(f"BetaMomentum: {len(trainer.optimizers)} optimizers (expected exactly one)")
        opt = trainer.optimizers[0]
        total = trainer.estimated_stepping_batches
        known = total and total != float("inf")  # hybrid's fractional switch and onecycle need it
        rule = self.rule if self.rule.total_steps or not known else replace(self.rule, total_steps=int(total))
        self.scheduler = MomentumScheduler(opt, rule)
        if self.track:
            adam = optimizer_state(opt)[2]
            method = self.method or f"{'adam' if adam else 'sgd'}-{rule.name}"
            seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0) or 0)
            self.run = tracking.start(method, seed=seed, runs_dir=self.runs_dir,
                                      config={"lam": rule.lam, **self.config, "momentum_rule": rule.name,
                                              "optimizer": type(opt).__name__, "max_epochs": trainer.max_epochs,
                                              "model": type(pl_module).__name__, "framework": "lightning"})

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.used = optimizer_state(optimizer)[:2]  # the LR and momentum this step runs with

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.scheduler is None or self.used is None:
            return
        if self.run is not None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            if loss is not None:
                self.run.log_step(trainer.global_step - 1, loss=loss, lr=self.used[0], momentum=self.used[1])
        self.scheduler.step()  # Lightning has stepped its LR scheduler already: the next step's momentum
        self.used = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.run is None or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if self.test_metric not in metrics:
            raise ValueError(f"BetaMomentum: no {self.test_metric!r} in the logged metrics {sorted(metrics)} "
                             "(expected self.log(...) of a held-out accuracy in [0, 1] in validation_step, "
                             "or BetaMomentum(test_metric=NAME))")
        val = metrics.get(self.val_metric) if self.val_metric else None
        self.run.log_epoch(trainer.current_epoch, test_acc=float(metrics[self.test_metric]),
                           val_acc=None if val is None else float(val))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.run is not None:
            self.run.finish("done")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.run is not None:
            cancelled = isinstance(exception, KeyboardInterrupt)
            self.run.finish("cancelled" if cancelled else "failed",
                            "interrupted by the user (KeyboardInterrupt)" if cancelled
                            else f"{type(exception).__name__}: {exception}"[:500])
