"""The records a run writes to our store, mirrored to the user's tracker, so trying
beta-scheduling never means leaving their dashboard.

A mirror is named by a spec: ``tensorboard:DIR`` (one event-file folder a run, ``DIR/<run
id>``, through ``torch.utils.tensorboard``) or ``mlflow`` / ``mlflow:URI`` (one MLflow run a
run, in experiment ``beta-core``, through MLflow's client). ``track.start(..., mirror=SPEC)``
mirrors a run of your loop; ``BETA_MIRROR=SPEC`` mirrors every run our engine trains. The
scalars are :data:`TAGS`: the step's loss, LR, momentum, ζ and effective LR, each epoch's
accuracies and losses and median ζ, names that ``beta-core import`` reads back. A tracker
that fails (a server down, a full disk) is said once (a RuntimeWarning) and the run goes on: the store
keeps every record either way.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

from .env import MIRROR_SPEC

__all__ = ["TAGS", "check_spec", "open_mirror", "Mirror"]

TAGS = {
    "step": {"loss": "train/loss", "lr": "train/lr", "momentum": "opt/momentum", "zeta": "damping/zeta",
             "eff_lr": "opt/eff_lr", "acc": "train/batch_acc"},
    "epoch": {"test_acc": "test/acc", "val_acc": "val/acc", "train_acc": "train/acc", "train_loss": "train/loss_epoch",
              "test_loss": "test/loss", "val_loss": "val/loss", "zeta_median": "damping/zeta_median"},
}


def check_spec(spec: str | None) -> str | None:
    """``spec`` if it names a mirror, else a ValueError saying what is expected."""
    if spec is not None and not MIRROR_SPEC.match(spec):
        raise ValueError(f"Invalid mirror {spec!r} (expected tensorboard:DIR, mlflow or mlflow:TRACKING_URI)")
    return spec


class Mirror:
    """Buffers a run's records and hands them to the tracker on :meth:`flush`."""

    def __init__(self, spec: str, run_id: str, config: dict) -> None:
        self.spec, self.run_id, self.buf, self.broken = spec, run_id, [], False
        kind, _, where = spec.partition(":")
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ImportError("Mirroring to TensorBoard needs tensorboard, which is not installed (expected pip "
                                  "install 'beta-core[tensorboard]')") from None
            self.tb = SummaryWriter(str(Path(where).expanduser() / run_id))
            self.tb.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(config.items())))
            self.ml = None
        else:
            try:
                from mlflow.tracking import MlflowClient
            except ImportError:
                raise ImportError("Mirroring to MLflow needs mlflow, which is not installed (expected pip install "
                                  "'beta-core[mlflow]')") from None
            self.tb, self.ml = None, MlflowClient(where or None)
            exp = self.ml.get_experiment_by_name("beta-core")
            exp_id = exp.experiment_id if exp else self.ml.create_experiment("beta-core")
            self.ml_run = self.ml.create_run(exp_id, run_name=run_id).info.run_id
            self.ml.log_batch(self.ml_run, params=_params(config))

    def write(self, rec: dict) -> None:
        if not self.broken:
            self.buf.append(rec)

    def flush(self) -> None:
        if self.broken or not self.buf:
            return
        points = [(tag, rec[f], int(rec["step"])) for rec in self.buf for f, tag in TAGS[rec["kind"]].items()
                  if isinstance(rec.get(f), (int, float)) and math.isfinite(rec[f])]
        self.buf = []
        try:
            if self.tb is not None:
                for tag, v, s in points:
                    self.tb.add_scalar(tag, v, s)
                self.tb.flush()
            else:
                from mlflow.entities import Metric
                now = int(time.time() * 1000)
                metrics = [Metric(tag, float(v), now, s) for tag, v, s in points]
                for i in range(0, len(metrics), 1000):  # MLflow's batch limit
                    self.ml.log_batch(self.ml_run, metrics=metrics[i:i + 1000])
        except Exception as e:  # noqa: BLE001 - the tracker's failure is not the run's
            self.broken = True
            warnings.warn(f"mirroring run {self.run_id} to {self.spec} stopped: {str(e)[:200]} (the run goes on; "
                          "the store keeps every record)", RuntimeWarning, stacklevel=2)

    def close(self, status: str = "done") -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()
        elif self.ml is not None and not self.broken:
            self.ml.set_terminated(self.ml_run, {"done": "FINISHED", "cancelled": "KILLED"}.get(status, "FAILED"))


def _params(config: dict):
    from mlflow.entities import Param
    return [Param(str(k)[:250], str(v)[:6000]) for k, v in sorted(config.items())][:100]


def open_mirror(spec: str | None, run_id: str, config: dict) -> Mirror | None:
    """The mirror ``spec`` names for this run, or None; a bad spec or a missing tracker is one line."""
    return Mirror(check_spec(spec), run_id, config) if spec else None
