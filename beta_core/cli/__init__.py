"""Command line: ``python -m beta_core COMMAND`` (or the ``beta-core`` script).

    train      one run                        beta-core train --method sgd-beta --preset quick-cpu
    compare    methods x seeds, paired        beta-core compare --preset quick-cpu --seeds 0,1
    runs       list | show | export | delete  beta-core runs list
    attribute  per-group error attribution    beta-core attribute RUN
    surgery    retrain flagged groups         beta-core surgery RUN --groups auto --controls
    overlap    compare two diagnoses          beta-core overlap RUN_A RUN_B
    plant-fault  damage a group, re-diagnose  beta-core plant-fault RUN --group block2
    curvature  top Hessian eigenvalues        beta-core curvature RUN -k 3
    localise-bench  which score finds damage   beta-core localise-bench RUN
    sweep      tuned comparison, verdicts     beta-core sweep --preset sweep-cpu --data-path X
    findings   the paper's claims, tested     beta-core findings --out docs/findings.md
    import     TensorBoard, MLflow, CSV runs  beta-core import tensorboard LOGDIR --map test_acc=val/acc

Every failure prints one clear line to stderr and exits non-zero. Reading stored runs
(``runs list|show|diff|export|delete``) loads ``cli.stored`` only, ``import`` loads
``cli.imports`` and ``report`` ``cli.reporting``, all without torch; every other command loads the full command line
(``cli.commands``) by name, so its imports are paid by the commands that build models.
"""
from __future__ import annotations

import importlib
import sys

from . import imports, reporting, stored

__all__ = ["main", "build_parser"]


def _full():
    return importlib.import_module("beta_core.cli.commands")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if stored.light_command(argv):
        return stored.main(argv)
    if stored.light_command(argv, ("import",)):
        return imports.main(argv)
    if stored.light_command(argv, ("report",)):
        return reporting.main(argv)
    return _full().main(argv)


def build_parser():
    return _full().build_parser()
