"""Runs of other trackers as our records: the damping picture of runs that already exist.

A :class:`~beta_core.trackers.Source` holds tags; a *map* says which tag is which of our
fields (``lr=train/lr,momentum=opt/momentum,test_acc=val/acc``). :func:`guess_map` proposes
one from common names (ours, Lightning's, Hugging Face's, Keras-style), shown before anything
is written; a value that is a number is a constant (``momentum=0.9``: a run that did not log
its fixed momentum). From the map, :func:`plan` builds the run's step and epoch records and
summary, checking every value (an LR that is not a finite number >= 0, a momentum outside
[0, 1), an accuracy outside [0, 1] after a percent scale is one ValueError naming tag and
step); :func:`import_sources` writes the planned runs (kind ``imported``), skipping a source
already imported (its tracker, store and run id are its key).

What the records say and what they assume:
- step records sit at every step where a step-level tag (lr, momentum, loss) was logged; an LR
  or momentum logged less often holds until its next value (as the optimizer held it);
- epoch record *i* is the *i*-th evaluation logged; its step is the logged step when that is a
  global step, or *i*+1 epochs' share of the steps when the tracker logged the epoch number;
- ζ = (1 - μ) / (2 sqrt(λ lr)) with λ = 1 unless ``lam`` says otherwise (the paper's
  assumption: the curvature scale is not logged); Adam's beta1 has no damping ratio.
Attribution, surgery and curvature need weights, which an import does not have
(:func:`no_weights` says so in one line).
"""
from __future__ import annotations

import bisect
import math
import re
import statistics

from .damping import regime_summary, zeta
from .fieldtypes import LR_MAX, SEED_MAX
from .formats import counted
from .mirror import TAGS
from .records import EPOCH, STEP, time_to_accuracy
from .schedules import effective_lr
from .schemas import MAX_STEP
from .store import Store, StoreError
from .trackers import Source

__all__ = ["KIND", "FIELDS", "STEP_LEVEL", "guess_map", "parse_map", "plan", "import_sources", "Planned",
           "format_map", "no_weights"]

KIND = "imported"
_SEP = r"[/_.\-]"
# Our field -> name patterns, most specific first (matched case-insensitively, whole tag).
FIELDS = {
    "lr": (rf"(train{_SEP})?(lr|learning_rate)", rf"(opt|optim|optimizer){_SEP}(lr|learning_rate)",
           r"lr-[a-z]+(/pg1)?", rf"lr{_SEP}[a-z]+"),
    "momentum": (rf"(train{_SEP}|opt{_SEP}|optim{_SEP}|optimizer{_SEP})?(momentum|mu|beta1)",
                 r"lr-[a-z]+-(momentum|beta1)(/pg1)?"),
    "loss": (rf"(train{_SEP})?loss(_step)?", rf"loss{_SEP}train", rf"train{_SEP}batch{_SEP}loss"),
    "test_acc": (rf"test{_SEP}?(acc|accuracy|top1|top_1)(_epoch)?", rf"(acc|accuracy){_SEP}test"),
    "val_acc": (rf"(val|valid|validation|eval){_SEP}?(acc|accuracy|top1|top_1)(_epoch)?",
                rf"(acc|accuracy){_SEP}(val|valid|validation)"),
    "train_acc": (rf"train{_SEP}?(acc|accuracy)(_epoch)?", rf"(acc|accuracy){_SEP}train"),
    "train_loss": (rf"train{_SEP}?loss_epoch", rf"train{_SEP}epoch{_SEP}loss"),
    "test_loss": (rf"test{_SEP}?loss(_epoch)?", rf"loss{_SEP}test"),
    "val_loss": (rf"(val|valid|validation|eval){_SEP}?loss(_epoch)?", rf"loss{_SEP}(val|valid|validation)"),
}
STEP_LEVEL = ("lr", "momentum", "loss")
# What our mirror logs that an import recomputes from lr and momentum (not read back).
_DERIVED = {TAGS["step"]["zeta"], TAGS["step"]["eff_lr"], TAGS["epoch"]["zeta_median"]}
_ACCURACIES = ("test_acc", "val_acc", "train_acc")


def no_weights(run: dict) -> str:
    """The one line for a diagnostic asked of an imported run."""
    src = run["config"].get("source", {})
    return (f"Run {run['id']} was imported from {src.get('tracker', 'another tracker')} ({src.get('run', '?')}): it "
            "has records only, and attribution, surgery and curvature need the model's weights (expected a run trained "
            "here, or one logged from your loop with run.save_model(model, factory=...))")


def guess_map(tags) -> dict[str, str]:
    """Our field -> the tag that most likely holds it, from common names; a held-out accuracy
    with no test tag is read from the validation tag (said in the plan's notes).

    >>> guess_map(["train/loss", "train/lr", "val/acc", "epoch"])
    {'lr': 'train/lr', 'loss': 'train/loss', 'test_acc': 'val/acc'}
    """
    tags = sorted(tags)
    out: dict[str, str] = {}
    for name, patterns in FIELDS.items():
        for pat in patterns:
            hit = next((t for t in tags if re.fullmatch(pat, t, re.I) and t not in out.values()), None)
            if hit is not None:
                out[name] = hit
                break
    if "test_acc" not in out and "val_acc" in out:
        out["test_acc"] = out.pop("val_acc")
    return out


def parse_map(text: str | None) -> dict[str, str | float]:
    """``lr=train/lr,momentum=0.9`` -> {field: tag or constant}; unknown fields refused.

    >>> parse_map("lr=train/lr, momentum=0.9")
    {'lr': 'train/lr', 'momentum': 0.9}
    """
    out: dict[str, str | float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, eq, tag = part.partition("=")
        name, tag = name.strip(), tag.strip()
        if not eq or not tag or name not in FIELDS:
            raise ValueError(f"Invalid map entry {part!r} (expected FIELD=TAG with FIELD one of {', '.join(FIELDS)})")
        try:
            out[name] = float(tag)
        except ValueError:
            out[name] = tag
    return out


def format_map(mapping: dict) -> str:
    return ", ".join(f"{k} <- {v!r}" if isinstance(v, str) else f"{k} = {v:g} (constant)"
                     for k, v in mapping.items()) or "nothing"


class Planned(dict):
    """A run ready to write: ``config``, ``steps``, ``epochs``, ``summary``, ``status``,
    ``notes`` (what was assumed, in words), ``unmapped`` (tags not imported)."""


def _series(source: Source, mapping: dict, name: str) -> list | None:
    v = mapping.get(name)
    if v is None:
        return None
    if isinstance(v, float):
        return v
    if v not in source.scalars:
        raise ValueError(f"{source.run}: no tag {v!r} for {name} (expected one of "
                         f"{', '.join(sorted(source.scalars)[:20])})")
    return source.scalars[v]


def _checked(name: str, tag, points, low: float, high: float, high_open: bool = False) -> None:
    for s, v, _ in points:
        if not (math.isfinite(v) and low <= v and (v < high if high_open else v <= high)):
            raise ValueError(f"Invalid {name} in tag {tag!r} at step {s}: {v!r} (expected a finite number in "
                             f"[{low:g}, {high:g}{')' if high_open else ']'})")
        if not 0 <= s <= MAX_STEP:
            raise ValueError(f"Invalid step in tag {tag!r}: {s} (expected 0 to {MAX_STEP:,})")


def _carried(points: list, steps: list[int]) -> list:
    """The value in force at each step: the last one logged at or before it (None before any)."""
    at = [p[0] for p in points]
    return [points[i - 1][1] if (i := bisect.bisect_right(at, s)) else None for s in steps]


def plan(source: Source, mapping: dict, *, method: str | None = None, seed: int | None = None, lam: float = 1.0,
         thresholds=(0.9, 0.95), optimizer: str | None = None, default_seed: int = 0) -> Planned:
    """The records and summary of one source under ``mapping`` (see the module docstring).
    Its seed is ``seed``, else a ``seed`` param, else ``default_seed`` (the caller's count of
    runs read, so two runs of one import are not paired as one seed)."""
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"Invalid lam: {lam!r} (expected a curvature scale > 0)")
    notes = []
    series = {name: _series(source, mapping, name) for name in FIELDS}
    for name in _ACCURACIES:  # trackers log accuracy as a fraction or in percent
        pts = series[name]
        if isinstance(pts, list) and pts and 1 < max(v for _, v, _ in pts) <= 100:
            series[name] = [(s, v / 100, t) for s, v, t in pts]
            notes.append(f"{name} read in percent from {mapping[name]!r}, stored as a fraction")
    bounds = {"lr": (0, LR_MAX, False), "momentum": (0, 1, True), **{a: (0, 1, False) for a in _ACCURACIES}}
    for name, (low, high, open_) in bounds.items():
        pts = series[name]
        if isinstance(pts, float):
            pts = [(0, pts, None)]
        if pts:
            _checked(name, mapping[name], pts, low, high, open_)
    for name, pts in series.items():  # every step, of every field: a step outside the schema is refused
        bad = next((s for s, _, _ in pts if not 0 <= s <= MAX_STEP), None) if isinstance(pts, list) else None
        if bad is not None:
            raise ValueError(f"Invalid step in tag {mapping[name]!r}: {bad} (expected 0 to {MAX_STEP:,})")
    tags = {v for v in mapping.values() if isinstance(v, str)}
    adam = (optimizer or ("adam" if re.search(r"beta1|adam", str(mapping.get("momentum", "")) + str(mapping.get(
        "lr", "")), re.I) else "sgd")).lower() == "adam"

    # step records: every step a step-level tag was logged
    step_points = {name: series[name] for name in STEP_LEVEL if isinstance(series[name], list)}
    steps = sorted({p[0] for pts in step_points.values() for p in pts})
    value = {name: (_carried(pts, steps) if name != "loss" else None) for name, pts in step_points.items()}
    loss_at = {s: (v, t) for s, v, t in step_points.get("loss", [])}
    time_at = {s: t for pts in step_points.values() for s, _, t in pts if t is not None}
    lrs = value.get("lr") or [series["lr"] if isinstance(series["lr"], float) else None] * len(steps)
    mus = value.get("momentum") or [series["momentum"] if isinstance(series["momentum"], float) else None] * len(steps)
    if any(isinstance(series[n], list) and len(series[n]) < len(steps) for n in ("lr", "momentum")):
        notes.append("lr and momentum hold between the steps they were logged at")

    # epoch records: the i-th evaluation is epoch i
    epoch_names = [n for n in FIELDS if n not in STEP_LEVEL and isinstance(series[n], list)]
    eval_steps = sorted({p[0] for n in epoch_names for p in series[n]})
    n_ep, last_step = len(eval_steps), (steps[-1] + 1 if steps else 0)
    epoch_index = bool(eval_steps) and eval_steps[-1] <= n_ep and last_step > 2 * n_ep
    if epoch_index:  # the tracker's step of an evaluation is the epoch number, not the global step
        at_step = {s: round((i + 1) * last_step / n_ep) for i, s in enumerate(eval_steps)}
        notes.append(f"evaluations were logged by epoch number: epoch i ends at (i + 1)/{n_ep} of "
                     f"{counted(last_step, 'step')}")
    else:
        at_step = {s: s for s in eval_steps}
    if "test_acc" in mapping and "val_acc" not in mapping and re.search(r"val|eval", str(mapping["test_acc"]), re.I):
        notes.append(f"no test accuracy was logged: the held-out accuracy {mapping['test_acc']!r} stands in as "
                     "test accuracy (nothing in this run reads a validation split)")

    step_recs, epochs, prev = [], [], 0
    by_field = {n: {s: (v, t) for s, v, t in series[n]} for n in epoch_names}
    for i, s in enumerate(eval_steps):
        end = at_step[s]
        lo, hi = bisect.bisect_left(steps, prev), bisect.bisect_left(steps, end)
        pairs = [(lrs[k], mus[k]) for k in range(lo, hi) if lrs[k] and mus[k] is not None]
        zmed, regime = (None, "n/a (Adam)") if adam else (
            regime_summary(pairs, lam)[:2] if pairs else (None, None))
        rec = {"kind": EPOCH, "epoch": i, "step": end, "regime": regime, "zeta_median": zmed,
               "lr": lrs[hi - 1] if hi else None, "momentum": mus[hi - 1] if hi else None,
               "time": next((by_field[n][s][1] for n in epoch_names if s in by_field[n]), None)}
        for n in epoch_names:
            rec[n] = by_field[n].get(s, (None,))[0]
        epochs.append(rec)
        prev = end
    ends = [e["step"] for e in epochs]
    for k, s in enumerate(steps):
        lr, mu = lrs[k], mus[k]
        known = lr is not None and lr > 0 and mu is not None
        step_recs.append({"kind": STEP, "step": s, "epoch": bisect.bisect_right(ends, s), "lr": lr, "momentum": mu,
                          "zeta": zeta(lr, mu, lam) if known and not adam else None,
                          "eff_lr": effective_lr(lr, mu) if known else None,
                          "loss": loss_at.get(s, (None,))[0], "acc": None, "time": time_at.get(s)})
    if mapping.get("momentum") is None:
        notes.append("no momentum logged: no damping ratio (give --map momentum=TAG, or momentum=0.9 for a fixed one)")
    elif not adam:
        notes.append(f"damping ratio with lam = {lam:g} (the curvature scale is not logged; --lam to change)")
    if not epochs:
        notes.append("no held-out accuracy mapped: no epochs, no time to accuracy (give --map test_acc=TAG)")

    params = {str(k)[:200]: str(v)[:1000] for k, v in list(source.params.items())[:500]}
    meth = method or params.get("method") or f"imported-{source.tracker}"
    sd = seed if seed is not None else (int(params["seed"]) if str(params.get("seed", "")).isdigit() else None)
    if sd is None:
        sd = default_seed
        notes.append(f"seed {sd}: no seed was logged (the order read; --seed to set it)")
    if not 0 <= sd <= SEED_MAX:
        raise ValueError(f"Invalid seed: {sd} (expected 0 to {SEED_MAX})")
    thresholds = tuple(float(t) for t in thresholds)
    config = {"method": meth, "seed": sd, "lam": lam, "thresholds": list(thresholds), "optimizer": "adam" if adam
              else "sgd", "map": mapping, "params": params, "momentum_rule": "as logged",
              "source": {"tracker": source.tracker, "location": source.location, "run": source.run,
                         "key": source.key}}
    for k in ("model", "dataset"):
        if k in params:
            config[k] = params[k]
    if any(lr is not None for lr in lrs):
        config["lr"] = max(lr for lr in lrs if lr is not None)  # the peak LR, as our configs name it
    held = [e for e in epochs if e.get("test_acc") is not None]
    vals = [e["val_acc"] for e in epochs if e.get("val_acc") is not None]
    times = [t for t in time_at.values()] + [e["time"] for e in epochs if e["time"] is not None]
    gaps = [b - a for a, b in zip([0, *ends], ends)]
    summary = {"status": source.status, "epochs_completed": len(epochs),
               "wall_seconds": max(times) if times else None,
               "final_test_acc": held[-1]["test_acc"] if held else None,
               "best_test_acc": max((e["test_acc"] for e in held), default=None),
               "final_val_acc": vals[-1] if vals else None, "best_val_acc": max(vals, default=None),
               "time_to_accuracy": time_to_accuracy(held, thresholds) if held else {},
               "regimes": [e["regime"] for e in epochs], "total_steps": last_step,
               "source": config["source"], "import_notes": notes}
    if gaps:
        summary["steps_per_epoch"] = int(statistics.median(gaps))
    return Planned(config=config, steps=step_recs, epochs=epochs, summary=summary, status=source.status,
                   notes=notes, unmapped=sorted(set(source.scalars) - tags - _DERIVED))


def import_sources(store: Store, planned: list[Planned]) -> list[tuple[Planned, str | None]]:
    """Write each planned run; (planned, new run id), or None where that source was imported
    before (nothing is added). A run whose writing fails is removed whole."""
    have = {r["config"].get("source", {}).get("key") for r in store.runs(kind=KIND)}
    out = []
    for p in planned:
        key = p["config"]["source"]["key"]
        if key in have:
            out.append((p, None))
            continue
        run_id = store.create_run(p["config"], kind=KIND, status="running", label=p["config"]["source"]["run"])
        try:
            for start in range(0, len(p["steps"]), 5000):
                store.add_steps(run_id, p["steps"][start:start + 5000])
            for e in p["epochs"]:
                store.add_epoch(run_id, e)
            store.finish(run_id, p["status"], p["summary"])
        except (StoreError, OSError):
            store.finish(run_id, "failed", error="the import was interrupted")
            store.delete(run_id)
            raise
        have.add(key)
        out.append((p, run_id))
    return out
