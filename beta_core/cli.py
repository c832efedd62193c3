"""Command line: ``python -m beta_core COMMAND`` (or the ``beta-core`` script).

    train      one run                        beta-core train --method sgd-beta --preset quick-cpu
    compare    methods x seeds, paired        beta-core compare --preset quick-cpu --seeds 0,1
    runs       list | show | export | delete  beta-core runs list
    attribute  per-group error attribution    beta-core attribute RUN
    surgery    retrain flagged groups         beta-core surgery RUN --groups auto --controls
    overlap    compare two diagnoses          beta-core overlap RUN_A RUN_B
    plant-fault  damage a group, re-diagnose  beta-core plant-fault RUN --group block2

Every failure prints one clear line to stderr and exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import fields

from .engine import METHODS, TrainConfig, resolve_config
from .presets import PRESETS, preset_methods, preset_overrides
from .store import Store, StoreError

__all__ = ["main", "build_parser", "config_from_args"]

_CONFIG_FLAGS = ("model", "width", "dataset", "data_path", "train_subset", "test_subset", "epochs",
                 "batch_size", "optimizer", "lr", "weight_decay", "lr_schedule", "momentum_rule", "mu",
                 "lam", "device", "seed")


class CLIError(Exception):
    pass


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


class Progress:
    """A one-line progress bar on stderr for training records."""

    def __init__(self, label: str, total_epochs: int, quiet: bool = False) -> None:
        self.label, self.total, self.quiet, self.last = label, total_epochs, quiet, 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, rec: dict) -> None:
        if self.quiet:
            return
        if "train_loss" in rec:
            print(f"\r{self.label}: epoch {rec['epoch'] + 1}/{self.total}  train loss {rec['train_loss']:.3f}  "
                  f"acc {rec['train_acc']:.3f}  test acc {rec['test_acc']:.3f}  {rec['regime']:<11}  "
                  f"{rec['time']:.1f}s", file=sys.stderr)
        elif self.tty and time.monotonic() - self.last > 0.2:
            self.last = time.monotonic()
            print(f"\r{self.label}: epoch {rec['epoch'] + 1}/{self.total} step {rec['step']}  loss {rec['loss']:.3f}"
                  f"  lr {rec['lr']:.4g}  mu {rec['momentum']:.3f}", end="", file=sys.stderr)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args, method: str, seed: int | None = None) -> TrainConfig:
    """Method defaults, then the preset, then explicit flags and ``--set key=value``."""
    overrides = preset_overrides(args.preset, method) if args.preset else {}
    for name in _CONFIG_FLAGS:
        v = getattr(args, name, None)
        if v is not None:
            overrides[name] = v
    known = {f.name for f in fields(TrainConfig)}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise CLIError(f"Invalid --set {item!r} (expected FIELD=VALUE with FIELD one of {sorted(known)})")
        overrides[key] = _parse_value(value)
    if args.thresholds:
        overrides["thresholds"] = tuple(float(t) for t in args.thresholds.split(","))
    if seed is not None:
        overrides["seed"] = seed
    if method.startswith("adam") and "lr" not in overrides:
        overrides.pop("lr", None)
    return resolve_config(method, **overrides)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), help="starting config (flags override it)")
    p.add_argument("--model", help="small_cnn | small_resnet | resnet18")
    p.add_argument("--width", type=int)
    p.add_argument("--dataset", help="auto | synthetic | cifar10 | folder")
    p.add_argument("--data-path", dest="data_path", help="ImageFolder tree or .tar.gz (or BETA_DATA_PATH)")
    p.add_argument("--train-subset", dest="train_subset", type=int)
    p.add_argument("--test-subset", dest="test_subset", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--optimizer")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--lr-schedule", dest="lr_schedule")
    p.add_argument("--momentum-rule", dest="momentum_rule")
    p.add_argument("--mu", type=float)
    p.add_argument("--lam", type=float)
    p.add_argument("--device")
    p.add_argument("--thresholds", help="comma-separated test accuracies, e.g. 0.5,0.6")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any TrainConfig field")
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="beta-core", description="Beta-scheduling: train, compare, diagnose.")
    ap.add_argument("--runs-dir", default=os.environ.get("BETA_RUNS_DIR", "runs"))
    ap.add_argument("--data-dir", default=os.environ.get("BETA_DATA_DIR", "data"))
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run")
    p.add_argument("--method", default="sgd-beta", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--seed", type=int)
    _add_config_flags(p)

    p = sub.add_parser("compare", help="several methods on the same seeds and data")
    p.add_argument("--methods", help="comma-separated (default: the preset's, else sgd-constant,sgd-beta,sgd-hybrid)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--parallel", type=int, default=1, help="worker processes at once (1: sequential, in-process)")
    _add_config_flags(p)

    p = sub.add_parser("runs", help="list, show, export or delete runs")
    rs = p.add_subparsers(dest="runs_command", required=True)
    rs.add_parser("list")
    q = rs.add_parser("show")
    q.add_argument("run_id")
    q = rs.add_parser("export")
    q.add_argument("run_ids", nargs="+")
    q.add_argument("--out", default="export")
    q = rs.add_parser("delete")
    q.add_argument("run_ids", nargs="+")

    p = sub.add_parser("worker", help=argparse.SUPPRESS)
    p.add_argument("run_id")

    from . import cli_diagnostics
    cli_diagnostics.add_parsers(sub)
    return ap


def _print_summary(run: dict) -> None:
    s = run["summary"]
    tta = ", ".join(f"{k}: " + ("-" if v is None else f"ep {v['epoch'] + 1} / {v['time']:.1f}s")
                    for k, v in (s.get("time_to_accuracy") or {}).items())
    acc = s.get("final_test_acc")
    print(f"{run['id']}  {run['method']:<13} {run['status']:<10} final test acc "
          f"{'-' if acc is None else f'{acc:.4f}'}  time-to-acc [{tta}]"
          + (f"  error: {run['error']}" if run["error"] else ""))


def _train_one(store: Store, cfg: TrainConfig, args, group_id=None, label=None) -> dict:
    run_id = store.create_run(cfg.to_dict(), group_id=group_id, label=label)
    prog = Progress(f"{cfg.method} seed {cfg.seed}", cfg.epochs, args.quiet)
    return _execute(store, run_id, args, prog)


def _execute(store: Store, run_id: str, args, on_record=None) -> dict:
    from .jobs import execute_run

    return execute_run(store, run_id, args.data_dir, on_record=on_record, handle_signals=True)


def cmd_train(args, store: Store) -> int:
    cfg = config_from_args(args, args.method, args.seed)
    run = _train_one(store, cfg, args)
    _print_summary(run)
    if run["summary"].get("synthetic"):
        print("note: trained on SYNTHETIC data (no CIFAR-10 here); pass --data-path for real images")
    return 0 if run["status"] == "done" else 1


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"Invalid {what}: {text!r} (expected comma-separated integers, e.g. 0,1,2)") from None


def cmd_compare(args, store: Store) -> int:
    methods = (args.methods.split(",") if args.methods else
               preset_methods(args.preset) if args.preset else ["sgd-constant", "sgd-beta", "sgd-hybrid"])
    seeds = _parse_ints(args.seeds, "--seeds")
    configs = [config_from_args(args, m, s) for s in seeds for m in methods]  # validates all first
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    if args.parallel > 1:
        from .jobs import JobManager

        jm = JobManager(store.dir, args.data_dir, max_parallel=args.parallel)
        ids = [jm.submit(c.to_dict(), group_id=group) for c in configs]
        runs = jm.wait(ids, on_tick=lambda: None if args.quiet else print(
            f"\r{sum(store.get_run(i)['status'] not in ('queued', 'running') for i in ids)}/{len(ids)} runs finished",
            end="", file=sys.stderr))
        print(file=sys.stderr)
    else:
        runs = [_train_one(store, c, args, group_id=group) for c in configs]
    for r in runs:
        _print_summary(r)
    table = store.compare([r["id"] for r in runs if r["status"] == "done"])
    if not table.empty:
        print("\nper method (mean, std, n over seeds):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if any(r["summary"].get("synthetic") for r in runs):
        print("note: trained on SYNTHETIC data (no CIFAR-10 here); pass --data-path for real images")
    return 0 if all(r["status"] == "done" for r in runs) else 1


def cmd_runs(args, store: Store) -> int:
    if args.runs_command == "list":
        df = store.list_runs()
        if df.empty:
            print(f"no runs in {store.dir}")
            return 0
        cols = ["id", "status", "kind", "method", "model", "data", "seed", "best_test_acc", "train_seconds", "parent"]
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif args.runs_command == "show":
        run = store.get_run(args.run_id)
        print(json.dumps({k: run[k] for k in ("id", "status", "kind", "method", "parent", "error", "summary",
                                              "config")}, indent=2, default=str))
        ep = store.epochs(args.run_id)
        if not ep.empty:
            print(ep.drop(columns=["run_id", "extra"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif args.runs_command == "export":
        for rid in args.run_ids:
            store.get_run(rid)
        for f in store.export_csv(args.run_ids, args.out):
            print(f)
    else:
        for rid in args.run_ids:
            store.delete(rid)
            print(f"deleted {rid}")
    return 0


def cmd_worker(args, store: Store) -> int:
    threads = os.environ.get("BETA_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    from .jobs import execute_run

    run = execute_run(store, args.run_id, args.data_dir, handle_signals=True)
    return 0 if run["status"] in ("done", "cancelled") else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = Store(args.runs_dir)
        from . import cli_diagnostics

        handlers = {"train": cmd_train, "compare": cmd_compare, "runs": cmd_runs, "worker": cmd_worker,
                    **cli_diagnostics.HANDLERS}
        return handlers[args.command](args, store)
    except (CLIError, StoreError, ValueError, TypeError, FileNotFoundError) as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
