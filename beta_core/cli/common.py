"""What every CLI command shares: the error type, progress output and running a stored job."""
from __future__ import annotations

import signal
import sys
import time

from .. import formats, reports
from ..formats import format_time_to_accuracy
from ..jobs.bodies import execute_run
from ..records import EPOCH
from ..store import Store
from .stored import CLIError

__all__ = ["CLIError", "Progress", "execute", "print_summary", "SYNTHETIC_NOTE", "Interrupts", "INTERRUPTS",
           "print_report"]

SYNTHETIC_NOTE = "note: trained on SYNTHETIC data (no CIFAR-10 here); pass --data-path for real images"


class Progress:
    """A one-line progress bar on stderr for training records."""

    def __init__(self, label: str, total_epochs: int, quiet: bool = False) -> None:
        self.label, self.total, self.quiet, self.last = label, total_epochs, quiet, 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, rec: dict) -> None:
        if self.quiet:
            return
        if rec["kind"] == EPOCH:
            print(f"\r{self.label}: epoch {rec['epoch'] + 1}/{self.total}  train loss {rec['train_loss']:.3f}  "
                  f"acc {rec['train_acc']:.3f}  test acc {rec['test_acc']:.3f}  "
                  f"{(rec['regime'] or '-') + ' (λ=1)':<17}  "
                  f"{rec['time']:.1f}s", file=sys.stderr)
        elif self.tty and time.monotonic() - self.last > 0.2:
            self.last = time.monotonic()
            print(f"\r{self.label}: epoch {rec['epoch'] + 1}/{self.total} step {rec['step']}  loss {rec['loss']:.3f}"
                  f"  lr {rec['lr']:.4g}  mu {rec['momentum']:.3f}", end="", file=sys.stderr)


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM for commands that run jobs: the first one is remembered,
    the run in progress stops at its next step (``cancelled``), and the command stops too,
    with exit code 128 + the signal number (130 for Ctrl-C)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.signum = self.signum or signum

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


INTERRUPTS = Interrupts()


def execute(store: Store, run_id: str, data_dir: str, on_record=None, splits=None) -> dict:
    """Run a queued job in this process; a signal (see :class:`Interrupts`) cancels it.
    ``splits``: data already loaded for it (a warm worker's)."""
    return execute_run(store, run_id, data_dir, on_record=on_record, splits=splits, should_stop=INTERRUPTS)


def print_summary(run: dict) -> None:
    s = run["summary"]
    acc = s.get("final_test_acc")
    print(f"{run['id']}  {run['method']:<13} {run['status']:<10} final test acc "
          f"{'-' if acc is None else f'{acc:.4f}'}  time-to-acc [{format_time_to_accuracy(s.get('time_to_accuracy'))}]"
          + (f"  error: {run['error']}" if run["error"] else ""))


def print_report(rep: dict, sweep_id: str) -> None:
    """A verdict report as the sweep command prints it: setting, stage 1, arms, verdicts."""
    print(f"sweep {sweep_id}: {reports.sweep_setting(rep)}")
    if rep.get("choice"):
        print("\nstage 1 (validation accuracy, mean over tuning seeds):")
        for m, c in rep["choice"].items():
            curve = ", ".join(" ".join(f"{k}={v:g}" for k, v in p["values"].items()) + f": {formats.pct(p['mean'], 2)}"
                              for p in c["curve"])
            flag = f"  <- at the grid's edge ({', '.join(c['edge'])}): widen the grid" if c["edge"] else ""
            print(f"  {m:<13} chose {c['values']}  [{curve}]{flag}")
    print("\nreported stage (test accuracy, mean [95% CI], n):")
    print(reports.text_table(reports.method_rows(rep)))
    missing = (rep.get("coverage") or {}).get("missing")
    if missing:
        print("\nmissing cells (not counted): " + ", ".join(f"{m['cell']} ({m['status']})" for m in missing))
    if rep.get("note"):
        print(f"\n{rep['note']}")
    if rep["claims"]:
        print(f"\nverdicts vs {rep['setting']['baseline']} (95% intervals; {rep['statistics']['difference']}, "
              f"speedup: {rep['statistics']['speedup']}):")
        print(reports.text_table(reports.verdict_rows(rep)))
    if rep["setting"].get("synthetic"):
        print(SYNTHETIC_NOTE)
