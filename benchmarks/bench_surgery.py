"""Surgery vs full fine-tune wall-clock, and the diagnostic pipeline end to end on one dataset.

Trains an sgd-beta and an adam model (same seed, quick-cpu settings), attributes both
(flagged groups, overlap), then repairs the sgd-beta model: surgery on the groups flagged from
training-set errors, next to a full fine-tune, random groups and per-parameter selection with
the same budget. Prints fixed / broken / net for each and the measured time ratio
surgery / full fine-tune (a finding, no target).

Run: python benchmarks/bench_surgery.py [--data-path cifar10-jpeg.tar.gz] [--epochs 5]
"""
from __future__ import annotations

import argparse

from beta_core.attribution import AttributionConfig, attribute, overlap
from beta_core.config import plan_runs
from beta_core.data import DataConfig, eval_loaders, load_splits, make_synthetic
from beta_core.engine import Training
from beta_core.surgery import SurgeryConfig, run_surgery


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--surgery-epochs", type=int, default=2)
    ap.add_argument("--probe-steps", type=int, default=30)
    args = ap.parse_args()
    splits = (load_splits(DataConfig("folder", args.data_path, train_subset=8000, test_subset=2000))
              if args.data_path else make_synthetic(8000, 2000))
    print(f"data: {splits.name}, {len(splits.train_y)} train / {len(splits.test_y)} test")
    trained = {}
    for method in ("sgd-beta", "adam"):
        cfg = plan_runs([method], [0], "quick-cpu", {"epochs": args.epochs})[0]
        t = Training(cfg, splits=splits)
        list(t.run())
        trained[method] = (cfg, t)
        print(f"{method:<9} test acc {t.epochs_done[-1]['test_acc']:.4f}")
    flagged = {}
    for method, (_cfg, t) in trained.items():
        loaders = eval_loaders(splits, t.device, t.channels_last)
        r = attribute(t.model, loaders["test"], AttributionConfig(probe_steps=args.probe_steps), splits.classes,
                      train_loader=loaders["train"])
        flagged[method] = r["flagged"]
        print(f"{method:<9} flagged {r['flagged']} ({r['param_fraction']:.1%} of params); ranking {r['ranking']}; "
              f"probe ranking {r['probe_ranking']}")
    o = overlap(flagged["sgd-beta"], flagged["adam"])
    print(f"overlap sgd-beta vs adam: Jaccard {o['jaccard']:.2f}, shared {o['shared']}")
    cfg, t = trained["sgd-beta"]
    state = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
    out = run_surgery(cfg, state, SurgeryConfig(groups="auto", epochs=args.surgery_epochs, controls=True),
                      splits=splits)
    s = out["summary"]
    print(f"surgery groups (auto, from training errors): {s['groups']} = {s['param_fraction']:.1%} of parameters")
    print(f"{'variant':<30} {'fixed':>6} {'broken':>7} {'net':>5} {'acc before':>10} {'acc after':>10} "
          f"{'params':>7} {'seconds':>8}")
    for v in out["report"].values():
        print(f"{v['name']:<30} {v['fixed']:>6} {v['broken']:>7} {v['net']:>5} {v['acc_before']:>10.4f} "
              f"{v['acc_after']:>10.4f} {v['param_fraction']:>7.1%} {v['step_seconds']:>8.2f}")
    ratio = s["surgery_seconds"] / s["full_seconds"]
    print(f"wall-clock surgery / full fine-tune: {ratio:.3f} (measured savings {1 - ratio:.1%}; parameter-fraction "
          f"proxy {s['savings_param_proxy']:.1%})")


if __name__ == "__main__":
    main()
