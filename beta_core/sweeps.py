"""Sweeps: methods x seeds x a grid of config values, and the tuned two-stage comparison.

A sweep is stored as a run of kind ``sweep`` (its plan is the config); its member runs are
ordinary training runs with the sweep as parent and their cell as label. This module is
the pure part: the plan, its cells, the choice of stage 1 and the analysis of stage 2.
``jobs`` runs the cells.

Two stages (``tune`` non-empty):

1. **Tune**: every method over its grid on ``tune_seeds``; per method, the grid point with
   the best mean *validation* accuracy at the end of training is chosen. Ties (equal means)
   go to the grid point that comes first in grid order (the smaller LR when the grid is
   written ascending). A diverged run scores its last validation accuracy (0 if none); a
   failed or cancelled run is left out and counted. A chosen value at either end of its grid
   is flagged: "widen the grid".
2. **Test**: every method at its chosen point on fresh ``seeds`` (disjoint from the tuning
   seeds), reported on the *test* split: the test split never chooses anything.

Without ``tune``, one stage: every grid point on ``seeds``, reported on test, no choice.
Grids: ``{"*": {field: values}, family_or_method: {field: values}}``; a method's grid is
``*``, then its family (``sgd`` or ``adam``), then its own name. Adam keeps its own LR:
the ``*`` grid's ``lr`` does not reach Adam methods (give ``adam:lr=...``).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import socket
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
from scipy.stats import t as t_dist

from .config import METHODS, TrainConfig, coerce_field, is_adam, plan_runs
from .env import settings
from .formats import PAPER_CLAIMS
from .records import Cell, Coverage, SweepReport
from .stats import LEVEL, detectable_difference, mean_ci, seeds_needed
from .verdicts import MEAN_INTERVAL, TARGET_FRACTIONS, arm_summary, compare_arms, time_to_targets

__all__ = ["SweepPlan", "Cell", "parse_grid", "choose", "analyse", "member_score", "COUNTED", "RESUMED",
           "sweep_run_config", "mean_curves", "PAPER_CLAIMS", "coverage", "estimate_seconds", "CONFIRM_ABOVE",
           "derived_targets", "TARGET_FRACTIONS", "seeds_plan"]

COUNTED = ("done", "diverged")  # member statuses that are results (failed/cancelled/interrupted are not)
# Members that did not finish because the sweep itself stopped (a signal, a cancel, a killed
# process): ``--resume`` runs them again. A ``failed`` member is run again only with ``--retry-failed``.
RESUMED = ("cancelled", "interrupted")
# Config fields a grid must not vary: the sweep gives them their own option.
_NOT_GRID = {"seed": "seeds in --seeds, e.g. --seeds 1,2",
             "method": "methods in --methods, e.g. --methods sgd-beta,adam"}


def parse_grid(items: list[str]) -> dict:
    """``["lr=0.05,0.1", "adam:lr=1e-3,3e-3"]`` -> ``{"*": {"lr": [0.05, 0.1]}, "adam": {"lr": [...]}}``."""
    grid: dict = {}
    for item in items:
        scope, _, rest = item.rpartition(":") if ":" in item.split("=")[0] else ("", "", item)
        name, sep, values = rest.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"Invalid grid {item!r} (expected FIELD=V1,V2,... or METHOD:FIELD=V1,V2,...)")
        scope = scope or "*"
        if name.strip() in _NOT_GRID:
            raise ValueError(f"Invalid grid {item!r}: {name.strip()} is not a grid field "
                             f"(expected {_NOT_GRID[name.strip()]})")
        if scope not in ("*", "sgd", "adam", *METHODS):
            raise ValueError(f"Invalid grid scope {scope!r} in {item!r} (expected sgd, adam or a method: "
                             f"{', '.join(METHODS)})")
        vals = [coerce_field(name, v) for v in values.split(",") if v.strip()]
        if len(set(map(json.dumps, vals))) != len(vals):
            raise ValueError(f"Invalid grid {item!r} (expected distinct values)")
        grid.setdefault(scope, {})[name] = vals
    return grid


@dataclass(frozen=True)
class SweepPlan:
    methods: tuple                      # methods compared
    seeds: tuple                        # seeds of the reported stage
    grid: dict = field(default_factory=dict)  # see parse_grid
    tune: tuple = ()                    # grid fields chosen in stage 1 (empty: one stage)
    tune_seeds: tuple = ()              # seeds of stage 1, disjoint from ``seeds``
    targets: tuple = ()                 # test accuracies for time-to-target (empty: the config's thresholds)
    baseline: str | None = None         # the method the others are compared with (default: the first)
    preset: str | None = None           # starting config
    overrides: dict = field(default_factory=dict)  # config fields for every run
    equivalence: float = 0.005          # accuracy margin (0.5 pt): "equivalent" when the 90% interval is inside
    equivalence_speed: float = 0.10     # speedup margin (10%): the same on the log ratio of times
    evals_per_epoch: int = 4            # test-subset evaluations per epoch: time-to-target between epochs

    def __post_init__(self) -> None:
        for name in ("methods", "seeds", "tune", "tune_seeds", "targets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise ValueError(f"Unknown method: {unknown[0]!r}" if unknown else "Invalid methods: none given"
                             + f" (expected some of {', '.join(METHODS)})")
        if not self.seeds:
            raise ValueError("Invalid seeds: none given (expected integers, e.g. 0,1,2)")
        fields_ = {f for g in self.grid.values() for f in g}
        for scope in self.grid:
            if not any(scope in ("*", m, "adam" if is_adam(m) else "sgd") for m in self.methods):
                raise ValueError(f"Invalid grid scope {scope!r}: no method of the sweep is {scope!r} (expected a "
                                 f"scope among the methods {list(self.methods)}, or drop that grid)")
        if self.tune:
            if not self.tune_seeds:
                raise ValueError("Invalid tune seeds: none given (expected seeds for stage 1, e.g. 100,101)")
            shared = set(self.seeds) & set(self.tune_seeds)
            if shared:
                raise ValueError(f"Invalid seeds: {sorted(shared)} are both tuning and test seeds (expected fresh "
                                 "seeds for the reported stage)")
            if set(self.tune) != fields_:
                raise ValueError(f"Invalid tune {list(self.tune)} for grid fields {sorted(fields_)} (expected every "
                                 "grid field to be tuned: a two-stage sweep chooses all of them)")
        if not (0 < self.equivalence < 1 and 0 < self.equivalence_speed < 1):
            raise ValueError(f"Invalid equivalence margins: {self.equivalence}, {self.equivalence_speed} (expected "
                             "fractions in (0, 1), e.g. 0.005 for half a point and 0.1 for 10%)")
        if any(not 0 < t <= 1 for t in self.targets):
            raise ValueError(f"Invalid targets: {list(self.targets)} (expected test accuracies in (0, 1])")
        base = self.baseline or self.methods[0]
        if base not in self.methods:
            raise ValueError(f"Invalid baseline: {base!r} (expected one of the methods {list(self.methods)})")
        object.__setattr__(self, "baseline", base)
        for c in self.first_stage_cells():
            self.config(c)  # every cell's config validates now, before any run exists

    # ------------------------------------------------------------------ cells
    def grid_for(self, method: str) -> dict:
        base = dict(self.grid.get("*", {}))
        if is_adam(method):
            base.pop("lr", None)  # Adam keeps its own LR unless an adam grid gives one
        family = "adam" if is_adam(method) else "sgd"
        return {**base, **self.grid.get(family, {}), **self.grid.get(method, {})}

    def points(self, method: str) -> list[tuple]:
        g = self.grid_for(method)
        names = sorted(g)
        return [tuple(zip(names, combo)) for combo in itertools.product(*(g[n] for n in names))]

    def cells(self, stage: str, chosen: dict | None = None) -> list[Cell]:
        """Stage ``tune``: every grid point on the tuning seeds. Stage ``test``: each method at
        ``chosen[method]`` (two stages) or at every grid point (one stage), on ``seeds``."""
        if stage == "tune":
            return [Cell("tune", m, s, p) for m in self.methods for p in self.points(m) for s in self.tune_seeds]
        out = []
        for m in self.methods:
            pts = [tuple(sorted(chosen[m].items()))] if self.tune and chosen else self.points(m)
            out += [Cell("test", m, s, p) for p in pts for s in self.seeds]
        return out

    def first_stage_cells(self) -> list[Cell]:
        """The cells that run first: stage 1 when the plan tunes, else the reported stage."""
        return self.cells("tune" if self.tune else "test", {m: {} for m in self.methods})

    def n_cells(self) -> int:
        """Every cell of the sweep, both stages (the reported stage has one point per method when tuned)."""
        return len(self.cells("test", {m: {} for m in self.methods})) + (len(self.cells("tune")) if self.tune else 0)

    def config(self, cell: Cell) -> TrainConfig:
        over = {"evals_per_epoch": self.evals_per_epoch, **self.overrides, **dict(cell.values)}
        if self.targets:
            over["thresholds"] = self.targets
        return plan_runs([cell.method], [cell.seed], self.preset, over)[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepPlan:
        """A stored plan; one stored before evaluations within epochs existed resumes without them,
        so its new members train exactly as its old ones."""
        return cls(**{"evals_per_epoch": 0, **d})


# ------------------------------------------------------------------ stage 1
def member_score(run: dict) -> float | None:
    """Final validation accuracy of a member; a diverged one scores its last value (0 if none)."""
    if run["status"] not in COUNTED:
        return None
    v = run["summary"].get("final_val_acc")
    return v if v is not None else (0.0 if run["status"] == "diverged" else None)


def choose(plan: SweepPlan, members: list[tuple[Cell, dict]]) -> dict:
    """Per method: the grid point with the best mean final validation accuracy, its curve and
    edge flags. ``members``: (cell, run) of stage 1."""
    out = {}
    for m in plan.methods:
        curve = []
        for p in plan.points(m):
            scores = [member_score(r) for c, r in members if c.method == m and c.values == p]
            stat = mean_ci(scores)
            curve.append({"values": dict(p), **stat, "missing": sum(s is None for s in scores)})
        scored = [c for c in curve if c["mean"] is not None]
        if not scored:
            out[m] = {"values": None, "curve": curve, "edge": [], "val_acc": None}
            continue
        best = max(scored, key=lambda c: c["mean"])  # max keeps the first of equal means: grid order
        edge = [f for f in plan.tune if len(plan.grid_for(m).get(f, [])) > 1
                and best["values"][f] in (min(plan.grid_for(m)[f]), max(plan.grid_for(m)[f]))]
        out[m] = {"values": best["values"], "val_acc": best["mean"], "curve": curve, "edge": edge}
    return out


# ------------------------------------------------------------------ stage 2
def _paired_sd(d: dict) -> float | None:
    """The paired spread of a difference: stored since power was added, else read back from its
    t interval (half-width = t * sd / sqrt(n)), so older reports serve as pilots too."""
    if d.get("sd") is not None or d["n"] < 2 or d["ci_high"] is None:
        return d.get("sd")
    return (d["ci_high"] - d["mean_diff"]) * math.sqrt(d["n"]) / float(t_dist.ppf(1 - (1 - LEVEL) / 2, d["n"] - 1))


def seeds_plan(rep: dict, delta: float, ns=range(2, 21)) -> dict:
    """From a finished sweep's report (the pilot): the largest paired spread of final test
    accuracy among its comparisons, the seeds needed to detect ``delta`` at 80% power, and the
    detectable difference at each n in ``ns`` (the curve the Compare page draws)."""
    spreads = {m: _paired_sd(c["final_test_acc_diff"]) for m, c in rep["comparisons"].items()}
    spreads = {m: s for m, s in spreads.items() if s}
    if not spreads:
        raise ValueError("Invalid pilot: no paired spread in its report (expected a sweep with at least two seeds "
                         "per method and a verdict)")
    method, sd = max(spreads.items(), key=lambda kv: kv[1])
    return {"method": method, "sd": sd, "n_pilot": rep["comparisons"][method]["final_test_acc_diff"]["n"],
            "delta": delta, "needed": seeds_needed(sd, delta),
            "curve": [{"n": n, "detectable": detectable_difference(sd, n)} for n in ns]}


def derived_targets(plan: SweepPlan, choice: dict | None) -> tuple[list[float], str]:
    """The test accuracies time-to-target reads, and why: ``--target`` when given; else
    :data:`TARGET_FRACTIONS` of the baseline's mean final validation accuracy at its chosen
    point in stage 1 (targets that fit the data: on an easy dataset every method passes fixed
    targets in its first epoch); else the config's thresholds (a one-stage sweep has no stage 1)."""
    if plan.targets:
        return list(plan.targets), "given (--target)"
    base = (choice or {}).get(plan.baseline) or {}
    if base.get("val_acc"):
        ts = sorted({round(f * base["val_acc"], 3) for f in TARGET_FRACTIONS})
        return ts, (f"{', '.join(f'{100 * f:g}%' for f in TARGET_FRACTIONS)} of {plan.baseline}'s mean final "
                    f"validation accuracy in stage 1 ({base['val_acc']:.3f})")
    return list(plan.config(plan.first_stage_cells()[0]).thresholds), "the config's thresholds (no stage 1 to fit)"


def analyse(plan: SweepPlan, members: list[tuple[Cell, dict]], epochs: dict[str, list[dict]],
            choice: dict | None = None) -> SweepReport:
    """The report of the reported stage: per method statistics, paired differences and
    speedups against the baseline, verdicts per claim, and the setting."""
    runs = [(c, r) for c, r in members if c.stage == "test"]
    if not runs:
        raise ValueError("Invalid sweep: no runs in the reported stage (expected at least one)")
    cfg0 = plan.config(runs[0][0])
    targets, why = derived_targets(plan, choice)
    # An arm is a method at one grid point. Verdicts compare arms of one point per method (a
    # tuned sweep, or a grid of one value); a one-stage grid gets per-arm statistics only.
    arms: dict[str, dict[int, dict]] = {}
    arm_of: dict[str, str] = {}
    points: dict[str, set] = {}
    for c, _ in runs:
        points.setdefault(c.method, set()).add(c.values)
    for c, r in runs:
        name = c.method if len(points[c.method]) == 1 else c.label().rsplit(" seed", 1)[0]
        arm_of[c.key()] = name
        if r["status"] in COUNTED:
            arms.setdefault(name, {})[c.seed] = r
        else:
            arms.setdefault(name, {})
    tta, ends = time_to_targets(arms, epochs, targets)
    per_method = {}
    for m, seeds in arms.items():
        cells = [c for c, _ in runs if arm_of[c.key()] == m]
        missing = sum(1 for c, r in runs if arm_of[c.key()] == m and r["status"] not in COUNTED)
        per_method[m] = arm_summary(seeds, tta[m], targets, cells[0].method, missing, cells[0].values)
    comparable = all(m in arms for m in plan.methods)
    comparisons, claims = compare_arms({m: arms[m] for m in plan.methods} if comparable else {}, plan.baseline,
                                       tta, ends, targets, plan.equivalence, plan.equivalence_speed)
    base = plan.baseline
    any_run = runs[0][1]
    setting = {
        "model": cfg0.model.name, "width": cfg0.model.width, "data": any_run["summary"].get("data"),
        "synthetic": bool(any_run["summary"].get("synthetic")),
        "n_train": any_run["summary"].get("n_train"), "n_val": any_run["summary"].get("n_val"),
        "n_test": any_run["summary"].get("n_test"), "epochs": cfg0.epochs, "batch_size": cfg0.batch_size,
        "lr_schedule": cfg0.lr_schedule, "seeds": list(plan.seeds), "tune_seeds": list(plan.tune_seeds),
        "grid": plan.grid, "tuned": list(plan.tune), "baseline": base, "targets": list(targets), "targets_why": why,
        "chosen": {m: c["values"] for m, c in (choice or {}).items()} if plan.tune else None,
        "lrs": {m: plan.config(next(c for c, _ in runs if c.method == m)).lr for m in plan.methods},
        "device": any_run["summary"].get("device"), "preset": plan.preset,
    }
    note = None if comparable else ("no verdicts: several grid points per method in one stage (use --tune to "
                                    "choose one per method on validation first)")
    return {"setting": setting, "methods": per_method, "comparisons": comparisons, "claims": claims, "note": note,
            "choice": choice, "statistics": {"interval": "95%", "mean": MEAN_INTERVAL,
                                             "time_to_target": (
                                                 f"interpolated linearly between evaluations: {plan.evals_per_epoch} "
                                                 f"per epoch on a fixed subset of {cfg0.eval_images} test images"
                                                 if plan.evals_per_epoch else "interpolated linearly between "
                                                 "epoch-end evaluations of the test split"),
                                             "power": "80% detectable difference from the paired spread (noncentral t)",
                                             "equivalence": f"TOST, 90% interval inside ±{100 * plan.equivalence:g} pt "
                                                            f"(accuracy) / ±{100 * plan.equivalence_speed:g}% (speed)",
                                             "family": "Holm over the claims with a p-value (accuracy: paired t; "
                                                       "speed: paired t on log time ratios)",
                                             "difference": "paired t over shared seeds",
                                             "speedup": "geometric mean of paired time ratios, paired t on their "
                                                        "logs (chosen by simulation: docs/decisions.md); censored "
                                                        "runs at their training's end"}}


def coverage(cells: list[Cell], members: list[tuple[Cell, dict]]) -> Coverage:
    """Which planned cells of a stage count: ``planned``, ``counted`` and the ``missing`` ones
    (label and status; "never ran" for a cell with no run), so no verdict silently rests on
    fewer seeds than planned."""
    have = {c.key(): r for c, r in members}
    missing = [{"cell": c.label(), "status": have[c.key()]["status"] if c.key() in have else "never ran"}
               for c in cells if c.key() not in have or have[c.key()]["status"] not in COUNTED]
    return {"planned": len(cells), "counted": len(cells) - len(missing), "missing": missing}


CONFIRM_ABOVE = 200  # runs: a larger sweep states its size and duration and waits for a yes


def estimate_seconds(plan: SweepPlan, past: list[dict]) -> float | None:
    """Seconds the whole sweep would take one run at a time, from earlier finished runs of the
    same model *on this machine* (their recorded environment names this host; imported runs of
    another machine said 9 s for a sweep that took 4 min): the median seconds per training image
    and epoch; None without any."""
    cfgs = [plan.config(c) for c in plan.first_stage_cells()]
    model = cfgs[0].model.name
    host = socket.gethostname()
    past = [r for r in past if (r["summary"].get("environment") or {}).get("host") == host]
    rates = sorted(r["summary"]["wall_seconds"] / (r["summary"]["n_train"] * r["config"]["epochs"])
                   for r in past if r["config"].get("model") == model and r["summary"].get("wall_seconds")
                   and r["summary"].get("n_train") and r["config"].get("epochs"))
    if not rates:
        return None
    per_image_epoch = rates[len(rates) // 2]
    n_train = next((r["summary"]["n_train"] for r in past if r["config"].get("model") == model
                    and r["summary"].get("n_train")), None)
    size = cfgs[0].data.train_subset or n_train
    return plan.n_cells() * per_image_epoch * size * cfgs[0].epochs


def sweep_run_config(plan: SweepPlan, parallel: int = 1, retry_failed: bool = False) -> dict:
    """What a sweep stores as its config: the plan and how to run it. Every cell's thread count is
    fixed here, in the plan (BETA_THREADS, else the cores shared by ``parallel`` runs), so a cell
    gives the same numbers whether it runs in a worker or, resumed, in this process."""
    if plan.overrides.get("threads") is None:
        threads = settings().threads or max(1, (os.cpu_count() or 1) // parallel)
        plan = replace(plan, overrides={**plan.overrides, "threads": threads})
    first = plan.config(plan.first_stage_cells()[0])
    return {"method": "sweep", "model": first.model.name, "dataset": first.data.dataset, "sweep": plan.to_dict(),
            "options": {"parallel": parallel, "retry_failed": retry_failed}}


def mean_curves(epochs: pd.DataFrame, arm_of_run: dict[str, str], metric: str = "test_acc") -> pd.DataFrame:
    """Per arm and epoch: mean of ``metric`` over runs with its 95% t interval, and the mean
    step and seconds at that epoch (for plotting against steps or time)."""
    rows = []
    if epochs.empty:
        return pd.DataFrame(columns=["arm", "epoch", "step", "time", "mean", "ci_low", "ci_high", "n"])
    df = epochs[epochs["run_id"].isin(list(arm_of_run))].assign(arm=lambda d: d["run_id"].map(arm_of_run))
    for (arm, epoch), g in df.groupby(["arm", "epoch"]):
        st = mean_ci(g[metric].tolist(), bounds=(0, 1) if metric.endswith("acc") else None)
        rows.append({"arm": arm, "epoch": int(epoch), "step": float(g["step"].mean()), "time": float(g["time"].mean()),
                     "mean": st["mean"], "ci_low": st["ci_low"], "ci_high": st["ci_high"], "n": st["n"]})
    return pd.DataFrame(rows)
