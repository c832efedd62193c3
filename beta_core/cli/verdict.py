"""CLI: ``beta-core verdict``: the sweep statistics over any finished runs, ours or external;
``beta-core findings``: the paper's four claims tested on the store's findings runs."""
from __future__ import annotations

import json
from pathlib import Path

from ..findings import findings, markdown
from ..formats import counted
from ..records import TRAINED_KINDS
from ..store import Store
from ..verdicts import EQUIVALENCE, EQUIVALENCE_SPEED, analyse_runs, run_arms
from .common import CLIError, print_report

__all__ = ["add_parser", "cmd_verdict", "cmd_findings"]

KINDS = TRAINED_KINDS


def add_parser(sub) -> None:
    p = sub.add_parser("verdict", help="verdicts over any finished runs: --runs A.. --against B.., or --group-by")
    p.add_argument("--runs", help="comma-separated run ids of one arm")
    p.add_argument("--against", help="comma-separated run ids of the baseline arm (with --runs)")
    p.add_argument("--group-by", dest="group_by", help="form arms from the store's finished training and external "
                                                       "runs by this field: method, or any config field")
    p.add_argument("--baseline", help="with --group-by: the arm the others are compared with")
    p.add_argument("--where", action="append", metavar="FIELD=VALUE", default=[],
                   help="with --group-by: keep runs whose config FIELD equals VALUE (several: all must hold)")
    p.add_argument("--target", help="test accuracies for time-to-target, e.g. 0.6,0.7 (default: 90, 95 and 99%% "
                                    "of the baseline's mean final validation accuracy)")
    p.add_argument("--equivalence", type=float, default=EQUIVALENCE, help="accuracy margin of 'equivalent'")
    p.add_argument("--equivalence-speed", dest="equivalence_speed", type=float, default=EQUIVALENCE_SPEED,
                   help="speedup margin of 'equivalent'")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON (the sweep report's shape)")
    p = sub.add_parser("findings", help="the paper's four claims tested on this store's findings runs (Markdown)")
    p.add_argument("--sweep", help="the findings sweep (default: the newest finished sweep)")
    p.add_argument("--out", metavar="PATH", help="write the Markdown here (default: print it)")


def _ids(text: str, flag: str) -> list[str]:
    ids = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not ids:
        raise CLIError(f"Invalid {flag} {text!r} (expected comma-separated run ids)")
    return ids


def _matches(run: dict, where: list[tuple[str, str]]) -> bool:
    return all(str(run["method"] if k == "method" else run["config"].get(k)) == v for k, v in where)


def select(store: Store, args) -> tuple[dict, str]:
    """The arms and the baseline the flags ask for."""
    if args.runs or args.against:
        if args.group_by:
            raise CLIError("Invalid flags: --runs/--against with --group-by (expected one way of choosing runs)")
        a = [store.get_run(i) for i in _ids(args.runs, "--runs")]
        b = [store.get_run(i) for i in _ids(args.against, "--against")]
        name_a, name_b = ({r["method"] for r in rs} for rs in (a, b))
        # Each side is named by its method when it is one method and the two differ.
        one = len(name_a) == len(name_b) == 1 and name_a != name_b
        na, nb = (next(iter(name_a)), next(iter(name_b))) if one else ("runs", "against")
        # Each side is one arm whatever its runs' methods, paired by seed with the other.
        return {nb: run_arms(b, lambda r: nb)[nb], na: run_arms(a, lambda r: na)[na]}, nb
    if not args.group_by:
        raise CLIError("Invalid flags: none chose runs (expected --runs A,B --against C,D, or --group-by FIELD "
                       "--baseline VALUE)")
    where = []
    for item in args.where:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CLIError(f"Invalid --where {item!r} (expected FIELD=VALUE, e.g. tag=exp3)")
        where.append((k, v))
    runs = [r for r in store.runs(kind=KINDS, status=("done", "diverged")) if _matches(r, where)]
    if not runs:
        raise CLIError("No finished runs match" + (f" {' and '.join(args.where)}" if where else "")
                       + " (expected finished training or external runs)")
    arms = run_arms(list(reversed(runs)), args.group_by)  # oldest first: arms in the order they were made
    if not args.baseline:
        raise CLIError(f"Invalid flags: --group-by without --baseline (expected one of {', '.join(map(str, arms))})")
    return arms, args.baseline


def cmd_verdict(args, store: Store) -> int:
    arms, baseline = select(store, args)
    targets = [float(t) for t in args.target.split(",") if t.strip()] if args.target else None
    epochs = store.epoch_records(*[r["id"] for a in arms.values() for r in a.values()])
    rep = analyse_runs(arms, epochs, baseline, targets, args.equivalence, args.equivalence_speed)
    label = ", ".join(f"{m} ({counted(len(a), 'run')})" for m, a in arms.items())
    print_report(rep, f"verdict over {label}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=2, default=str)
        print(f"report written to {args.json}")
    return 0


def cmd_findings(args, store: Store) -> int:
    text = markdown(findings(store, args.sweep))
    if args.out:
        Path(args.out).write_text(text)
        print(f"findings written to {args.out}")
    else:
        print(text)
    return 0
