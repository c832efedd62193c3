"""Verdicts between arms of runs: paired differences, speedups to targets, claims, Holm.

An arm is a set of finished runs, one per seed (a method of a sweep, or any runs grouped
by a field); arms are compared with the baseline arm on the seeds they share (paired by
seed: the same initial weights and data order where the runs were made so). This is the
one home of the comparison statistics: a sweep's report (``sweeps.analyse``) and a verdict
over any runs, ours or logged from your own loop (:func:`analyse_runs`, ``beta-core
verdict``), both come from :func:`compare_arms`.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from .formats import format_target, paper_beside, points
from .records import accuracy_series, crossing_times
from .stats import LEVEL, detectable_difference, equivalence, holm, mean_ci, paired_difference, speedup_log_t, verdict

__all__ = ["MEAN_INTERVAL", "compare_arms", "analyse_runs", "EQUIVALENCE",
           "EQUIVALENCE_SPEED", "TARGET_FRACTIONS", "run_arms", "time_to_targets", "arm_summary", "qualified"]

# How an arm's mean accuracy interval is made (said in every report's statistics).
MEAN_INTERVAL = "Student t over seeds, cut at 0% and 100% (an accuracy cannot leave them)"
EQUIVALENCE, EQUIVALENCE_SPEED = 0.005, 0.10  # default margins: half a point of accuracy, 10% of time (as sweeps)
# Targets fitted to the data: these fractions of the baseline's mean validation accuracy.
TARGET_FRACTIONS = (0.90, 0.95, 0.99)

def qualified(raw: str, eq: dict, detectable, fmt, margin: str) -> str:
    """A verdict that says how sure it is: equivalence where the 90% interval sits inside the
    margin, else what the sweep could have detected beside "no detectable difference"."""
    if not raw.startswith("no detectable"):
        return raw
    if eq["equivalent"]:
        return f"equivalent within {margin} at n = {eq['n']}"
    return raw + (f"; could detect ≥ {fmt(detectable)} (80% power)" if detectable is not None else "")



def _fmt(v) -> str:
    if v is None:
        return "—"
    if v == float("inf"):
        return "∞"
    return f"{v:.2f}"




def time_to_targets(arms: dict[str, dict[int, dict]], epochs: dict[str, list[dict]], targets) -> tuple[dict, dict]:
    """Per arm and seed: the (interpolated) step and second each target was first reached
    (``tta``), and where the run's training ended (``ends``: a run that never reached a target
    is censored there)."""
    tta, ends = {}, {}
    for m, seeds in arms.items():
        series = {s: accuracy_series(epochs.get(r["id"], [])) for s, r in seeds.items()}
        tta[m] = {s: crossing_times(sr, targets) for s, sr in series.items()}
        ends[m] = {s: {"step": sr[-1][0], "time": sr[-1][1]} if sr else {"step": None, "time": None}
                   for s, sr in series.items()}
    return tta, ends


def arm_summary(seeds: dict[int, dict], tta: dict, targets, method: str, missing: int = 0,
                values: dict | None = None) -> dict:
    """One arm's row of a report: n, final and best test accuracy with 95% t intervals, each
    seed's time to each target, and how many never reached it."""
    rs = list(seeds.values())
    return {"method": method, "n": len(rs), "missing": missing, "diverged": sum(r["status"] == "diverged" for r in rs),
            "final_test_acc": mean_ci([r["summary"].get("final_test_acc") for r in rs], bounds=(0, 1)),
            "best_test_acc": mean_ci([r["summary"].get("best_test_acc") for r in rs], bounds=(0, 1)),
            "time_to_target": {f"{t:g}": [{"seed": s, **(h[f"{t:g}"] or {"step": None, "time": None})}
                                          for s, h in sorted(tta.items())] for t in targets},
            "censored": {f"{t:g}": sum(h[f"{t:g}"] is None for h in tta.values()) for t in targets},
            "values": dict(values or {})}


def compare_arms(arms: dict[str, dict[int, dict]], baseline: str, tta: dict, ends: dict, targets,
                 margin: float = EQUIVALENCE, equivalence_speed: float = EQUIVALENCE_SPEED) -> tuple[dict, list]:
    """Every arm against ``baseline`` on their shared seeds: final test accuracy (paired t,
    detectable difference, TOST equivalence within ``margin``) and the speedup to each target
    in steps and seconds (paired t on log time ratios, censored runs at their end); the claims
    with verdicts, Holm-adjusted over the family. ``arms``: ``{arm: {seed: run}}`` in order."""
    by_method, base = arms, baseline
    comparisons, claims = {}, []
    for m in arms:
        if m == base:
            continue
        shared = sorted(set(by_method[m]) & set(by_method[base]))
        acc_m = [by_method[m][s]["summary"].get("final_test_acc") for s in shared]
        acc_b = [by_method[base][s]["summary"].get("final_test_acc") for s in shared]
        acc = paired_difference(acc_m, acc_b)
        diffs = [a - b for a, b in zip(acc_m, acc_b) if a is not None and b is not None]
        acc["detectable"] = detectable_difference(acc["sd"], acc["n"])
        acc["equivalence"] = equivalence(diffs, margin)
        acc["verdict"] = qualified(verdict(acc["ci_low"], acc["ci_high"], 0.0, acc["n"], "higher", "lower"),
                                    acc["equivalence"], acc["detectable"], lambda v: f"{100 * v:.1f} pts",
                                    f"±{100 * margin:g} pt")
        comp = {"seeds": shared, "final_test_acc_diff": acc, "speedup": {}}
        claims.append({"claim": f"{m} ends with higher test accuracy than {base}", "method": m, "kind": "accuracy",
                       "paper": None,
                       "figure": points(acc["mean_diff"], acc["ci_low"], acc["ci_high"]), "verdict": acc["verdict"],
                       "n": acc["n"],
                       "p": acc["p"]})
        for t in targets:
            k = f"{t:g}"
            for unit in ("step", "time"):
                tb, tm = ([(tta[a][s][k] or {}).get(unit) for s in shared] for a in (base, m))
                cb, cm = ([ends[a][s][unit] for s in shared] for a in (base, m))
                sp = speedup_log_t(tb, tm, cb, cm)
                mde = detectable_difference(sp["sd"], sp["n_used"])
                sp["detectable"] = None if mde is None else math.exp(mde)
                sp["equivalence"] = equivalence(sp["logs"], math.log(1 + equivalence_speed))
                if sp["censored_baseline"] or sp["censored_method"]:  # "at least that long" is not equivalence
                    sp["equivalence"]["equivalent"] = False
                sp["verdict"] = qualified(verdict(sp["ci_low"], sp["ci_high"], 1.0, sp["n"]), sp["equivalence"],
                                           sp["detectable"], lambda v: f"{v:.2f}x",
                                           f"±{100 * equivalence_speed:g}%")
                comp["speedup"].setdefault(k, {})["steps" if unit == "step" else "seconds"] = sp
            sp = comp["speedup"][k]["steps"]
            if shared and sp["censored_baseline"] == sp["censored_method"] == len(shared):
                for u in comp["speedup"][k].values():  # nothing was measured: no ratio, no p, no verdict
                    u.update(verdict=f"not testable: no run reached {format_target(t)}", p=None, ratio=None,
                             ci_low=None, ci_high=None, testable=False)
            paper = paper_beside(m, t)
            claims.append({"claim": f"{m} reaches {format_target(t)} test accuracy in fewer steps than {base}",
                           "method": m, "kind": "speed", "target": t,
                           "paper": paper if base == "sgd-constant" else None,
                           "figure": (f"{_fmt(sp['ratio'])}x [{_fmt(sp['ci_low'])}, {_fmt(sp['ci_high'])}]"
                                      if sp["ratio"] is not None else "—" if sp.get("testable") is False
                                      else "not computable")
                                     + (f"; never reached: {sp['censored_method']} of {m}, "
                                        f"{sp['censored_baseline']} of {base}"
                                        if sp["censored_method"] or sp["censored_baseline"] else ""),
                           "verdict": sp["verdict"], "n": sp["n"], "p": sp["p"]})
        comparisons[m] = comp
    family = sum(c["p"] is not None for c in claims)
    for c, p_adj in zip(claims, holm([c["p"] for c in claims])):
        c["p_holm"] = p_adj
        directional = c["verdict"] in ("faster", "slower", "higher", "lower")
        c["verdict_holm"] = (c["verdict"] if not directional or (p_adj is not None and p_adj < 1 - LEVEL)
                             else f"no detectable difference after Holm ({family} claims)")
    return comparisons, claims


def run_arms(runs: list[dict], group_by: str | Callable[[dict], str] = "method") -> dict[str, dict[int, dict]]:
    """Finished runs grouped into arms by ``group_by`` (``method``, any config field, or a
    function of the run), one run per seed each: ``{arm: {seed: run}}`` in order of first
    appearance. Two runs of one arm with the same seed are an error (a paired comparison needs
    one per seed)."""
    arms: dict[str, dict[int, dict]] = {}
    for r in runs:
        key = (group_by(r) if callable(group_by) else r["method"] if group_by == "method"
               else r["config"].get(group_by))
        if key is None:
            raise ValueError(f"Run {r['id']} has no {group_by!r} in its config (expected every run to have it)")
        seed = r["config"].get("seed")
        if not isinstance(seed, int):
            raise ValueError(f"Run {r['id']} has no integer seed in its config (expected one: runs pair by seed)")
        arm = arms.setdefault(str(key), {})
        if seed in arm:
            raise ValueError(f"Runs {arm[seed]['id']} and {r['id']} are both in arm {key} with seed {seed} "
                             "(expected one run per seed in each arm: pick one)")
        arm[seed] = r
    return arms


def _refuse_degenerate(arms: dict[str, dict[int, dict]]) -> None:
    """Questions with no answer: a run on both sides, an unfinished run, an arm that only diverged."""
    where: dict[str, str] = {}
    for m, seeds in arms.items():
        for r in seeds.values():
            if r["id"] in where:
                raise ValueError(f"Run {r['id']} is in both arms ({where[r['id']]} and {m}): no verdict (expected "
                                 "different runs on each side; a run compared with itself says nothing)")
            where[r["id"]] = m
        bad = [r for r in seeds.values() if r["status"] not in ("done", "diverged")]
        if bad:
            raise ValueError(f"Run {bad[0]['id']} of {m} is {bad[0]['status']} (expected finished runs: done or "
                             "diverged)")
        if all(r["status"] == "diverged" for r in seeds.values()):
            raise ValueError(f"No verdict: every run of {m} diverged ({len(seeds)} run{'s' if len(seeds) != 1 else ''};"
                             " expected at least one that trained to its end)")


def analyse_runs(arms: dict[str, dict[int, dict]], epochs: dict[str, list[dict]], baseline: str,
                 targets=None, margin: float = EQUIVALENCE, equivalence_speed: float = EQUIVALENCE_SPEED) -> dict:
    """A verdict report over any finished runs, the shape of a sweep's (``methods``,
    ``comparisons``, ``claims``, ``setting``, ``statistics``), so the same tables and JSON
    serve both. ``targets``: test accuracies for time-to-target; None: TARGET_FRACTIONS of the
    baseline's mean final *validation* accuracy (the test split chooses nothing), else an error
    saying to give them."""
    if baseline not in arms:
        raise ValueError(f"Invalid baseline: {baseline!r} (expected one of the arms {list(arms)})")
    if len(arms) < 2:
        raise ValueError(f"One arm ({', '.join(arms)}): a verdict needs at least two (expected runs of a "
                         "baseline and of at least one other method)")
    _refuse_degenerate(arms)
    why = "given"
    if not targets:
        vals = [r["summary"].get("final_val_acc") for r in arms[baseline].values()]
        vals = [v for v in vals if v is not None]
        if not vals:
            raise ValueError(f"No targets given and the baseline {baseline}'s runs have no validation accuracy "
                             "(expected --target ACC[,ACC...])")
        base_val = sum(vals) / len(vals)
        targets = sorted({round(f * base_val, 3) for f in TARGET_FRACTIONS})
        why = (f"{', '.join(f'{100 * f:g}%' for f in TARGET_FRACTIONS)} of {baseline}'s mean final validation "
               f"accuracy ({base_val:.3f})")
    targets = [float(t) for t in targets]
    order = {baseline: arms[baseline], **{m: a for m, a in arms.items() if m != baseline}}
    tta, ends = time_to_targets(order, epochs, targets)
    comparisons, claims = compare_arms(order, baseline, tta, ends, targets, margin, equivalence_speed)
    per_method = {m: {**arm_summary(seeds, tta[m], targets, m), "runs": [r["id"] for r in seeds.values()]}
                  for m, seeds in order.items()}
    any_run = next(iter(arms[baseline].values()))
    c = any_run["config"]
    setting = {"model": c.get("model", "?"), "width": c.get("width"), "data": any_run["summary"].get("data", "?"),
               "synthetic": bool(any_run["summary"].get("synthetic")), "n_train": any_run["summary"].get("n_train"),
               "n_val": any_run["summary"].get("n_val"), "n_test": any_run["summary"].get("n_test"),
               "epochs": c.get("epochs", any_run["summary"].get("epochs_completed")),
               "batch_size": c.get("batch_size"), "lr_schedule": c.get("lr_schedule", "?"),
               "seeds": sorted({s for a in arms.values() for s in a}), "tune_seeds": [], "grid": {}, "tuned": [],
               "baseline": baseline, "targets": targets, "targets_why": why, "chosen": None,
               "lrs": {m: next(iter(a.values()))["config"].get("lr") for m, a in order.items()},
               "device": any_run["summary"].get("device"), "preset": None,
               "kinds": sorted({r["kind"] for a in arms.values() for r in a.values()})}
    return {"setting": setting, "methods": per_method, "comparisons": comparisons, "claims": claims, "note": None,
            "choice": None, "statistics": {"interval": "95%", "mean": MEAN_INTERVAL,
                                           "difference": "paired t over shared seeds",
                                           "time_to_target": "interpolated linearly between the runs' evaluations",
                                           "power": "80% detectable difference from the paired spread (noncentral t)",
                                           "equivalence": f"TOST, 90% interval inside ±{100 * margin:g} pt "
                                                          f"(accuracy) / ±{100 * equivalence_speed:g}% (speed)",
                                           "family": "Holm over the claims with a p-value",
                                           "speedup": "geometric mean of paired time ratios, paired t on their "
                                                      "logs; censored runs at their training's end"}}
