"""Reports: every table the CLI prints and a page shows, built once.

airbench's habit: one column list drives every printed row. Each builder here returns plain
rows (a list of dicts whose keys are the columns, in order) or a DataFrame; the CLI prints
them with :func:`text_table` and a page hands the same rows to ``st.dataframe``. Nothing here
prints or imports a UI.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from .annotations import tags_of
from .formats import counted, format_target, format_time_to_accuracy, paper_beside, pct, points, share
from .records import train_config_of
from .store import Store, StoreError

__all__ = ["fault_found", "claim_figure", "comparison_label", "RUN_COLUMNS", "run_table", "method_summary",
           "export_tables", "export_csv", "sweep_setting", "verdict_rows", "method_rows", "localisation_rows",
           "surgery_rows", "attribution_rows", "config_diff", "text_table", "surgery_outcome", "training_outcome",
           "timing_note", "verdict_summary"]

# One row per run: identity, the config that tells runs apart, the outcome.
RUN_COLUMNS = ["id", "status", "kind", "method", "model", "data", "lr", "momentum_rule", "batch_size", "seed",
               "epochs", "best_test_acc", "final_test_acc", "time to accuracy", "wall_seconds", "parent", "group",
               "label", "name", "tags", "note", "created", "error"]


def _seed(v):
    """A stored seed as a table shows it: a whole number an integer column holds, else empty
    (an older store may hold ``2**70`` or ``True`` from a loop's config)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 63 else None


def run_table(store: Store, runs: list[dict] | None = None) -> pd.DataFrame:
    """One row per run (newest first), columns :data:`RUN_COLUMNS`."""
    rows = []
    for r in store.runs() if runs is None else runs:
        s, c = r["summary"], train_config_of(r)
        rows.append({"id": r["id"], "status": r["status"], "kind": r["kind"], "method": r["method"],
                     "model": r["model"], "data": s.get("data", r["dataset"]), "lr": c.get("lr"),
                     # a loop logged with track has no rule of ours: its momentum is what each step logged
                     "momentum_rule": c.get("momentum_rule") or (
                         "as logged" if r["kind"] in ("external", "imported") else None),
                     "batch_size": c.get("batch_size"),
                     "seed": _seed(c.get("seed")), "epochs": c.get("epochs"),
                     "best_test_acc": s.get("best_test_acc", s.get("acc_after")),
                     # a surgery run's outcome is its accuracy after the repair
                     "final_test_acc": s.get("final_test_acc", s.get("acc_after")),
                     "time to accuracy": format_time_to_accuracy(s.get("time_to_accuracy")),
                     # runs written before the rename stored wall time as train_seconds
                     "wall_seconds": s.get("wall_seconds", s.get("train_seconds")), "parent": r["parent"],
                     "group": r["group_id"], "label": r["label"], "name": r.get("name"),
                     "tags": ", ".join(tags_of(r)), "note": r.get("note"),
                     "created": pd.Timestamp(r["created"], unit="s"), "error": r["error"]})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def method_summary(store: Store, run_ids: list[str]) -> pd.DataFrame:
    """Per method: mean, std and count over runs of final/best accuracy and wall time."""
    rows = []
    for rid in run_ids:
        r = store.get_run(rid)
        s = r["summary"]
        rows.append({"method": r["method"], "final_test_acc": s.get("final_test_acc"),
                     "best_test_acc": s.get("best_test_acc"),
                     "wall_seconds": s.get("wall_seconds", s.get("train_seconds"))})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    num = df.groupby("method").agg(["mean", "std", "count"])
    num.columns = [f"{a}_{b}" for a, b in num.columns]
    return num.reset_index()


def export_tables(store: Store, run_ids: list[str]) -> dict[str, str]:
    """``runs.csv`` (with each run's full config as JSON), ``steps.csv`` and ``epochs.csv`` as text."""
    runs = [store.get_run(r) for r in run_ids]
    table = run_table(store, runs).assign(config=[json.dumps(r["config"], sort_keys=True) for r in runs])
    epochs = store.epochs(*run_ids)
    epochs["extra"] = [json.dumps(e) for e in epochs["extra"]]
    return {"runs.csv": table.to_csv(index=False), "steps.csv": store.steps(*run_ids).to_csv(index=False),
            "epochs.csv": epochs.to_csv(index=False)}


def export_csv(store: Store, run_ids: list[str], folder: str | os.PathLike) -> list[Path]:
    """Write :func:`export_tables` into ``folder`` (made if absent); returns the files."""
    out = Path(folder)
    try:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{str(out)!r} is a file")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"Cannot export to {str(out)!r}: {e.strerror or e} (expected a folder, new or "
                         "existing, that can be written)") from None
    files = []
    try:
        for name, text in export_tables(store, run_ids).items():
            (out / name).write_text(text)
            files.append(out / name)
    except OSError as e:
        raise StoreError(f"Cannot export to {str(out)!r}: {e.strerror or e} (expected free space and "
                         "a writable folder)") from None
    return files


# ------------------------------------------------------------------ sweeps
def sweep_setting(rep: dict) -> str:
    """The setting of a sweep or verdict report in one sentence: model, data, split sizes,
    schedule, LRs, seeds, baseline, targets; what a run did not record is left out, not shown
    as "None" (runs logged from your own loop say less about themselves)."""
    s = rep["setting"]
    sizes = " / ".join(f"{s[k]} {k[2:]}" for k in ("n_train", "n_val", "n_test") if s.get(k) is not None)
    data = " on " + " ".join(p for p in (s.get("data") if s.get("data") not in (None, "?") else None,
                                         f"({sizes} images)" if sizes else None) if p) if (
        s.get("data") not in (None, "?") or sizes) else ""
    train = ", ".join(p for p in (f"{s['epochs']} epochs" if s.get("epochs") else None,
                                  f"batch {s['batch_size']}" if s.get("batch_size") else None,
                                  s["lr_schedule"] if s.get("lr_schedule") not in (None, "?") else None) if p)
    lrs = {m: v for m, v in s["lrs"].items() if isinstance(v, (int, float))}
    return (f"{s['model']}{data}" + (f", {train}" if train else "")
            + (("; LRs " + ", ".join(f"{m} {v:g}" for m, v in lrs.items())) if lrs else "")
            + f"; test seeds {s['seeds']}"
            + (f", tuned {', '.join(s['tuned'])} on seeds {s['tune_seeds']}" if s["tuned"] else "")
            + f"; baseline {s['baseline']}; targets {', '.join(format_target(t) for t in s['targets'])}"
            + (f" ({s['targets_why']})" if s.get("targets_why") else "")
            + ("; includes runs logged from your own loop" if "external" in s.get("kinds", ()) else "")
            + ("; includes runs imported from another tracker" if "imported" in s.get("kinds", ()) else ""))


def method_rows(rep: dict) -> list[dict]:
    """One row per arm of a sweep report's reported stage: n, final accuracy with its interval."""
    rows = []
    for m, r in rep["methods"].items():
        f = r["final_test_acc"]
        rows.append({"method": m, "n": r["n"], "final test acc": pct(f["mean"], 2),
                     "95% CI": f"[{pct(f['ci_low'], 2)}, {pct(f['ci_high'], 2)}]",
                     "best test acc": pct(r["best_test_acc"]["mean"], 2), "diverged": r["diverged"],
                     "missing": r["missing"], **{f"never ≥{format_target(t)}": k for t, k in r["censored"].items()}})
    return rows


def verdict_summary(rep: dict) -> str:
    """A sweep's or verdict report's claims in one or two sentences (Markdown bold), the Holm
    verdict where the family has one: the definite results named, "no detectable difference" said
    as plainly as a win."""
    claims = rep["claims"]
    if not claims:
        return "No claims: too few counted runs to compare."
    final = {c["claim"]: (c.get("verdict_holm") or c["verdict"]).split(";")[0] for c in claims}
    untestable = [c for c in claims if final[c["claim"]].startswith("not testable")]
    targets = ", ".join(sorted({format_target(c["target"]) for c in untestable}))
    not_tested = (f" **Not testable**: {len(untestable)} claim{'s' if len(untestable) > 1 else ''} at {targets}, "
                  "which no run of either arm reached (left out of the family; choose a target the runs reach)."
                  if untestable else "")
    claims = [c for c in claims if c not in untestable]
    if not claims:
        return not_tested.strip()
    definite = [c for c in claims if not final[c["claim"]].startswith(("no detectable", "undetermined"))]
    n = min(c["n"] for c in claims)
    if not definite:
        return (f"**No detectable difference** in any of the {len(claims)} claims at n = {n} seeds per "
                "method (Holm over the family). Each row says the smallest difference these seeds could have "
                "detected." + not_tested)
    rest = len(claims) - len(definite)
    return (f"At n = {n} seeds per method (Holm over the family): "
            + "; ".join(f"{c['claim']}: **{final[c['claim']]}** ({claim_figure(rep, c)})" for c in definite) + "."
            + (f" The other {rest} claim{'s' if rest > 1 else ''}: no detectable difference." if rest else "")
            + not_tested)


def claim_figure(rep: dict, c: dict) -> str:
    """What a claim measured, as the page and reports say it: an accuracy difference in points
    from the report's numbers (reports stored before said ``0.2% [-0.6%, 0.9%]``), a speedup as
    measured."""
    diff = (rep.get("comparisons") or {}).get(c.get("method"), {}).get("final_test_acc_diff")
    if c.get("kind") == "accuracy" and diff and diff.get("mean_diff") is not None:
        return points(diff["mean_diff"], diff["ci_low"], diff["ci_high"])
    return c["figure"]


def verdict_rows(rep: dict) -> list[dict]:
    """One row per claim of a sweep report; the paper's claim beside each speed claim it speaks to
    (also in reports stored before the claims carried it)."""
    against_constant = rep.get("setting", {}).get("baseline") == "sgd-constant"
    return [{"claim": c["claim"], "measured (95% CI)": claim_figure(rep, c), "verdict": c["verdict"],
             "verdict, Holm over the family": c.get("verdict_holm", ""), "n": c["n"],
             "paper's claim": c.get("paper") or (paper_beside(c["method"], c["target"]) if against_constant
                                                 and c.get("kind") == "speed" else None) or ""}
            for c in rep["claims"]]


# ------------------------------------------------------------------ diagnostics
def localisation_rows(result: dict, paper_scores=()) -> list[dict]:
    """One row per score of a localisation benchmark, best top-1 rate first."""
    def rate(p):
        return f"{100 * p['rate']:.1f}% [{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"

    return [{"score": name + (" (paper)" if name in paper_scores else ""), "top-1 [95% CI]": rate(s["top1"]),
             "top-3 [95% CI]": rate(s["top3"]), "mean rank": round(s["mean_rank"]["mean"], 2),
             "seconds": round(s["seconds"] or 0, 2), "passes": int(s["passes"] or 0)}
            for name, s in sorted(result["scores"].items(), key=lambda kv: -(kv[1]["top1"]["rate"] or 0))]


def config_diff(a: dict, b: dict) -> list[dict]:
    """Two configs side by side: ``[{field, a, b, differs}]`` over the fields of either, in the
    first config's order (a surgery's nested training config flattened as ``train.FIELD``)."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and k in ("train", "surgery", "sweep", "options"):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out
    fa, fb = flat(a), flat(b)
    fields = [*fa, *(k for k in fb if k not in fa)]
    show = lambda v: "—" if v is None else json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)  # noqa: E731
    return [{"field": k, "a": show(fa.get(k)), "b": show(fb.get(k)), "differs": fa.get(k) != fb.get(k)}
            for k in fields]


def surgery_outcome(s: dict) -> str:
    """What a surgery did, in words, before any savings figure (Markdown bold; the CLI prints it
    as is): net change, versus the full fine-tune, the controls."""
    full = s["report"].get("full")
    text = (f"The repair **{'helped' if s['net'] > 0 else 'hurt' if s['net'] < 0 else 'changed nothing'}**: "
            f"net {s['net']:+d} images ({s['fixed']} fixed, {s['broken']} broken), accuracy "
            f"{s['acc_before']:.1%} → {s['acc_after']:.1%}.")
    if full:
        better = "better than" if s["net"] > full["net"] else "worse than" if s["net"] < full["net"] else "as well as"
        text += f" It did **{better}** a full fine-tune of every group (net {full['net']:+d})."
    for key in ("random", "per_parameter"):
        if key in s["report"]:
            c = s["report"][key]
            than = "better than" if s["net"] > c["net"] else "no better than"
            text += f" It did **{than}** the control {c['name']} (net {c['net']:+d})."
    if "random" in s["report"] and s["net"] <= s["report"]["random"]["net"]:
        text += " So the flagged groups were no better a choice than random ones here."
    if full or any(k in s["report"] for k in ("random", "per_parameter")):
        text += (" One surgery on one model (n = 1): these are counts of this repair, not a verdict on surgery; "
                 "docs/findings.md (claim 3) compares surgery with random groups over 12 seeds.")
    return text


# Config fields that differ between runs of one arm by design (seeds pair runs; threads, host and
# script say where a run executed, not what it trained).
_NOT_ARM = {"seed", "threads", "host", "rank", "script"}


def _same(v) -> str:
    """A config value as compared between runs: 64 and 64.0 are one value (older stores kept a
    flag's ``widths`` as 64.0,256.0,256.0; this version stores whole channel counts)."""
    def num(x):
        return float(x) if isinstance(x, int) and not isinstance(x, bool) else x
    v = [num(x) for x in v] if isinstance(v, (list, tuple)) else num(v)
    return json.dumps(v, sort_keys=True, default=str)


def config_arms(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by method and, where runs of one method differ in their config, by the fields
    that differ: "sgd-beta (epochs=1)" and "sgd-beta (epochs=5)" are two arms, never one mean.

    >>> mk = lambda e, s: {"kind": "train", "method": "m", "config": {"epochs": e, "seed": s}}
    >>> {k: len(v) for k, v in config_arms([mk(1, 0), mk(5, 0), mk(5, 1)]).items()}
    {'m (epochs=1)': 1, 'm (epochs=5)': 2}
    """
    by_method: dict[str, list[dict]] = {}
    for r in runs:
        by_method.setdefault(r["method"], []).append(r)
    arms: dict[str, list[dict]] = {}
    for m, rs in by_method.items():
        cfgs = [train_config_of(r) for r in rs]
        keys = sorted({k for c in cfgs for k in c} - _NOT_ARM)
        differ = [k for k in keys if len({_same(c.get(k)) for c in cfgs}) > 1]
        for r, c in zip(rs, cfgs):
            name = m + (" (" + ", ".join(f"no {k.replace('_', ' ')}" if c.get(k) is None else f"{k}={c.get(k)}"
                                         for k in differ) + ")" if differ else "")
            arms.setdefault(name, []).append(r)
    return arms


def comparison_label(runs: list[dict]) -> str:
    """One line that tells a comparison (runs launched together) from the others in a picker, the
    part that differs first (a narrow picker cuts the end): when (and "demo" for the demo's runs),
    its methods, what they trained (model, epochs, data and its training images), seeds and size.

    >>> r = lambda m, s: {"id": f"20261207-0819{s}-x", "method": m, "config": {"model": "small_cnn", "epochs": 8,
    ...                   "seed": s}, "summary": {"data": "cifar10-jpeg.tar.gz", "n_train": 5000}}
    >>> comparison_label([r("sgd-beta", 0), r("sgd-constant", 0), r("sgd-beta", 1)]).split(" · ")
    ['2026-12-07 08:19', 'sgd-beta, sgd-constant', 'small_cnn, 8 epochs, cifar10-jpeg.tar.gz (5,000 images)', \
'seeds 0, 1', '3 runs']
    """
    def each(values) -> list[str]:
        return list(dict.fromkeys(str(v) for v in values if v is not None))

    seeds = sorted({r["config"].get("seed") for r in runs if isinstance(r["config"].get("seed"), int)})
    epochs = each(r["config"].get("epochs") for r in runs if isinstance(r["config"].get("epochs"), int))
    trained = [counted(int(epochs[0]), "epoch")] if len(epochs) == 1 else [f"{'/'.join(epochs)} epochs"] * bool(epochs)
    data = each((r.get("summary") or {}).get("data") for r in runs) or each(r["config"].get("dataset") for r in runs)
    n = {(r.get("summary") or {}).get("n_train") for r in runs} - {None}
    if data and len(n) == 1:
        data[-1] += f" ({n.pop():,} images)"
    what = each(r["config"].get("model") for r in runs) + trained + data  # data as read, else as asked
    rid = runs[0]["id"]
    when = f"{rid[:4]}-{rid[4:6]}-{rid[6:8]} {rid[9:11]}:{rid[11:13]}" if re.match(r"^\d{8}-\d{4}", rid) else rid
    when += " (demo)" if all("demo" in tags_of(r) for r in runs) else ""
    return (f"{when} · {', '.join(dict.fromkeys(r['method'] for r in runs))} · {', '.join(what) or '-'} · "
            f"seeds {', '.join(map(str, seeds)) or '-'} · {counted(len(runs), 'run')}")


def training_outcome(runs: list[dict]) -> str:
    """What a set of training runs shows, in words, before any chart (Markdown bold): the best
    final test accuracy per method, who reached the highest target first in steps, and how much
    one can conclude from n seeds. Active runs are counted, not judged."""
    done = [r for r in runs if r["status"] == "done" and r["summary"].get("final_test_acc") is not None]
    waiting = len([r for r in runs if r["status"] in ("queued", "running")])
    if not done:
        return f"{counted(waiting, 'run')} still training: the outcome appears when one finishes." if waiting else \
            "None of these runs finished (see their status below)."
    by_method = config_arms(done)
    accs = {m: sum(r["summary"]["final_test_acc"] for r in rs) / len(rs) for m, rs in by_method.items()}
    order = sorted(accs, key=accs.get, reverse=True)
    seeds = min(len(rs) for rs in by_method.values())
    mean = "mean " if seeds > 1 else ""
    if len(order) == 1:  # nothing to rank against: say what it did, not that it "won"
        text = f"**{order[0]}**: {mean}final test accuracy {pct(accs[order[0]])}."
    else:
        text = (f"**{order[0]}** ended highest: {mean}final test accuracy {pct(accs[order[0]])} ("
                + ", ".join(f"{m} {pct(accs[m])}" for m in order[1:]) + ").")
    for m, rs in by_method.items():
        for f in (r["summary"]["planted_fault"] for r in rs if r["summary"].get("planted_fault")):
            text += (f" **{m}** had a fault planted in {f['group']} after training: {pct(f['test_acc_before'])} "
                     f"before it, {pct(f['test_acc_after'])} after.")
    # who got there first: among runs whose final model is the one that trained (not a damaged one)
    racing = {m: rs for m, rs in by_method.items() if not any(r["summary"].get("planted_fault") for r in rs)}
    targets = sorted({t for rs in racing.values() for r in rs for t in (r["summary"].get("time_to_accuracy") or {})},
                     key=float)
    for t in reversed(targets):  # the highest target someone reached
        hits = {m: min((r["summary"]["time_to_accuracy"].get(t) or {}).get("step", float("inf")) for r in rs)
                for m, rs in racing.items()}
        reached = {m: v for m, v in hits.items() if v != float("inf")}
        if reached:
            best = min(reached.values())
            first = [m for m, v in reached.items() if v == best]  # a tie is named as one
            never = [m for m in hits if m not in reached]
            who = " and ".join(f"**{m}**" for m in first)
            text += (f" It reached {format_target(t)} test accuracy at step {int(best):,}" if len(order) == 1
                     else f" First to {format_target(t)} test accuracy: {who}" + (" (tied)" if len(first) > 1 else "")
                     + f" at step {int(best):,}") + (f" ({', '.join(never)} never)" if never else "") + "."
            break
    hits = [h for r in done for h in (r["summary"].get("time_to_accuracy") or {}).values()]
    if hits and all(h is not None and h["epoch"] == 0 for h in hits):
        text += (" Every target was reached in the first epoch, so time to accuracy cannot tell these runs apart: "
                 "raise the thresholds (Advanced, or `--set thresholds=0.97,0.98`).")
    if len(order) > 1:
        text += (" One seed per method: differences of a point or two are within seed noise, so this is not a "
                 "verdict (a sweep on the Compare page gives one)." if seeds == 1 else
                 f" {seeds} seeds per method: a sweep on the Compare page gives intervals and a verdict.")
    if waiting:
        text += f" {waiting} more still training."
    return text


def timing_note(runs: list[dict], last_times: dict[str, float | None]) -> str:
    """What the runs' seconds mean: wall clock on this machine, and whether the runs ran one
    after another (their seconds then differ by whatever else the machine did) or at the same
    time (sharing the machine alike). ``last_times``: each run's newest record ``time``."""
    spans = sorted((r["updated"] - t, r["updated"]) for r in runs
                   if r["status"] not in ("queued", "running") and (t := last_times.get(r["id"])))
    if len(spans) < 2:
        return "wall-clock seconds on this machine"
    overlap = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    return ("wall-clock seconds on this machine; these runs overlapped in time (they shared the machine)"
            if overlap else "wall-clock seconds on this machine; these runs ran one after another, so their seconds "
            "also measure what else the machine did: compare steps")


def surgery_rows(summary: dict) -> list[dict]:
    """One row per variant of a surgery (the repair, the full fine-tune, the controls)."""
    return [{"variant": v["name"], "fixed": v["fixed"], "broken": v["broken"], "net": v["net"],
             "acc before": pct(v["acc_before"]), "acc after": pct(v["acc_after"]),
             "params": share(v["param_fraction"]), "wall-clock s": f"{v['step_seconds']:.2f}"}
            for v in summary["report"].values()]


def attribution_rows(result: dict) -> list[dict]:
    """One row per layer group of an attribution: its size, error and correct-image scores, flag."""
    rows = []
    for g in result["groups"]:
        c, ratio = (result["correct_scores"] or {}).get(g), result["ratio"].get(g)
        rows.append({"group": g, "params": result["param_counts"][g], "grad(err)": f"{result['scores'][g]:.4g}",
                     "grad(ok)": "-" if c is None else f"{c:.4g}", "ratio": "-" if ratio is None else f"{ratio:.2f}",
                     "flagged": "*" if g in result["flagged"] else ""})
    return rows


def text_table(rows: list[dict]) -> str:
    """Rows as aligned text for the terminal (the same rows a page shows as a table)."""
    return pd.DataFrame(rows).to_string(index=False, na_rep="-") if rows else "(none)"


def fault_found(run: dict, result: dict) -> str | None:
    """For a run with a planted fault: whether its attribution found it, in words (Markdown), by
    the flagging score's ranking; None for any other run.

    >>> run = {"kind": "train", "config": {"planted_fault": "block2"}}
    >>> fault_found(run, {"score": "probe", "flagged": ["block2"], "score_values": {"fc": 0.7, "block2": 0.8}})
    'Planted fault in **block2**: probe ranks it **first** of 2 groups and flags it: **found**.'
    >>> fault_found(run, {"score": "grad_relative", "flagged": ["fc"], "score_values": {"fc": 3, "block2": 0.9}})
    'Planted fault in **block2**: grad_relative ranks it 2nd of 2 groups and does not flag it: **missed**.'
    """
    fault = (train_config_of(run) or {}).get("planted_fault")
    values = result.get("score_values") or {}
    if not fault or not values:
        return None
    group = fault.split(":")[0]
    ranking = sorted(values, key=lambda g: -values[g])
    if group not in ranking:
        return None
    rank = ranking.index(group) + 1
    place = "**first**" if rank == 1 else f"{rank}{'nd' if rank == 2 else 'rd' if rank == 3 else 'th'}"
    flagged = group in result.get("flagged", [])
    return (f"Planted fault in **{group}**: {result.get('score', 'the score')} ranks it {place} of {len(ranking)} "
            f"groups and {'flags it' if flagged else 'does not flag it'}: **{'found' if flagged else 'missed'}**.")
