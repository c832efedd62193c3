"""Every command's parser and handler (the list is in ``beta_core.cli``'s docstring); ``cli.main``
sends the commands that only read stored runs to ``cli.stored`` and the rest here."""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import replace

import torch

from .. import bundles, formats, reports, zoo
from ..config import (
    METHODS,
    TrainConfig,
    coerce_field,
    config_fields,
    default_methods,
    field_help,
    parse_seeds,
    plan_runs,
)
from ..engine import check_data
from ..env import check_ray_address, settings
from ..formats import counted
from ..jobs import BACKENDS, worker
from ..jobs.manager import JobManager
from ..jobs.ray_backend import RayBackendError
from ..models import MODELS, ModelConfig, build_model, catalogue, layer_groups
from ..presets import PRESETS
from ..records import train_config_of
from ..store import Store
from . import diagnostics, imports, reporting, sweep, verdict
from .common import INTERRUPTS, SYNTHETIC_NOTE, CLIError, Progress, execute, print_summary
from .stored import Parser, add_global_flags, add_runs_parser, cmd_stored_runs, guarded

__all__ = ["main", "build_parser", "config_overrides"]

# Fields that are not plain flags: the method has --method/--methods, compare has --seeds.
_NOT_FLAGS = {"method"}


def _flag_type(name: str):
    def parse(text: str):
        try:
            return coerce_field(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, help="where runs execute: local worker processes, or Ray tasks "
                                                       "(default: BETA_BACKEND, else local)")
    p.add_argument("--ray-address", dest="ray_address", help="HOST:PORT of a Ray head (default: BETA_RAY_ADDRESS, "
                                                             "else a local Ray instance)")


def _backend(args) -> tuple[str, str | None]:
    env = settings()
    return args.backend or env.backend, check_ray_address(args.ray_address) or env.ray_address


def _add_config_flags(p: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """One flag per TrainConfig field, parsed by the field's type, with the field's help."""
    p.add_argument("--preset", choices=tuple(PRESETS), help="starting config (flags override it)")
    for f in config_fields():
        if f.name in _NOT_FLAGS or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = field_help(f.name).replace("%", "%%")  # argparse %-formats help: "2%" broke --help
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            p.add_argument(flag, dest=f.name, type=_flag_type(f.name), default=None, metavar=f.name.upper(),
                           help=f"{text} (default {f.default!r})")
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
    if zoo.is_spec(over.get("model", "")):
        zoo.trust(over["model"])  # typed on this command line: the user's own code
    return over


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="beta-core", description="Beta-scheduling: train, compare, diagnose.")
    add_global_flags(ap)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run")
    p.add_argument("--method", help=f"one of {', '.join(METHODS)} (default sgd-beta)")
    p.add_argument("--from", dest="from_run", metavar="RUN",
                   help="relaunch RUN's stored config, in RUN's comparison; flags and --set FIELD=VALUE change fields "
                        "of it")
    _add_backend_flags(p)
    _add_config_flags(p)

    p = sub.add_parser("compare", help="several methods on the same seeds and data")
    p.add_argument("--methods", help="comma-separated (default: the preset's, else sgd-constant,sgd-beta,sgd-hybrid)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--parallel", type=int, default=1, help="worker processes at once (1: sequential, in-process)")
    _add_backend_flags(p)
    _add_config_flags(p, skip=("seed",))

    add_runs_parser(sub)

    reporting.add_parser(sub)

    p = sub.add_parser("models", help="the models you can train: built-in, torchvision, BETA_MODELS; their groups")
    ms = p.add_subparsers(dest="models_command")
    ms.add_parser("list", help="names, parameters, whether each runs on 32x32 images (the default)")
    q = ms.add_parser("show", help="a model's layer groups (the unit of attribution and surgery)")
    q.add_argument("name", help="built-in name or spec, e.g. resnet18, torchvision:mobilenet_v3_small, my.py:net")
    q.add_argument("--classes", type=int, default=10, help="outputs of its classifier (default 10)")
    q.add_argument("--resize", type=int, help="input side it sees (default: 32, as stored)")

    p = sub.add_parser("worker", help=argparse.SUPPRESS)
    p.add_argument("run_id", nargs="?")
    p.add_argument("--serve", action="store_true", help="take run ids from stdin, one after another (warm)")

    diagnostics.add_parsers(sub)
    verdict.add_parser(sub)
    imports.add_parser(sub)
    sweep.add_parser(sub, _add_config_flags, _add_backend_flags)
    for name, p in sub.choices.items():
        if name not in ("runs", "report", "verdict", "import"):  # the commands that may build a model
            p.add_argument("--trust-model", dest="trust_model", action="append", default=[], metavar="SPEC",
                           help="build this code spec (file.py:factory, package.module:factory) although it came "
                                "from a stored run or a bundle; repeatable")
    return ap


def _train_one(store: Store, cfg: TrainConfig, args, group_id=None, label=None) -> dict:
    if cfg.threads is None:  # this process's threads, written into the run: it gives these numbers anywhere
        cfg = replace(cfg, threads=settings().threads or torch.get_num_threads())
    run_id = store.create_run(cfg.to_dict(), group_id=group_id, label=label)
    prog = Progress(f"{cfg.method} seed {cfg.seed}", cfg.epochs, args.quiet)
    return execute(store, run_id, args.data_dir, prog)


def _relaunch(args, store: Store) -> TrainConfig:
    """``--from RUN``: the run's stored training config with the fields given on the command line."""
    if args.preset:
        raise CLIError("Invalid flags: --from with --preset (expected one starting config: the run's)")
    run = store.get_run(args.from_run)
    if run["kind"] not in ("train", "surgery"):
        how = {"sweep": f"run it again with `beta-core sweep --resume {run['id']}`",
               "external": "it was logged from your own loop: run your script again",
               "imported": "it was imported from another tracker: its config is not ours to relaunch"}.get(
            run["kind"], f"relaunch the training run it diagnosed ({run['parent']})")
        article = "an" if run["kind"][0] in "aeiou" else "a"
        raise CLIError(f"Run {run['id']} is {article} {run['kind']} run, not a training run (expected a run of "
                       f"`train`, `compare` or a sweep's member to relaunch; {how})")
    base = TrainConfig.from_dict(train_config_of(run)).to_dict()
    over = {**config_overrides(args), **({"method": args.method} if args.method else {})}
    changed = {k: v for k, v in over.items() if base.get(k) != v}
    if not args.quiet:
        print(f"relaunching {args.from_run}" + (" with " + ", ".join(f"{k}={v!r}" for k, v in changed.items())
                                                 if changed else " as it was"), file=sys.stderr)
    return TrainConfig.from_fields({**base, **over})


def cmd_train(args, store: Store) -> int:
    group = None
    if args.from_run:  # beside the runs it came from, as the page's "Launch again" puts it (not into a sweep)
        src = store.get_run(args.from_run)
        cfg, group = _relaunch(args, store), (None if src["parent"] else src["group_id"])
    else:
        over = config_overrides(args)
        cfg = plan_runs([args.method or "sgd-beta"], [over.pop("seed", 0)], args.preset, over)[0]
    backend, address = _backend(args)
    check_data([cfg], args.data_dir, devices=backend == "local")  # before a run exists: a bad path creates nothing
    if backend == "ray":
        jm = JobManager(store.dir, args.data_dir, backend="ray", ray_address=address)  # connects first
        rid = jm.submit(cfg.to_dict(), group_id=group)
        run = jm.wait([rid], should_stop=INTERRUPTS)[0]
    else:
        run = _train_one(store, cfg, args, group_id=group)
    print_summary(run)
    if run["summary"].get("synthetic"):
        print(SYNTHETIC_NOTE)
    if INTERRUPTS():
        return INTERRUPTS.exit_code
    return 0 if run["status"] == "done" else 1


def _compare_in_workers(store: Store, configs: list, args, group: str) -> list[dict]:
    backend, address = _backend(args)
    jm = JobManager(store.dir, args.data_dir, max_parallel=args.parallel, backend=backend, ray_address=address)
    ids = [jm.submit(c.to_dict(), group_id=group) for c in configs]
    finished = []

    def tick():
        if not args.quiet:
            print(f"\r{len(finished)} of {counted(len(ids), 'run')} finished"
                  + (" (stopping)" if INTERRUPTS() else ""), end="", file=sys.stderr)

    runs = jm.wait(ids, on_tick=tick, should_stop=INTERRUPTS, on_finished=finished.append)
    print(file=sys.stderr)
    return runs


def cmd_compare(args, store: Store) -> int:
    if args.parallel < 1:
        raise CLIError(f"Invalid --parallel: {args.parallel} (expected an integer >= 1 worker processes)")
    methods = [m for m in args.methods.split(",") if m] if args.methods else default_methods(args.preset)
    configs = plan_runs(methods, parse_seeds(args.seeds), args.preset, config_overrides(args))  # validates all
    check_data(configs, args.data_dir, devices=_backend(args)[0] == "local")
    group = f"cmp-{uuid.uuid4().hex[:8]}"
    if args.parallel > 1 or _backend(args)[0] == "ray":
        runs = _compare_in_workers(store, configs, args, group)
    else:
        runs = []
        for c in configs:  # a signal stops the comparison: the rest are never created
            runs.append(_train_one(store, c, args, group_id=group))
            if INTERRUPTS():
                break
    for r in runs:
        print_summary(r)
    table = reports.method_summary(store, [r["id"] for r in runs if r["status"] == "done"])
    if not table.empty:
        print("\nper method (mean, std, n over seeds):")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if any(r["summary"].get("synthetic") for r in runs):
        print(SYNTHETIC_NOTE)
    if INTERRUPTS():
        print(f"stopped by a signal: {len(runs)} of {len(configs)} runs started", file=sys.stderr)
        return INTERRUPTS.exit_code
    return 0 if all(r["status"] == "done" for r in runs) else 1


def cmd_runs(args, store: Store) -> int:
    """``runs pack|unpack`` (bundles check models, so they load torch); the rest reads the store only."""
    if args.runs_command == "pack":
        info = bundles.pack(store, args.run_ids, args.out, args.checkpoints)
        print(f"{args.out}: {counted(info['runs'], 'run')}, {counted(info['checkpoints'], 'checkpoint')}, "
              f"{info['bytes'] / 1e6:.1f} MB")
    elif args.runs_command == "unpack":
        info = bundles.unpack(store, args.bundle)
        print(f"{args.bundle}: {counted(len(info['added']), 'run')} added to {store.dir}, "
              f"{len(info['skipped'])} already there")
    else:
        return cmd_stored_runs(args, store)
    return 0


def cmd_models(args, store: Store) -> int:
    if args.models_command == "show":
        if zoo.is_spec(args.name):
            zoo.trust(args.name)  # typed here
        mc = ModelConfig(args.name, num_classes=args.classes, resize=args.resize)
        model = build_model(mc, pretrained=False)
        groups = layer_groups(model)
        total = sum(g.n_params for g in groups)
        print(f"{mc.name}: {total:,} parameters in {len(groups)} layer groups, forward order "
              f"({args.classes} classes, {mc.resize or 32}x{mc.resize or 32} input)")
        print(reports.text_table([{"group": g.name, "parameters": f"{g.n_params:,}", "share": formats.share(g.fraction)}
                                  for g in groups]))
        return 0
    rows = catalogue([*MODELS, *settings().models, *(f"torchvision:{n}" for n in zoo.torchvision_names())])
    runs = {True: "yes", False: "no: --resize (e.g. 224)", None: "? (checked at launch)"}
    print(reports.text_table([{"model": r["name"], "parameters": "?" if r["params"] is None else f"{r['params']:,}",
                               "runs at 32x32": runs[r["runs_at"]]} for r in rows]))
    print("any of these with --model NAME; torchvision:NAME?weights=DEFAULT for pretrained weights; timm:NAME "
          "with timm installed; your own with --model file.py:factory (README, 'Your model')")
    return 0


def cmd_worker(args, store: Store) -> int:
    threads = settings().threads
    if threads:
        torch.set_num_threads(threads)
    if not args.serve:
        run = execute(store, args.run_id, args.data_dir)
        return 0 if run["status"] in ("done", "cancelled") else 1
    fd = os.environ.pop("BETA_WORKER_FD", None)
    stopped = worker.serve(store, args.data_dir, sys.stdin, INTERRUPTS, lambda m: print(m, flush=True),
                           int(fd) if fd else None)
    return INTERRUPTS.exit_code if stopped else 0


# Commands that run jobs in this process: a signal cancels the job and stops the command.
_RUNS_JOBS = {"train", "compare", "worker", "surgery", "sweep", "localise-bench"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        env = settings()  # every BETA_* variable checked once, before anything runs
        args.runs_dir = args.runs_dir or env.runs_dir
        args.data_dir = args.data_dir or env.data_dir
        if args.command in _RUNS_JOBS:
            INTERRUPTS.install()
        zoo.trust(*getattr(args, "trust_model", []))
        store = Store(args.runs_dir)
        store.reap()  # runs whose process died are recorded as interrupted before anything reads them
        handlers = {"train": cmd_train, "compare": cmd_compare, "runs": cmd_runs, "worker": cmd_worker,
                    "models": cmd_models, "verdict": verdict.cmd_verdict, "report": reporting.cmd_report,
                    "findings": verdict.cmd_findings, "import": imports.cmd_import,
                    "sweep": lambda a, s: sweep.cmd_sweep(a, s, config_overrides(a), *_backend(a)),
                    **diagnostics.HANDLERS}
        return handlers[args.command](args, store)
    return guarded(body, (RayBackendError,))
