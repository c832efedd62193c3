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
import uuid

import torch

from . import cli_diagnostics
from .cli_common import SYNTHETIC_NOTE, CLIError, Progress, execute, print_summary
from .config import METHODS, TrainConfig, coerce_field, config_fields, default_methods, field_help, plan_runs
from .jobs import JobManager
from .presets import PRESETS
from .records import ACTIVE
from .store import Store, StoreError

__all__ = ["main", "build_parser", "config_overrides"]

# Fields that are not plain flags: the method has --method/--methods, compare has --seeds.
_NOT_FLAGS = {"method"}


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _flag_type(name: str):
    def parse(text: str):
        try:
            return coerce_field(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _add_config_flags(p: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """One flag per TrainConfig field, parsed by the field's type, with the field's help."""
    p.add_argument("--preset", choices=tuple(PRESETS), help="starting config (flags override it)")
    for f in config_fields():
        if f.name in _NOT_FLAGS or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=field_help(f.name))
        else:
            p.add_argument(flag, dest=f.name, type=_flag_type(f.name), default=None, metavar=f.name.upper(),
                           help=f"{field_help(f.name)} (default {f.default!r})")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any TrainConfig field, by name")
    p.add_argument("--quiet", action="store_true")


def config_overrides(args) -> dict:
    """The config fields given on the command line: flags, then ``--set FIELD=VALUE``."""
    over = {f.name: getattr(args, f.name) for f in config_fields()
            if f.name not in _NOT_FLAGS and getattr(args, f.name, None) is not None}
    known = {f.name for f in config_fields()}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise CLIError(f"Invalid --set {item!r} (expected FIELD=VALUE with FIELD one of {sorted(known)})")
        if key in _NOT_FLAGS:
            raise CLIError(f"Invalid --set {item!r} (choose the method with --method for train, --methods for compare)")
        try:
            over[key] = coerce_field(key, value)
        except ValueError as e:
            raise CLIError(f"Invalid --set {item!r}: {e}") from None
    return over


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="beta-core", description="Beta-scheduling: train, compare, diagnose.")
    ap.add_argument("--runs-dir", default=os.environ.get("BETA_RUNS_DIR", "runs"))
    ap.add_argument("--data-dir", default=os.environ.get("BETA_DATA_DIR", "data"))
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run")
    p.add_argument("--method", default="sgd-beta", help=f"one of {', '.join(METHODS)}")
    _add_config_flags(p)

    p = sub.add_parser("compare", help="several methods on the same seeds and data")
    p.add_argument("--methods", help="comma-separated (default: the preset's, else sgd-constant,sgd-beta,sgd-hybrid)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--parallel", type=int, default=1, help="worker processes at once (1: sequential, in-process)")
    _add_config_flags(p, skip=("seed",))

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

    cli_diagnostics.add_parsers(sub)
    return ap


def _train_one(store: Store, cfg: TrainConfig, args, group_id=None, label=None) -> dict:
    run_id = store.create_run(cfg.to_dict(), group_id=group_id, label=label)
    prog = Progress(f"{cfg.method} seed {cfg.seed}", cfg.epochs, args.quiet)
    return execute(store, run_id, args.data_dir, prog)


def cmd_train(args, store: Store) -> int:
    over = config_overrides(args)
    cfg = plan_runs([args.method], [over.pop("seed", 0)], args.preset, over)[0]
    run = _train_one(store, cfg, args)
    print_summary(run)
    if run["summary"].get("synthetic"):
        print(SYNTHETIC_NOTE)
    return 0 if run["status"] == "done" else 1


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"Invalid {what}: {text!r} (expected comma-separated integers, e.g. 0,1,2)") from None


def cmd_compare(args, store: Store) -> int:
    methods = [m for m in args.methods.split(",") if m] if args.methods else default_methods(args.preset)
    seeds = _parse_ints(args.seeds, "--seeds")
    configs = plan_runs(methods, seeds, args.preset, config_overrides(args))  # validates all first
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    if args.parallel > 1:
        jm = JobManager(store.dir, args.data_dir, max_parallel=args.parallel)
        ids = [jm.submit(c.to_dict(), group_id=group) for c in configs]
        runs = jm.wait(ids, on_tick=lambda: None if args.quiet else print(
            f"\r{sum(store.get_run(i)['status'] not in ACTIVE for i in ids)}/{len(ids)} runs finished",
            end="", file=sys.stderr))
        print(file=sys.stderr)
    else:
        runs = [_train_one(store, c, args, group_id=group) for c in configs]
    for r in runs:
        print_summary(r)
    table = store.compare([r["id"] for r in runs if r["status"] == "done"])
    if not table.empty:
        print("\nper method (mean, std, n over seeds):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if any(r["summary"].get("synthetic") for r in runs):
        print(SYNTHETIC_NOTE)
    return 0 if all(r["status"] == "done" for r in runs) else 1


def cmd_runs(args, store: Store) -> int:
    if args.runs_command == "list":
        df = store.list_runs()
        if df.empty:
            print(f"no runs in {store.dir}")
            return 0
        cols = ["id", "status", "kind", "method", "model", "data", "seed", "best_test_acc", "wall_seconds", "parent"]
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
        torch.set_num_threads(int(threads))
    run = execute(store, args.run_id, args.data_dir)
    return 0 if run["status"] in ("done", "cancelled") else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = Store(args.runs_dir)
        handlers = {"train": cmd_train, "compare": cmd_compare, "runs": cmd_runs, "worker": cmd_worker,
                    **cli_diagnostics.HANDLERS}
        return handlers[args.command](args, store)
    except (CLIError, StoreError, ValueError, TypeError, FileNotFoundError) as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
