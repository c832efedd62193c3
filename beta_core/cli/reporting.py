"""``beta-core report RUN..``: one self-contained HTML file of stored runs (and, with
``--figures``, every figure as PNG and SVG). Reads the store only: no torch."""
from __future__ import annotations

from pathlib import Path

from ..figures import FigureExportError, save_figure
from ..html_report import build_report, report_figures
from ..store import Store
from .stored import err, light_main

__all__ = ["add_parser", "cmd_report", "main"]


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML file (opens offline) for runs or a sweep")
    p.add_argument("run_ids", nargs="+", help="runs or sweeps (a sweep brings its members)")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--figures", metavar="DIR", help="also every figure as PNG and SVG in DIR (kaleido, a Chromium)")
    p.add_argument("--title", help="the report's title")


def cmd_report(args, store: Store) -> int:
    html = build_report(store, args.run_ids, args.title)
    Path(args.out).write_text(html, encoding="utf-8")
    print(f"{args.out}: {len(html) / 1e6:.1f} MB, opens offline (plotly.js inlined)")
    if args.figures:
        folder = Path(args.figures)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for name, fig in report_figures(store, args.run_ids).items():
                for ext in ("png", "svg"):
                    print(save_figure(fig, folder / f"{name}.{ext}"))
        except FigureExportError as e:
            err(f"{e}; {args.out} was written")
            return 1
    return 0


def main(argv: list[str]) -> int:
    return light_main(argv, add_parser, cmd_report)
