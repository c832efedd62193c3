"""CLI commands of the diagnostic pipeline: attribute, surgery, overlap, plant-fault, curvature."""
from __future__ import annotations

import argparse
import sys
import time

from .. import formats, reports, zoo
from ..attribution import DEFAULT_SCORE, NORMALIZATIONS, PAPER_SCORES, SCORES, AttributionConfig, overlap, plant_fault
from ..config import TrainConfig, parse_seeds
from ..curvature import group_eigenvalues, measured_damping, top_hessian_eigenvalues
from ..formats import format_seconds
from ..importer import KIND as KIND_IMPORTED
from ..importer import no_weights
from ..jobs.bodies import attribute_run, load_trained
from ..jobs.specs import localise_job
from ..localise import FAULTS
from ..models import loss_fn, run_groups
from ..records import train_config_of
from ..store import Store
from ..surgery import SurgeryConfig, surgery_run_config
from .common import CLIError, Progress, execute

__all__ = ["add_parsers", "HANDLERS"]


def _attr_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="test", choices=("test", "train"), help="whose errors (default test)")
    p.add_argument("--normalization", default="relative", choices=NORMALIZATIONS)
    p.add_argument("--select", default="topk", choices=("topk", "zscore"))
    p.add_argument("-k", type=int, default=3)
    p.add_argument("--z", type=float, default=1.0)
    p.add_argument("--score", default=DEFAULT_SCORE, choices=SCORES,
                   help=f"which score flags groups (default {DEFAULT_SCORE}: the localisation benchmark's winner)")
    p.add_argument("--probe-steps", type=int, default=20, help="SGD steps per group of the probe score")
    p.add_argument("--images", type=int, help="only the first N images of the split (default: all of it; a "
                                               "10,000-image test split on 2 CPU cores takes minutes)")


def _attr_cfg(args) -> AttributionConfig:
    return AttributionConfig(split=args.split, normalization=args.normalization, select=args.select, k=args.k,
                             z=args.z, probe_steps=args.probe_steps, score=args.score, max_samples=args.images)


def add_parsers(sub) -> None:
    p = sub.add_parser("attribute", help="per-group gradient attribution on misclassified images")
    p.add_argument("run_id")
    _attr_flags(p)
    p = sub.add_parser("surgery", help="retrain only the flagged layer groups, then verify")
    p.add_argument("run_id")
    p.add_argument("--groups", default="auto", help="auto | comma-separated group names")
    p.add_argument("-k", type=int, default=3, help="groups --groups auto flags (attribution on training errors)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--oversample-errors", type=int, default=0)
    p.add_argument("--controls", action="store_true", help="also random-groups and per-parameter controls")
    p.add_argument("--train-split", default="train", choices=("train", "test"))
    p.add_argument("--allow-leaky", action="store_true", help="permit training on the scored split (labelled)")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("overlap", help="compare the attribution of two runs")
    p.add_argument("run_a")
    p.add_argument("run_b")
    _attr_flags(p)
    p = sub.add_parser("plant-fault", help="damage a group on purpose; attribution must find it")
    p.add_argument("run_id")
    p.add_argument("--group", required=True)
    p.add_argument("--strength", type=float, default=1.0, help="noise RMS relative to the weights' RMS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="gradient", choices=("gradient", "probe"),
                   help="gradient: the paper's attribution; probe: retrain-one-group probe")
    p = sub.add_parser("localise-bench", help="how often each score finds a deliberately damaged group")
    p.add_argument("run_id")
    p.add_argument("--scores", help=f"comma-separated, default all: {', '.join(SCORES)}")
    p.add_argument("--faults", help=f"comma-separated, default all: {', '.join(FAULTS)}")
    p.add_argument("--seeds", default="0", help="fault seeds, e.g. 0,1 (default 0: the quick benchmark)")
    p.add_argument("--probe-steps", dest="probe_steps", type=int, default=20)
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("curvature", help="top Hessian eigenvalues of a stored model, whole and per group")
    p.add_argument("run_id")
    p.add_argument("-k", type=int, default=3, help="eigenvalues per operator (default 3)")
    p.add_argument("--images", type=int, default=256, help="training images the loss is measured on (default 256)")
    p.add_argument("--hvps", type=int, default=200, help="budget of Hessian-vector products per operator")


def _print_attribution(r: dict) -> None:
    print(f"run {r['run_id']}: {r['n_errors']} errors of {r['n_samples']} ({r['config']['split']} split), "
          f"normalization {r['config']['normalization']}")
    print(reports.text_table(reports.attribution_rows(r)))
    print(f"flagged by {r['score']}: " + (f"{', '.join(r['flagged'])} ({r['param_fraction']:.1%} of parameters)"
                                         if r["flagged"] else "none: no group stands out above its noise"))
    print(f"  {r['score']}: {r['score_meaning']}")
    if r.get("probe_scores"):
        print("probe (held-out loss drop after retraining one group alone): "
              + ", ".join(f"{g} {r['probe_scores'][g]:.4f}" for g in r["probe_ranking"]))


def _attribution_estimate(store: Store, run_id: str, cfg) -> str:
    """How long the last attribution of this run with the same score and images took here."""
    like = lambda c: (c.get("score"), c.get("max_samples"), c.get("split")) == (cfg.score, cfg.max_samples, cfg.split)  # noqa: E731
    same = [r for r in store.results(run_id, "attribution") if r.get("seconds") and like(r.get("config", {}))]
    return (f"about {format_seconds(same[-1]['seconds'])}, as the last one like it took here" if same
            else "no earlier attribution like it here to estimate from: each stage's progress follows")


class _StageLines:
    """Attribution progress on stderr: a line when a stage starts, then every 10 s (with the
    probe's time left from its own rate), and the last count of each stage."""

    def __init__(self, every: float = 10.0) -> None:
        self.stage, self.every, self.last, self.since = None, every, 0.0, 0.0

    def __call__(self, stage: str, done: int, total: int | None, unit: str) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.since, self.last = stage, now, 0.0
        if now - self.last < self.every and done != total:
            return
        self.last = now
        left = ""
        if done and total and done < total and now > self.since:
            left = f", about {format_seconds((total - done) * (now - self.since) / done)} left in this stage"
        print(f"  {stage}: {done:,}" + (f"/{total:,}" if total else "") + f" {unit}{left}", file=sys.stderr, flush=True)


def cmd_attribute(args, store: Store) -> int:
    cfg = _attr_cfg(args)
    run = store.get_run(args.run_id)  # an unknown id is one line; attribute_run reads the weights once
    spec = run["summary"].get("model_spec") or train_config_of(run).get("model", "")
    # the start line only when the job will start: otherwise its refusal (a sweep, missing weights, an
    # untrusted spec) is the one line
    if store.checkpoint_path(args.run_id).exists() and zoo.is_trusted(spec):
        images = f"the first {cfg.max_samples:,}" if cfg.max_samples else "all the"
        probe = (f"; the probe retrains each layer group for 2 x {cfg.probe_steps} steps" if cfg.score == "probe"
                 else "")
        print(f"attributing run {args.run_id}: the errors among {images} {cfg.split} images, gradients per layer "
              f"group{probe} (fewer with --images N); {_attribution_estimate(store, args.run_id, cfg)}",
              file=sys.stderr, flush=True)
    t = time.perf_counter()
    _print_attribution(attribute_run(store, args.run_id, cfg, args.data_dir, _StageLines()))
    print(f"took {format_seconds(time.perf_counter() - t)}", file=sys.stderr)
    return 0


def cmd_overlap(args, store: Store) -> int:
    a = attribute_run(store, args.run_a, _attr_cfg(args), args.data_dir)
    b = attribute_run(store, args.run_b, _attr_cfg(args), args.data_dir)
    o = overlap(a["flagged"], b["flagged"])
    print(f"A {args.run_a}: {', '.join(a['flagged'])}")
    print(f"B {args.run_b}: {', '.join(b['flagged'])}")
    print(f"Jaccard {o['jaccard']:.2f}; shared: {', '.join(o['shared']) or '-'}; only A: "
          f"{', '.join(o['only_a']) or '-'}; only B: {', '.join(o['only_b']) or '-'}")
    return 0


def _trained_parent(store: Store, run_id: str) -> dict:
    """The run a diagnostic works on: a training or surgery run with its checkpoint, checked
    before any job is created (a sweep id, a missing or unreadable checkpoint are one line)."""
    run = store.get_run(run_id)
    if run["kind"] == KIND_IMPORTED:
        raise CLIError(no_weights(run))
    if run["kind"] not in ("train", "surgery", "external"):
        what = (f"a sweep (its member runs are in `beta-core runs list`, parent {run_id})"
                if run["kind"] == "sweep" else f"a {run['kind']} job")
        raise CLIError(f"Run {run_id} is {what} (expected a training or surgery run)")
    store.load_checkpoint(run_id)
    return run


def cmd_surgery(args, store: Store) -> int:
    parent = _trained_parent(store, args.run_id)
    groups = "auto" if args.groups == "auto" else tuple(g for g in args.groups.split(",") if g)
    cfg = SurgeryConfig(groups=groups, k=args.k, epochs=args.epochs, lr=args.lr,
                        oversample_errors=args.oversample_errors, controls=args.controls,
                        train_split=args.train_split, allow_leaky=args.allow_leaky)
    if groups != "auto":  # group names are known from the model alone: refuse a typo before a run exists
        known = [g for g, _ in run_groups(parent)]
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise CLIError(f"Unknown layer groups: {unknown} in --groups (expected some of {known}, or auto)")
    rid = store.create_run(surgery_run_config(train_config_of(parent), cfg), kind="surgery", parent=args.run_id)
    run = execute(store, rid, args.data_dir, Progress("surgery", cfg.epochs, args.quiet))
    if run["status"] != "done":
        print(f"surgery {rid}: {run['status']} {run['error'] or ''}")
        return 1
    s = run["summary"]
    label = " [LEAKY: trained on the scored split]" if s["leaky"] else ""
    print(f"surgery run {rid} (parent {args.run_id}){label}")
    print(reports.surgery_outcome(s).replace("**", ""))
    print(f"groups {', '.join(s['groups'])}: {formats.share(s['param_fraction'])} of parameters")
    print(reports.text_table(reports.surgery_rows(s)))
    meas = s["savings_measured"]
    print(f"compute savings vs full fine-tune: parameter proxy {s['savings_param_proxy']:.1%}, measured wall-clock "
          f"{'-' if meas is None else f'{meas:.1%}'}")
    return 0


def cmd_plant_fault(args, store: Store) -> int:
    model, splits, loaders = load_trained(store, args.run_id, args.data_dir)
    r = plant_fault(model, loaders["test"], args.group, args.strength, args.seed, classes=splits.classes,
                    method=args.method, train_loader=loaders["train"])
    print(f"[{r['method']}] damaged {r['group']} (noise {r['strength']}x its weight RMS): "
          f"test acc {r['acc_before']:.4f} -> "
          f"{r['acc_after']:.4f}")
    print("ranking: " + ", ".join(f"{g} ({r['scores'][g]:.3g})" for g in r["ranking"]))
    print(f"damaged group ranked {r['rank_of_damaged']}: {'DETECTED' if r['detected'] else 'NOT detected'}")
    return 0 if r["detected"] else 1


def cmd_curvature(args, store: Store) -> int:
    if args.images < 1 or args.k < 1:
        raise ValueError(f"Invalid -k {args.k} / --images {args.images} (expected integers >= 1)")
    if args.hvps < max(2 * args.k + 2, 4):  # the Lanczos basis of k eigenvalues needs that many products
        raise CLIError(f"Invalid --hvps {args.hvps} (expected at least {max(2 * args.k + 2, 4)} for -k {args.k})")
    run = _trained_parent(store, args.run_id)
    model, splits, loaders = load_trained(store, args.run_id, args.data_dir)
    loader = loaders["train_eval"]
    n = min(args.images, len(loader.y))
    batches = [(loader.normalise(loader.x[:n]), loader.y[:n])]
    cfg = TrainConfig.from_dict(train_config_of(run))
    loss = loss_fn(cfg.label_smoothing)
    whole, info = top_hessian_eigenvalues(model, loss, batches, args.k, max_hvps=args.hvps, return_info=True)
    groups = group_eigenvalues(model, loss, batches, args.k, max_hvps=args.hvps)
    ep = store.epochs(args.run_id)
    adam = cfg.adam
    print(f"run {args.run_id}: top {args.k} Hessian eigenvalues of the training loss on {n} training images "
          f"(BatchNorm in eval mode; {info['hvps']} Hessian-vector products)")
    print("whole model: " + ", ".join(f"{v:.4g}" for v in whole))
    for g, vals in groups.items():
        print(f"  {g:<8} " + ", ".join(f"{v:.4g}" for v in vals))
    result = {"images": n, "k": args.k, "whole": whole, "groups": groups}
    if not ep.empty:
        lr, mu = float(ep["lr"].iloc[-1]), float(ep["momentum"].iloc[-1])
        if adam:
            print(f"final lr {lr:.4g}, beta1 {mu:.3f}: zeta n/a for Adam (its preconditioned sharpness needs the "
                  "optimizer's state, which runs do not store)")
        else:
            d = measured_damping(whole[0], lr, mu)
            result["damping"] = d
            z = "-" if d["zeta_measured"] is None else f"{d['zeta_measured']:.3f}"
            print(f"final lr {lr:.4g}, mu {mu:.3f}: measured zeta {z} ({d['regime_measured']}), stability margin "
                  f"lr*lam/(2(1+mu)) = {d['stability_margin']:.3f} (diverges above 1); with lam = 1 the label was "
                  f"{ep['regime'].iloc[-1]}")
    store.add_result(args.run_id, "curvature", result)
    return 0


def cmd_localise_bench(args, store: Store) -> int:
    parent = _trained_parent(store, args.run_id)
    scores = [x for x in args.scores.split(",") if x] if args.scores else list(SCORES)
    faults = [x for x in args.faults.split(",") if x] if args.faults else list(FAULTS)
    rid = store.create_run(localise_job(parent, scores, faults, parse_seeds(args.seeds), args.probe_steps),
                           kind="localise", parent=args.run_id)

    def progress(c):
        if not args.quiet:
            ranks = " ".join(f"{s}:{c['ranks'].get(s) or '-'}" for s in scores)
            print(f"\r[{c['done']}] {c['fault']} {c['severity']:g} on {c['group']:<7} acc -{c['acc_drop']:.3f}  "
                  f"rank of the damaged group: {ranks}", file=sys.stderr)

    run = execute(store, rid, args.data_dir, progress)
    if run["status"] != "done":
        print(f"localise-bench {rid}: {run['status']} {run['error'] or ''}")
        return 1
    print_localisation(store.results(rid, "localisation")[-1])
    return 0


def print_localisation(r: dict) -> None:
    print(f"localisation benchmark on run {r['run_id']} ({r['model']}, {r['n_groups']} groups, {r['n_cases']} damaged "
          f"models, errors of the {r['split']} split; undamaged accuracy {r['base_acc']:.3f})")
    print(reports.text_table(reports.localisation_rows(r, PAPER_SCORES)))
    print(f"random floor: top-1 {r['floor_top1']:.1%}, top-3 {r['floor_top3']:.1%}; best: {r['best']}")
    print("accuracy lost per fault: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in r["accuracy_drop"].items()))


HANDLERS = {"localise-bench": cmd_localise_bench, "attribute": cmd_attribute, "overlap": cmd_overlap,
            "surgery": cmd_surgery,
            "plant-fault": cmd_plant_fault, "curvature": cmd_curvature}
