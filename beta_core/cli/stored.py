"""The commands that only read stored runs (``runs list|show|diff|export|delete``), and how every
command reports a failure: one line, a non-zero exit. Nothing here imports torch, so a listing
starts in the time Python, pandas and SQLite take (``benchmarks/bench_cli_start.py``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from .. import explorer, reports
from ..annotations import tags_of
from ..env import EnvError, settings
from ..queries import sweep_members
from ..store import Store, StoreError

__all__ = ["CLIError", "Parser", "LIGHT", "light_main", "add_global_flags", "add_runs_parser", "cmd_stored_runs", "err",
           "guarded", "light_command", "main"]

LIGHT = ("list", "show", "diff", "export", "delete", "tag", "note", "rename")  # ``runs`` subcommands that need no model


class CLIError(Exception):
    """A user error the CLI reports as one line (exit code 2)."""


def err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def add_global_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--runs-dir", help="the run store (default: BETA_RUNS_DIR, else runs)")
    ap.add_argument("--data-dir", help="datasets and their cache (default: BETA_DATA_DIR, else data)")


def add_runs_parser(sub) -> None:
    p = sub.add_parser("runs", help="list, show, export or delete runs")
    rs = p.add_subparsers(dest="runs_command", required=True)
    q = rs.add_parser("list", help="the runs, newest first; --where and --sort as the Runs page's filter")
    q.add_argument("--where", help="a filter: FIELD OP VALUE; ... e.g. 'lr > 0.05; tag = lecture' (OP: = != > >= < "
                                   "<= ~ in, not in)")
    q.add_argument("--sort", default="created", help="any field (default created)")
    q.add_argument("--asc", action="store_true", help="smallest first (default: largest first)")
    q.add_argument("--limit", type=int, help="at most this many runs (default: all)")
    q = rs.add_parser("tag", help="add or remove tags of runs")
    q.add_argument("run_ids", nargs="+")
    q.add_argument("--add", default="", help="comma-separated tags to add")
    q.add_argument("--remove", default="", help="comma-separated tags to remove")
    q = rs.add_parser("note", help="a run's note (free text; '' removes it)")
    q.add_argument("run_id")
    q.add_argument("text")
    q = rs.add_parser("rename", help="a run's name, shown in tables and legends ('' removes it)")
    q.add_argument("run_id")
    q.add_argument("name")
    q = rs.add_parser("show")
    q.add_argument("run_id")
    q = rs.add_parser("export")
    q.add_argument("run_ids", nargs="+")
    q.add_argument("--out", default="export")
    q = rs.add_parser("delete")
    q.add_argument("run_ids", nargs="+")
    q = rs.add_parser("pack", help="runs (a sweep with its members) into one zip for another store")
    q.add_argument("run_ids", nargs="+")
    q.add_argument("--out", required=True, help="the bundle to write, e.g. bundle.zip")
    q.add_argument("--no-checkpoints", dest="checkpoints", action="store_false", help="leave the weights out")
    q = rs.add_parser("unpack", help="a bundle's runs into this store (ids kept; twice adds nothing)")
    q.add_argument("bundle")
    q = rs.add_parser("diff", help="two runs' configs side by side, differing fields marked")
    q.add_argument("run_a")
    q.add_argument("run_b")


def light_command(argv: list[str], commands: tuple = ("runs",)) -> bool:
    """Whether ``argv`` asks for one of ``commands`` that loads no model (``runs`` LIGHT, or any
    subcommand of another); help and the rest go to the full CLI."""
    words, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-h", "--help"):
            return False
        elif a in ("--runs-dir", "--data-dir") and not words:
            skip = True
        elif not a.startswith("-"):
            words.append(a)

    # a flag of a light command is the light parser's too (only -h/--help lists every command)
    return len(words) >= 2 and words[0] in commands and (words[0] != "runs" or words[1] in LIGHT)


def cmd_stored_runs(args, store: Store) -> int:
    if args.runs_command == "list":
        if args.where or args.sort != "created" or args.asc:
            page = explorer.query(store, args.where, args.sort, not args.asc, limit=args.limit or -1,
                                  known=explorer.fields(store))
            df = reports.run_table(store, store.runs_by_id(page.frame["id"].tolist()))
        else:
            df = reports.run_table(store, store.runs(limit=args.limit))
        if df.empty:
            print(f"no runs in {store.dir}" + (f" match {args.where!r}" if args.where else ""))
            return 0
        cols = ["id", "status", "kind", "method", "model", "data", "lr", "seed", "best_test_acc", "wall_seconds",
                "parent"]
        df["seed"] = [v if pd.isna(v) else str(int(v)) for v in df["seed"]]  # "2", not "2.0000"; sweeps have none
        missing = lambda fmt: lambda v: "-" if pd.isna(v) else fmt(v)  # noqa: E731 - a value a run lacks: "-", not NaN
        print(df[cols].fillna(float("nan")).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-",
                                 formatters={"lr": missing(lambda v: f"{v:g}"),
                                             "wall_seconds": missing(lambda v: f"{v:.1f}")}))
    elif args.runs_command == "show":
        run = store.get_run(args.run_id)
        keys = ("id", "name", "status", "kind", "method", "parent", "error", "note", "summary", "config")
        print(json.dumps({k: run.get(k) for k in keys} | {"tags": tags_of(run)}, indent=2, default=str))
        ep = store.epochs(args.run_id)
        if not ep.empty:
            print(ep.drop(columns=["run_id", "extra"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    elif args.runs_command == "diff":
        a, b = store.get_run(args.run_a), store.get_run(args.run_b)
        rows = reports.config_diff(a["config"], b["config"])
        n = sum(r["differs"] for r in rows)
        print(reports.text_table([{"": "*" if r["differs"] else "", "field": r["field"], args.run_a: r["a"],
                                   args.run_b: r["b"]} for r in rows]))
        print(f"{n} field{'s' if n != 1 else ''} differ (marked *)")
    elif args.runs_command == "export":
        ids = []
        for rid in args.run_ids:  # a sweep exports as its members' records plus its report
            run = store.get_run(rid)
            ids += [r["id"] for _, r in sweep_members(store, rid)] if run["kind"] == "sweep" else [rid]
        for f in reports.export_csv(store, ids, args.out):
            print(f)
        for rid in args.run_ids:
            rep = store.results(rid, "sweep")
            if rep:
                out = Path(args.out)
                (out / f"sweep-{rid}.json").write_text(json.dumps(rep[-1], indent=2, default=str))
                pd.DataFrame(reports.verdict_rows(rep[-1])).to_csv(out / f"sweep-{rid}-verdicts.csv", index=False)
                print(out / f"sweep-{rid}.json")
                print(out / f"sweep-{rid}-verdicts.csv")
    elif args.runs_command == "tag":
        split = lambda text: [t.strip() for t in text.split(",") if t.strip()]  # noqa: E731
        if not split(args.add) and not split(args.remove):
            raise CLIError("Invalid flags: runs tag needs --add or --remove (expected comma-separated tags)")
        for rid in args.run_ids:
            print(f"{rid}: {', '.join(store.tag(rid, split(args.add), split(args.remove))) or '(no tags)'}")
    elif args.runs_command == "note":
        store.note(args.run_id, args.text)
    elif args.runs_command == "rename":
        store.rename(args.run_id, args.name)
    elif args.runs_command == "delete":
        for rid in args.run_ids:
            n = store.delete(rid)
            print(f"deleted {rid}" + (f" and its {n - 1} member runs" if n > 1 else ""))
    else:
        raise CLIError(f"runs {args.runs_command} needs the full command line")
    return 0


def guarded(body, extra_errors: tuple = ()) -> int:
    """Run ``body()`` (an exit code); every failure a user can cause is one line on stderr."""
    try:
        code = body()
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except BrokenPipeError:  # ``beta-core runs show X | head``: the reader left; stop quietly (Python's advice)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CLIError, StoreError, EnvError, ValueError, TypeError, FileNotFoundError, *extra_errors) as e:
        err(str(e))
        return 2
    except OSError as e:  # a file system refusal we did not foresee: still one line
        err(f"{e.strerror or e}: {e.filename or ''}".strip(": "))
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130


class Parser(argparse.ArgumentParser):
    """argparse that says a bad flag in one line, as every other bad input is said (it printed
    the whole 34-line usage before ``--lr inf``'s error); its subcommands' parsers are of this class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def light_main(argv: list[str], add_parsers, handler) -> int:
    """A command without the full command line: its parser (``add_parsers(sub)``), the store,
    ``handler(args, store)``, every failure one line."""
    ap = Parser(prog="beta-core")
    add_global_flags(ap)
    add_parsers(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)

    def body() -> int:
        env = settings()  # every BETA_* variable checked once, as for every other command
        store = Store(args.runs_dir or env.runs_dir)
        store.reap()  # runs whose process died are recorded as interrupted before anything reads them
        return handler(args, store)
    return guarded(body)


def main(argv: list[str]) -> int:
    return light_main(argv, add_runs_parser, cmd_stored_runs)
