"""CLI: ``beta-core import tensorboard LOGDIR | mlflow | csv FILE``: runs other trackers hold,
as our records (``importer``), without torch. The map it uses is printed before anything is
written; ``--dry-run`` prints it and writes nothing."""
from __future__ import annotations

from .. import importer, trackers
from ..formats import counted
from ..store import Store
from .stored import CLIError, light_main

__all__ = ["add_parser", "cmd_import", "main"]


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="runs from TensorBoard, MLflow or a CSV export, as records (kind imported)")
    src = p.add_subparsers(dest="tracker", required=True)
    q = src.add_parser("tensorboard", help="every run (folder of event files) under LOGDIR")
    q.add_argument("logdir")
    q = src.add_parser("mlflow", help="the finished runs of an MLflow store")
    q.add_argument("--tracking-uri", dest="tracking_uri", help="a folder (./mlruns), file://, http://HOST:PORT "
                                                               "(default MLFLOW_TRACKING_URI, else ./mlruns)")
    q.add_argument("--experiment", help="one experiment by name (default: all)")
    q = src.add_parser("csv", help="a CSV export (W&B's, or a step column and one column a metric)")
    q.add_argument("file")
    for q in src.choices.values():
        q.add_argument("--map", help="FIELD=TAG,... which tag is which field (fields: "
                                     f"{', '.join(importer.FIELDS)}); a number is a constant, e.g. momentum=0.9; "
                                     "fields not named are guessed from common tag names")
        q.add_argument("--method", help="the arm the runs belong to, e.g. sgd-beta (default: a 'method' param, "
                                        "else imported-TRACKER)")
        q.add_argument("--seed", type=int, help="their seed (default: a 'seed' param, else 0)")
        q.add_argument("--lam", type=float, default=1.0, help="curvature scale of the damping ratio (default 1, "
                                                              "the paper's)")
        q.add_argument("--optimizer", choices=("sgd", "adam"), help="what the momentum is: SGD's momentum or "
                                                                     "Adam's beta1 (default: guessed from tag names)")
        q.add_argument("--thresholds", default="0.9,0.95", help="test accuracies for time-to-target")
        q.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the map and the runs; "
                                                                              "write nothing")


def _read(args) -> list[trackers.Source]:
    if args.tracker == "tensorboard":
        return trackers.read_tensorboard(args.logdir)
    if args.tracker == "mlflow":
        return trackers.read_mlflow(args.tracking_uri, args.experiment)
    return trackers.read_csv(args.file)


def cmd_import(args, store: Store) -> int:
    try:
        given = importer.parse_map(args.map)
        thresholds = tuple(float(t) for t in args.thresholds.split(","))
        sources = _read(args)
        planned = []
        for i, s in enumerate(sources):
            mapping = {**importer.guess_map(s.scalars), **given}
            planned.append(importer.plan(s, mapping, method=args.method, seed=args.seed, lam=args.lam,
                                         thresholds=thresholds, optimizer=args.optimizer, default_seed=i))
    except (ValueError, ImportError) as e:
        raise CLIError(str(e)) from None
    print(f"{counted(len(planned), 'run')} in {args.tracker} ({sources[0].location}):")
    for p in planned:
        c, sm = p["config"], p["summary"]
        print(f"  {c['source']['run']}: {importer.format_map(c['map'])}; {counted(len(p['steps']), 'step record')}, "
              f"{counted(len(p['epochs']), 'epoch')}; method {c['method']}, seed {c['seed']}")
        for note in p["notes"]:
            print(f"    {note}")
        if p["unmapped"]:
            print(f"    not imported: {', '.join(p['unmapped'][:12])}{' ...' if len(p['unmapped']) > 12 else ''} "
                  "(name one with --map FIELD=TAG)")
        if sm["final_test_acc"] is not None:
            regimes = ", ".join(map(str, sm["regimes"][:8]))
            print(f"    final test accuracy {sm['final_test_acc']:.2%}; regimes {regimes}")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    done = importer.import_sources(store, planned)
    new = [rid for _, rid in done if rid]
    print(f"imported {counted(len(new), 'run')} into {store.dir}"
          + (f"; {counted(len(done) - len(new), 'run')} imported before, skipped" if len(new) < len(done) else ""))
    for rid in new:
        print(f"  {rid}")
    print("attribution, surgery and curvature need the model's weights, which an import does not have")
    return 0


def main(argv: list[str]) -> int:
    return light_main(argv, add_parser, cmd_import)
