"""CLI command ``sweep``: methods x seeds x grids, the tuned two-stage comparison, verdicts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import reports
from ..config import default_methods, parse_seeds
from ..engine import check_data
from ..jobs.ray_backend import connect
from ..presets import preset_sweep
from ..records import MEMBER
from ..store import Store
from ..sweeps import CONFIRM_ABOVE, SweepPlan, estimate_seconds, parse_grid, seeds_plan, sweep_run_config
from .common import INTERRUPTS, CLIError, execute, print_report

__all__ = ["add_parser", "cmd_sweep"]


def add_parser(sub, add_config_flags, add_backend_flags) -> None:
    p = sub.add_parser("sweep", help="methods x seeds x grids; --tune for the two-stage tuned comparison")
    p.add_argument("--methods", help="comma-separated (default: the preset's)")
    p.add_argument("--seeds", help="seeds of the reported stage, e.g. 0,1,2 (default: the preset's, else 0,1,2)")
    p.add_argument("--tune-seeds", dest="tune_seeds", help="seeds of stage 1, disjoint from --seeds (default 100,101)")
    p.add_argument("--grid", action="append", metavar="[METHOD:]FIELD=V1,V2",
                   help="values of a config field (several --grid: all combinations); METHOD may be sgd, adam "
                        "or a method name, e.g. adam:lr=3e-4,1e-3,3e-3")
    p.add_argument("--tune", help="grid fields chosen per method on validation in stage 1, e.g. lr")
    p.add_argument("--no-tune", dest="no_tune", action="store_true", help="one stage even if the preset tunes")
    p.add_argument("--target", help="test accuracies for time-to-target, e.g. 0.7 or 0.6,0.7 (default: 90, 95 and "
                                    "99%% of the baseline's stage-1 validation accuracy)")
    p.add_argument("--baseline", help="method the others are compared with (default: the first)")
    p.add_argument("--equivalence", type=float, default=0.005,
                   help="accuracy margin of 'equivalent' (default 0.005: half a point; TOST, 90%% interval)")
    p.add_argument("--equivalence-speed", dest="equivalence_speed", type=float, default=0.10,
                   help="speedup margin of 'equivalent' (default 0.1: 10%%)")
    p.add_argument("--parallel", type=int, default=1, help="worker processes at once (1: in this process)")
    p.add_argument("--resume", metavar="SWEEP", help="continue a sweep: finished cells are kept; cells that were "
                                                     "cancelled, interrupted or never started run again")
    p.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                   help="with --resume: also run the cells that failed again")
    p.add_argument("--yes", action="store_true", help=f"start a sweep of more than {CONFIRM_ABOVE} runs without asking")
    p.add_argument("--plan-n", dest="plan_n", type=float, metavar="DELTA",
                   help="print the seeds per method needed to detect an accuracy difference DELTA (e.g. 0.01) at "
                        "80%% power, from a pilot sweep's spread (--pilot, default the newest finished sweep); "
                        "runs nothing")
    p.add_argument("--pilot", metavar="SWEEP", help="with --plan-n: the sweep whose paired spread to use")
    p.add_argument("--json", metavar="PATH", help="write the report (statistics, verdicts, setting) as JSON")
    add_backend_flags(p)
    add_config_flags(p, skip=("seed",))


def _plan(args, overrides: dict) -> SweepPlan:
    d = preset_sweep(args.preset) if args.preset else {}
    methods = [m for m in args.methods.split(",") if m] if args.methods else (
        default_methods(args.preset))
    grid = parse_grid(args.grid) if args.grid else d.get("grid", {})
    tune = [] if args.no_tune else ([f for f in args.tune.split(",") if f] if args.tune else d.get("tune", []))
    if args.grid and not args.tune:
        tune = []  # a grid given on the command line is tuned only when --tune says so
    try:
        targets = [float(t) for t in args.target.split(",") if t.strip()] if args.target else []
    except ValueError:
        raise CLIError(f"Invalid --target {args.target!r} (expected test accuracies, e.g. 0.7 or 0.6,0.7)") from None
    seeds = parse_seeds(args.seeds) if args.seeds is not None else d.get("seeds", [0, 1, 2])
    return SweepPlan(methods=methods, seeds=seeds,
                     grid=grid, tune=tune,
                     tune_seeds=(parse_seeds(args.tune_seeds) if args.tune_seeds is not None
                                 else d.get("tune_seeds", [100, 101]))
                     if tune else [], targets=targets, baseline=args.baseline or d.get("baseline"),
                     preset=args.preset, overrides=overrides, equivalence=args.equivalence,
                     equivalence_speed=args.equivalence_speed)


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, rec: dict) -> None:
        if self.quiet or rec["kind"] != MEMBER:
            return
        s = rec["summary"]
        acc = lambda k: "-" if s.get(k) is None else f"{s[k]:.3f}"  # noqa: E731
        print(f"[{rec['done']}/{rec['total']}] {rec['stage']:<4} {rec['cell']:<36} {rec['status']:<9} "
              f"val {acc('final_val_acc')}  test {acc('final_test_acc')}", file=sys.stderr)


def _confirm_size(plan: SweepPlan, store: Store, yes: bool) -> None:
    n = plan.n_cells()
    if n <= CONFIRM_ABOVE or yes:
        return
    secs = estimate_seconds(plan, store.runs(kind="train", status="done"))
    eta = (f"about {secs / 3600:.1f} hours one run at a time, from earlier runs of this model here" if secs
           else "no earlier run of this model here to estimate its duration from")
    raise CLIError(f"This sweep plans {n} runs ({eta}); pass --yes to start it, or shrink the grid or seeds")


def _resume(args, store: Store, run_opts: dict) -> str:
    if not args.resume.strip():
        raise CLIError("Invalid --resume '' (expected a sweep id, e.g. from `beta-core runs list`; is the shell "
                       "variable set?)")
    sweep = store.get_run(args.resume)
    if sweep["kind"] != "sweep":
        raise CLIError(f"Run {args.resume} is a {sweep['kind']} run (expected a sweep to resume)")
    cfg = {**sweep["config"], "options": run_opts}
    plan = SweepPlan.from_dict(cfg["sweep"])
    check_data([plan.config(c) for c in plan.first_stage_cells()], args.data_dir,
               devices=run_opts["backend"] == "local")
    return store.reopen(args.resume, cfg)["id"]  # atomic: a second runner of this sweep is refused here


def _last_line(run: dict, rid: str) -> str:
    """The sweep's outcome in one line: whether every planned cell of the reported stage counted."""
    cov = run["summary"].get("coverage")
    if run["status"] == "cancelled":
        return (f"sweep {rid}: cancelled. Continue with: beta-core sweep --resume {rid} (finished cells are kept; "
                "cells that were cancelled, interrupted or never started run again)")
    if cov is None:
        return (f"sweep {rid}: {run['status']}" + (f": {run['error']}" if run["error"] else "")
                + f" (continue with: beta-core sweep --resume {rid})")
    if run["status"] == "done":
        return f"sweep {rid}: done: all {cov['planned']} planned cells of the reported stage counted"
    kinds = {}
    for m in cov["missing"]:
        kinds[m["status"]] = kinds.get(m["status"], 0) + 1
    why = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return (f"sweep {rid}: {run['status']}: {len(cov['missing'])} of {cov['planned']} planned cells of the reported "
            f"stage did not count ({why}); " + ("no verdict" if run["status"] == "failed" else
                                               "the verdicts above rest on fewer seeds than planned")
            + f". Run them again with: beta-core sweep --resume {rid} --retry-failed")


def _plan_n(args, store: Store) -> int:
    pilots = [s for s in store.runs(kind="sweep") if store.results(s["id"], "sweep")]
    pilot = args.pilot or (pilots[0]["id"] if pilots else None)
    if pilot is None:
        raise CLIError("No pilot for --plan-n: no finished sweep in this store (expected --pilot SWEEP, or run a "
                       "small sweep first)")
    reports_ = store.results(pilot, "sweep")
    if not reports_:
        raise CLIError(f"Invalid --pilot {pilot}: it has no report (expected a finished sweep)")
    p = seeds_plan(reports_[-1], args.plan_n)
    print(f"pilot sweep {pilot}: paired spread of final test accuracy {100 * p['sd']:.2f} pts ({p['method']} vs the "
          f"baseline, n = {p['n_pilot']} seeds)")
    print(reports.text_table([{"seeds per method": c["n"],
                               "detectable difference (80% power)": f"{100 * c['detectable']:.2f} pts"}
                              for c in p["curve"]]))
    print(f"to detect {100 * args.plan_n:g} pts with 80% power: "
          + (f"{p['needed']} seeds per method" if p["needed"] else "more than 1000 seeds per method"))
    return 0


def cmd_sweep(args, store: Store, overrides: dict, backend: str = "local", ray_address: str | None = None) -> int:
    if args.plan_n is not None:
        return _plan_n(args, store)
    if args.parallel < 1:
        raise CLIError(f"Invalid --parallel: {args.parallel} (expected an integer >= 1 worker processes)")
    if args.resume is None and args.retry_failed:
        raise CLIError("Invalid --retry-failed without --resume SWEEP (expected a sweep to resume)")
    if backend == "ray":
        connect(ray_address)  # an unreachable cluster fails here, before any run exists
    run_opts = {"parallel": args.parallel, "retry_failed": args.retry_failed, "backend": backend,
                "ray_address": ray_address}
    if args.resume is not None:
        rid = _resume(args, store, run_opts)
    else:
        plan = _plan(args, overrides)
        _confirm_size(plan, store, args.yes)
        check_data([plan.config(c) for c in plan.first_stage_cells()], args.data_dir,
                   devices=backend == "local")  # before any run exists
        rid = store.create_run({**sweep_run_config(plan, args.parallel), "options": run_opts}, kind="sweep")
    print(f"sweep {rid}", file=sys.stderr)
    run = execute(store, rid, args.data_dir, _Progress(args.quiet))
    results = store.results(rid, "sweep")
    if run["status"] in ("done", "incomplete") and results:
        print_report(results[-1], rid)
        if args.json:
            Path(args.json).write_text(json.dumps(results[-1], indent=2, default=str))
            print(f"report written to {args.json}")
    print(_last_line(run, rid))
    if INTERRUPTS():
        return INTERRUPTS.exit_code
    return 0 if run["status"] == "done" else 1
