"""Log any PyTorch training loop to the run store: your loop, our damping picture and verdicts.

With this module and ``schedules.MomentumScheduler`` / ``MomentumRule`` imported (README, "Your
training loop")::

    with track.start(method="sgd-beta", seed=0, config={"lr": 0.1, "model": "mine"}) as run:
        sched = MomentumScheduler(opt, MomentumRule("beta"))
        for epoch in range(epochs):
            for step, (x, y) in ...:
                ...; opt.step(); sched.step()
                run.log_step(step, loss=loss.item(), optimizer=opt)   # lr, momentum, zeta, eff_lr from opt
            run.log_epoch(epoch, test_acc=..., val_acc=..., train_loss=...)

A tracked run is kind ``external`` and uses the same record schemas as an engine run
(``records``), so Runs, the Train page's live charts, time-to-accuracy, damping regimes and
verdicts read it like ours.

Every record is kept or refused, never silently changed: ``step`` is the global optimizer step
and must increase over the whole run (a loop that restarts ``enumerate(loader)`` each epoch logs
``step=epoch * len(loader) + i``); a repeated or smaller step, a negative one, an LR that is not
a finite number >= 0, a momentum outside [0, 1), a seed outside [0, 2**32 - 1] or a bool are a
``ValueError`` naming the value. A non-finite loss ends the run ``diverged`` (as the engine's
runs) and raises :class:`Diverged`; a finished run refuses further records.

Records are buffered and written once per ~0.5 s (the engine's
writer); the store is safe from several processes. A run ends ``done`` on ``finish()`` or a
clean exit of the ``with`` block, ``cancelled`` on Ctrl-C, ``failed`` with the message on an
exception; a process killed outright reads ``interrupted``, as ours do. Under DDP only rank 0
logs unless ``all_ranks=True`` (each rank then logs its own run, its rank in the config).
Nothing here imports the engine or a UI.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from pathlib import Path

import torch

from . import zoo
from .damping import regime_summary
from .damping import zeta as damping_zeta
from .fieldtypes import LR_MAX, SEED_MAX
from .mirror import Mirror, check_spec, open_mirror
from .provenance import environment
from .records import EPOCH, STEP, TrainSummary, time_to_accuracy
from .schedules import effective_lr
from .schemas import MAX_STEP
from .store import MetricWriter, Store

__all__ = ["start", "Run", "optimizer_state", "Diverged"]

KIND = "external"


_BOUNDED = {"lr": (0, LR_MAX), "momentum": (0, 1), "mu": (0, 1), "weight_decay": (0, 1e6)}


class Diverged(ValueError):
    """The loss logged was not finite: the run was ended ``diverged``."""


def _number(name: str, v, low: float, high: float, high_open: bool = False, what: str = "a finite number") -> float:
    """A finite real number in [low, high] (or [low, high)): not a bool, a string, NaN or inf."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high
    if not ok or (high_open and v >= high):
        raise ValueError(f"Invalid {name}: {v!r} (expected {what} in [{low:g}, {high:g}{')' if high_open else ']'})")
    return float(v)


def _int(name: str, v, low: int, high: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise ValueError(f"Invalid {name}: {v!r} (expected an integer in [{low}, {high:,}])")
    return v


def optimizer_state(optimizer) -> tuple[float, float, bool]:
    """(lr, momentum, adam) of an optimizer's first parameter group: SGD's ``momentum``, or
    Adam's beta1 (no heavy-ball damping ratio describes Adam)."""
    g = optimizer.param_groups[0]
    if "betas" in g:
        return float(g["lr"]), float(g["betas"][0]), True
    if "momentum" in g:
        return float(g["lr"]), float(g["momentum"]), False
    raise ValueError(f"Unsupported optimizer {type(optimizer).__name__}: expected one with 'momentum' (SGD, "
                     "RMSprop) or 'betas' (Adam, AdamW) in its param_groups; pass lr= and momentum= instead")


class Run:
    """One tracked run; see the module docstring. ``id`` names it in the store."""

    def __init__(self, store: Store, run_id: str, lam: float, thresholds: tuple, mirror: Mirror | None = None) -> None:
        self.store, self.id, self.lam, self.thresholds = store, run_id, lam, thresholds
        self.writer = MetricWriter(store, run_id, mirror=mirror)
        self.t0 = time.perf_counter()
        self.epoch, self.pairs, self.adam = 0, [], False
        self.epochs: list[dict] = []
        self.steps_in_epoch, self.steps_per_epoch = 0, None
        self.last_step = -1
        self.ended, self.status = False, "running"

    # ------------------------------------------------------------------ logging
    def log_step(self, step: int, loss: float, optimizer=None, lr: float | None = None,
                 momentum: float | None = None, acc: float | None = None) -> None:
        """One optimizer step. ``optimizer``: lr and momentum (SGD) or beta1 (Adam) are read from
        it; or give ``lr`` and ``momentum`` yourself. ``loss`` may be a float or a 0-d tensor."""
        self._open("log_step")
        if optimizer is not None:
            lr, momentum, self.adam = optimizer_state(optimizer)
        if lr is None or momentum is None:
            raise ValueError("log_step needs optimizer= or both lr= and momentum= (expected the step's LR and "
                             "momentum, which the damping ratio is made of)")
        step = _int("step", step, 0, MAX_STEP)
        if step <= self.last_step:
            raise ValueError(f"Invalid step: {step} after step {self.last_step} (expected the global step, "
                             "increasing over the whole run: step=epoch * len(loader) + i when enumerate(loader) "
                             "starts again each epoch)")
        lr, momentum = _number("lr", lr, 0, LR_MAX), _number("momentum", momentum, 0, 1, high_open=True)
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = float(loss.detach())
        elif isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise ValueError(f"Invalid loss: {loss!r} (expected a number or a one-element tensor)")
        loss = float(loss)
        if acc is not None:
            acc = _number("acc", acc, 0, 1, what="an accuracy")
        if not math.isfinite(loss):
            self.writer.flush()
            self.finish("diverged", f"the loss was {loss} at step {step} (the engine's rule: a loss that is not "
                                    "finite ends the run diverged)")
            raise Diverged(f"Run {self.id} diverged: the loss was {loss} at step {step}; it is recorded as diverged "
                           "and takes no more records")
        z = damping_zeta(lr, momentum, self.lam) if lr > 0 and not self.adam else None
        self.pairs.append((lr, momentum))
        self.steps_in_epoch += 1
        self.last_step = step
        self.writer.add({"kind": STEP, "step": int(step), "epoch": self.epoch, "lr": lr, "momentum": momentum,
                         "zeta": z, "eff_lr": effective_lr(lr, momentum) if lr > 0 and momentum < 1 else 0.0,
                         "loss": loss, "acc": None if acc is None else float(acc),
                         "time": time.perf_counter() - self.t0})

    def log_epoch(self, epoch: int, test_acc: float, val_acc: float | None = None, train_loss: float | None = None,
                  train_acc: float | None = None, test_loss: float | None = None, val_loss: float | None = None,
                  **extra) -> None:
        """One epoch's evaluation (0-based ``epoch``, as the engine's); its damping regime is the
        median zeta of the steps logged since the previous epoch (lam = 1 unless the config
        says otherwise; ``n/a (Adam)`` for Adam)."""
        self._open("log_epoch")
        epoch = _int("epoch", epoch, 0, MAX_STEP)
        if self.epochs and epoch <= self.epochs[-1]["epoch"]:
            raise ValueError(f"Invalid epoch: {epoch} after epoch {self.epochs[-1]['epoch']} (expected 0-based "
                             "epochs, increasing)")
        test_acc = _number("test_acc", test_acc, 0, 1, what="an accuracy")
        val_acc, train_acc = (None if v is None else _number(n, v, 0, 1, what="an accuracy")
                              for n, v in (("val_acc", val_acc), ("train_acc", train_acc)))
        for n, v in (("train_loss", train_loss), ("test_loss", test_loss), ("val_loss", val_loss)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):  # NaN: a diverged epoch
                raise ValueError(f"Invalid {n}: {v!r} (expected a number)")
        valid = [(lr, mu) for lr, mu in self.pairs if lr > 0 and 0 <= mu < 1]
        zmed, regime, _ = regime_summary(valid, self.lam) if valid and not self.adam else (None, None, None)
        if self.adam:
            regime = "n/a (Adam)"
        last = self.pairs[-1] if self.pairs else (None, None)
        rec = {"kind": EPOCH, "epoch": int(epoch), "step": self.last_step + 1, "train_loss": train_loss,
               "train_acc": train_acc, "test_loss": test_loss, "test_acc": float(test_acc), "regime": regime,
               "zeta_median": zmed, "lr": last[0], "momentum": last[1],
               "val_loss": val_loss, "val_acc": val_acc,
               "time": time.perf_counter() - self.t0, **extra}
        self.writer.add(rec)
        self.epochs.append(rec)
        if self.steps_per_epoch is None and self.steps_in_epoch:
            self.steps_per_epoch = self.steps_in_epoch
            self.store.update_summary(self.id, {"steps_per_epoch": self.steps_per_epoch})
        self.epoch, self.pairs, self.steps_in_epoch = int(epoch) + 1, [], 0

    def save_model(self, model, factory: str | None = None) -> None:
        """Store ``model``'s weights (a state_dict, loaded weights-only) as the run's checkpoint;
        ``factory`` (a model spec, e.g. ``my_models.py:net``) says how to rebuild it, so
        attribution, surgery and curvature can load it (trusted in this process: you named it)."""
        self._open("save_model")
        if factory is not None:
            zoo.trust(factory)  # a spec that cannot be parsed is refused before anything is written
        self.store.save_checkpoint(self.id, model.state_dict())
        if factory is not None:
            self.store.update_summary(self.id, {"model_spec": factory})

    def _open(self, what: str) -> None:
        if self.ended:
            raise ValueError(f"Run {self.id} is finished ({self.status}): {what} after finish() is refused (expected "
                             "a new track.start(...) for more records)")

    # ------------------------------------------------------------------ ending
    def finish(self, status: str = "done", error: str | None = None) -> None:
        """End the run (idempotent): flush, then the summary an engine run has."""
        if self.ended:
            return
        self.ended, self.status = True, status
        self.writer.close(status)
        eps = self.epochs
        vals = [e["val_acc"] for e in eps if e["val_acc"] is not None]
        summary: TrainSummary = {
            "status": status, "epochs_completed": len(eps), "wall_seconds": time.perf_counter() - self.t0,
            "final_test_acc": eps[-1]["test_acc"] if eps else None,
            "best_test_acc": max((e["test_acc"] for e in eps), default=None),
            "final_val_acc": eps[-1]["val_acc"] if eps else None, "best_val_acc": max(vals, default=None),
            "time_to_accuracy": time_to_accuracy(eps, self.thresholds),
            "regimes": [e["regime"] for e in eps], "total_steps": self.last_step + 1,
        }
        if self.steps_per_epoch:
            summary["steps_per_epoch"] = self.steps_per_epoch
        old = self.store.get_run(self.id)["summary"]
        self.store.finish(self.id, status, {**old, **summary}, error)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            self.finish("done")
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("cancelled", "interrupted by the user (KeyboardInterrupt)")
        else:
            self.finish("failed", f"{kind.__name__}: {exc}"[:500])
        return False  # the exception goes on to the caller


class _Silent(Run):
    """The run of a rank that does not log (DDP, rank > 0): every call does nothing."""

    def __init__(self) -> None:
        self.id, self.ended = None, True

    def log_step(self, *a, **kw) -> None:
        pass

    def log_epoch(self, *a, **kw) -> None:
        pass

    def save_model(self, *a, **kw) -> None:
        pass

    def finish(self, *a, **kw) -> None:
        pass


def start(method: str, seed: int = 0, config: dict | None = None, runs_dir: str | os.PathLike | None = None,
          label: str | None = None, group: str | None = None, all_ranks: bool = False,
          mirror: str | None = None) -> Run:
    """A new running ``external`` run in the store (``runs_dir``, default BETA_RUNS_DIR or runs).

    ``method`` names the arm it belongs to (``sgd-beta``, ``sgd-constant``, or any name of
    yours) and ``seed`` its seed: verdicts pair runs by seed. ``config`` is stored as given
    (JSON-serialisable values), with the script, host, rank and process added; ``lam`` in it
    sets the curvature of the damping ratio (default 1, the paper's), ``thresholds`` the
    time-to-accuracy targets (default 0.9, 0.95). ``mirror`` (``tensorboard:DIR``, ``mlflow``,
    ``mlflow:URI``) also logs every record to your tracker (:mod:`beta_core.mirror`)."""
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank != 0 and not all_ranks:
        return _Silent()
    if not isinstance(method, str) or not method:
        raise ValueError(f"Invalid method: {method!r} (expected a non-empty name, e.g. sgd-beta)")
    seed = _int("seed", seed, 0, SEED_MAX)
    check_spec(mirror)
    config = dict(config or {})
    for name, (low, high) in _BOUNDED.items():  # hyperparameters bounded like TrainConfig's
        if config.get(name) is not None:
            _number(f"{name} in config", config[name], low, high, high_open=name in ("momentum", "mu"))
    if "seed" in config:
        _int("seed in config", config["seed"], 0, SEED_MAX)
    lam = _number("lam in config", config.get("lam", 1.0), 1e-12, 1e12)
    thresholds = config.get("thresholds", (0.9, 0.95))
    if not isinstance(thresholds, (list, tuple)) or not thresholds or \
            any(_number("thresholds in config", t, 0, 1) == 0 for t in thresholds):
        raise ValueError(f"Invalid thresholds in config: {thresholds!r} (expected accuracies in (0, 1])")
    thresholds = tuple(float(t) for t in thresholds)
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Invalid config: {e} (expected JSON values: numbers, strings, lists, dicts)") from None
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    full = {**config, "method": method, "seed": seed, "lam": lam, "thresholds": list(thresholds),
            "script": str(script) if script else "(interactive)", "host": socket.gethostname(), "rank": rank}
    store = Store(runs_dir)
    run_id = store.create_run(full, kind=KIND, status="running", label=label, group_id=group)
    store.update_summary(run_id, {"environment": environment()})
    try:
        to = open_mirror(mirror, run_id, full)
    except Exception as e:  # a missing extra, a tracker that cannot be reached: nothing is left running
        store.finish(run_id, "failed", error=f"the mirror {mirror} could not be opened: {str(e)[:300]}")
        raise
    return Run(store, run_id, lam, thresholds, to)
