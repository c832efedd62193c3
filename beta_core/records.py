"""Record schemas: what a run yields and the store keeps, and run statuses.

Every record says what it is in ``rec["kind"]``:

* ``step``:  step, epoch, lr, momentum, zeta, eff_lr, loss, acc, time
* ``epoch``: epoch, step, train_loss, train_acc, test_loss, test_acc, regime, zeta_median,
  lr, momentum, time, val_loss, val_acc (None without a validation split), plus optional
  extras such as ``group_scores``, kept as JSON

``time`` is seconds since the run started (wall clock, evaluation included); ``step`` counts
optimizer steps from 0. A run's status is one of :data:`STATUSES`; :data:`ACTIVE` ones can
still change.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypedDict

__all__ = ["Cell", "STEP", "EPOCH", "SYSTEM", "MEMBER", "CASE", "STEP_FIELDS",
           "EPOCH_FIELDS", "STATUSES", "ACTIVE", "TRAINED_KINDS", "TAG", "time_to_accuracy", "accuracy_series",
           "crossing_times",
           "StepRecord", "EpochRecord", "MemberRecord", "CaseRecord", "TrainSummary", "SurgerySummary", "Coverage",
           "SweepSummary", "SweepReport", "AttributionResult", "train_config_of", "Progress"]

STEP, EPOCH = "step", "epoch"
# A run's tag (annotations: a run's tags are a JSON list of these).
TAG = re.compile(r"^[\w.:/+-]{1,40}$")
# Run kinds whose records are a training run's curves: ours, your loop's (track), another tracker's (import).
TRAINED_KINDS = ("train", "external", "imported")
SYSTEM = "system"  # a run's result rows: the machine while it trained (sysmon)
MEMBER = "member"  # a sweep's progress: one member run finished (not stored; the run is)
CASE = "case"      # the localisation benchmark's progress: one damaged model scored
STEP_FIELDS = ("step", "epoch", "lr", "momentum", "zeta", "eff_lr", "loss", "acc", "time")
EPOCH_FIELDS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "regime",
                "zeta_median", "lr", "momentum", "time", "val_loss", "val_acc")

# Named types of what runs yield and store (read by field name; the comments say the units).
StepRecord = TypedDict("StepRecord", {  # one optimizer step; time: seconds since the run started, wall clock
    "kind": str, "step": int, "epoch": int, "lr": float, "momentum": float, "zeta": float | None,  # None: Adam
    "eff_lr": float, "loss": float, "acc": float, "time": float})
EpochRecord = TypedDict("EpochRecord", {  # one epoch; hooks add extras (group_scores, lam_max, ...)
    "kind": str, "epoch": int, "step": int, "train_loss": float, "train_acc": float, "test_loss": float,
    "test_acc": float, "regime": str | None, "zeta_median": float | None, "lr": float, "momentum": float,
    "time": float, "val_loss": float | None, "val_acc": float | None}, total=False)
MemberRecord = TypedDict("MemberRecord", {  # a sweep's progress (not stored): one member run finished
    "kind": str, "cell": str, "stage": str, "run": str, "status": str, "summary": dict, "done": int,
    "total": int})
CaseRecord = TypedDict("CaseRecord", {  # the localisation benchmark's progress (not stored)
    "kind": str, "done": int, "fault": str, "severity": float, "group": str, "acc_drop": float, "ranks": dict},
    total=False)
TrainSummary = TypedDict("TrainSummary", {  # a training run's summary; seconds are wall clock on its machine
    "status": str, "epochs_completed": int, "wall_seconds": float, "step_seconds": float,
    "final_test_acc": float | None, "best_test_acc": float | None, "final_val_acc": float | None,
    "best_val_acc": float | None, "n_train": int, "n_val": int, "n_test": int, "time_to_accuracy": dict,
    "device": str, "steps_per_epoch": int, "data": str, "synthetic": bool, "regimes": list,
    "groups": list, "environment": dict}, total=False)  # groups: [[name, parameters]] in forward order;
# environment: provenance.environment() of the machine it trained on
SurgerySummary = TypedDict("SurgerySummary", {  # a surgery run's summary: acc_after is the repaired accuracy
    "groups": list, "param_fraction": float, "leaky": bool, "train_split": str, "eval_split": str,
    "savings_param_proxy": float, "savings_measured": float | None, "surgery_seconds": float,
    "full_seconds": float, "fixed": int, "broken": int, "net": int, "acc_before": float, "acc_after": float,
    "classes": list, "data": str, "synthetic": bool, "report": dict}, total=False)
Coverage = TypedDict("Coverage", {  # which planned cells of a sweep's reported stage counted
    "planned": int, "counted": int, "missing": list})  # missing: [{"cell": label, "status": ... or "never ran"}]
SweepSummary = TypedDict("SweepSummary", {  # a sweep's summary; the full report is its "sweep" result
    "coverage": Coverage, "members": int, "claims": list, "setting": dict, "note": str | None,
    "synthetic": bool, "data": str}, total=False)
SweepReport = TypedDict("SweepReport", {  # a sweep's "sweep" result (sweeps.analyse, plus its coverage)
    "setting": dict, "methods": dict, "comparisons": list, "claims": list, "note": str | None,
    "choice": dict | None, "statistics": dict, "coverage": Coverage}, total=False)  # claims: verdicts' claim rows;
# methods: per method its arm summary; choice: stage 1's chosen values per method (None without tuning)
AttributionResult = TypedDict("AttributionResult", {  # attribution.attribute's result, stored on the run
    "config": dict, "groups": list, "classes": list, "n_samples": int, "n_errors": int, "accuracy": float,
    "param_counts": dict, "scores": dict, "correct_scores": dict | None, "ratio": dict, "by_true_class": list,
    "by_pred_class": list | None, "errors_per_true_class": list, "probe_scores": dict | None,
    "probe_ranking": list | None, "score": str, "score_values": dict, "score_seconds": float | None,
    "score_meaning": str, "flagged": list, "flagged_scores": dict, "param_fraction": float, "ranking": list,
    "run_id": str, "gallery": list}, total=False)  # gallery: attribution.error_gallery's images

# "incomplete": a sweep whose reported stage has cells that did not count (its report says which).
STATUSES = ("queued", "running", "done", "failed", "diverged", "cancelled", "interrupted", "incomplete")
ACTIVE = ("queued", "running")


def time_to_accuracy(epochs: list[dict], thresholds) -> dict[str, dict | None]:
    """First epoch, step and second at which test accuracy reaches each threshold (None: never).

    >>> time_to_accuracy([{"epoch": 0, "step": 10, "time": 1.0, "test_acc": 0.6}], [0.5, 0.7])
    {'0.5': {'epoch': 0, 'step': 10, 'time': 1.0}, '0.7': None}
    """
    out = {}
    for t in thresholds:
        hit = next((e for e in epochs if e["test_acc"] >= t), None)
        out[f"{t:g}"] = None if hit is None else {"epoch": hit["epoch"], "step": hit["step"], "time": hit["time"]}
    return out


def train_config_of(run: dict) -> dict:
    """The training config behind a stored run: its own, or a surgery run's parent config."""
    return run["config"]["train"] if run["kind"] == "surgery" else run["config"]


def accuracy_series(epochs: list[dict]) -> list[tuple[int, float, float]]:
    """(step, seconds, test accuracy) of a run's evaluations, in order: the evaluations within
    epochs (``evals`` extras, a fixed test subset) where the run made them, else one per epoch."""
    within = [tuple(e) for ep in epochs for e in (ep.get("evals") or [])]
    return within or [(ep["step"], ep["time"], ep["test_acc"]) for ep in epochs]


def crossing_times(series: list[tuple[int, float, float]], thresholds) -> dict[str, dict | None]:
    """When test accuracy first reaches each threshold, interpolated linearly (in steps and in
    seconds) between the two evaluations around the crossing; None: never.

    >>> crossing_times([(100, 10.0, 0.4), (200, 20.0, 0.6)], [0.5, 0.7])
    {'0.5': {'step': 150.0, 'time': 15.0}, '0.7': None}
    """
    out = {}
    for t in thresholds:
        i = next((k for k, (_, _, a) in enumerate(series) if a >= t), None)
        if i is None:
            out[f"{t:g}"] = None
        elif i == 0:
            out[f"{t:g}"] = {"step": float(series[0][0]), "time": float(series[0][1])}
        else:
            (s0, t0, a0), (s1, t1, a1) = series[i - 1], series[i]
            f = (t - a0) / (a1 - a0)
            out[f"{t:g}"] = {"step": s0 + f * (s1 - s0), "time": t0 + f * (t1 - t0)}
    return out


class Progress(TypedDict, total=False):
    """Where a running job is (kept in its summary as ``progress``; a train run's done steps are
    its step records): phase in words, units done of total, the unit, when the phase began."""
    phase: str
    done: int
    total: int
    unit: str
    started: float


# A sweep member is one cell of its plan; the cell's key is stored as the run's label.
@dataclass(frozen=True)
class Cell:
    stage: str          # "tune" or "test"
    method: str
    seed: int
    values: tuple       # ((field, value), ...) sorted by field

    def key(self) -> str:
        return json.dumps({"stage": self.stage, "method": self.method, "seed": self.seed,
                           "values": dict(self.values)}, sort_keys=True)

    @classmethod
    def from_key(cls, key: str) -> Cell:
        d = json.loads(key)
        return cls(d["stage"], d["method"], d["seed"], tuple(sorted(d["values"].items())))

    def label(self) -> str:
        vals = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.values)
        return f"{self.method} {vals} seed {self.seed}".replace("  ", " ")
